"""A call through real packet loss: nftables drops 5% of all UDP in the test's own network
namespace (`tc netem` is not in this kernel), and the agent adds up to 40 ms of jitter. The call
must stay up and report the loss it saw (concealment is tested with a speaker in tests/audio)."""

import asyncio
import os
import shutil
import subprocess

import pytest

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.playout import PlayoutBuffer
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, Quality, ReconnectAttempt
from tests.call.test_controller import Recorder, leak_check, make_config  # noqa: F401 - fixture
from tests.conftest import require

TABLE = "sandra_test_loss"


def nft(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def udp_loss():
    require(shutil.which("nft") is not None, "nftables (apt install nftables)")
    require(os.environ.get("SANDRA_IN_NETNS") == "1", "the suite's own network namespace (scripts/netns-run.sh)")
    nft("delete", "table", "inet", TABLE)
    for rule in (("add", "table", "inet", TABLE),
                 ("add", "chain", "inet", TABLE, "in", "{ type filter hook input priority 0; }"),
                 ("add", "rule", "inet", TABLE, "in", "meta", "l4proto", "udp", "numgen", "random", "mod", "100",
                  "lt", "5", "counter", "drop")):
        done = nft(*rule)
        assert done.returncode == 0, done.stderr
    try:
        yield
    finally:
        nft("delete", "table", "inet", TABLE)


def dropped() -> int:
    out = nft("list", "table", "inet", TABLE).stdout
    return int(out.split("packets")[1].split()[0]) if "packets" in out else 0


async def test_five_percent_loss_and_jitter_keep_the_call_up(agent_server, udp_loss, leak_check):
    audio = AudioEngine(playout=PlayoutBuffer(target_ms=40))
    controller = CallController(make_config(agent_server.url), audio=audio)
    rec = Recorder(controller)
    await controller.start()
    await rec.wait_state(CallState.CONNECTED, timeout=20)  # the handshake itself goes through the loss
    # Counted from here: on a loaded machine a handshake through 5% loss can outlast the connect
    # timeout once and be retried (seen at load average 10); the call, once up, must stay up.
    connected_at = len(rec.events)
    try:
        await agent_server.faults(rtp_jitter_ms=40)
        await controller.send_text("say something while the network is bad")
        await asyncio.sleep(12)
        assert [e for e in rec.events[connected_at:] if isinstance(e, ReconnectAttempt)] == []
        assert controller.state == CallState.CONNECTED
        lost = dropped()
        quality = rec.of(Quality)[-1]
        print(f"\nnftables dropped {lost} UDP packets; client saw {quality.loss_pct}% loss, MOS {quality.mos}")
        assert lost > 20  # ~50 packets a second both ways for 12 s at 5%
        assert 1.0 <= quality.loss_pct <= 15.0, quality
    finally:
        await controller.close()
