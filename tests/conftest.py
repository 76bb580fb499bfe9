from __future__ import annotations

import os
import shutil
import time

import pytest

from tests import netguard

netguard.install()

IN_CI = bool(os.environ.get("CI")) or os.environ.get("SANDRA_REQUIRE_REAL_AUDIO") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip when a real dependency is missing, except in CI where that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Pin ICE host candidates to 127.0.0.1 and fail a test that sent anything off loopback."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"])
    netguard.take_violations()
    yield
    found = netguard.take_violations()
    if found:
        pytest.fail("traffic outside loopback: " + "; ".join(found[:5]))


@pytest.fixture
def tmp_config(tmp_path, monkeypatch):
    """A config path of the test's own, with no TURN variables from the environment."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv("SANDRA_CONFIG", str(path))
    for name in (
        "SANDRA_TURN_SERVER",
        "SANDRA_TURN_USERNAME",
        "SANDRA_TURN_PASSWORD",
        "REACT_APP_TURN_SERVER",
        "REACT_APP_TURN_USERNAME",
        "REACT_APP_TURN_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL on loopback (skipped outside CI when the package is missing)."""
    from tests.postgres import PostgresServer, pg_bin

    require(pg_bin() is not None, "PostgreSQL server binaries (apt install postgresql)")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
async def agent_server(tmp_path):
    """The real backend app (`sandra-tui serve --faults`) in-process on a free loopback port."""
    from tests.agent_server import AgentServer

    server = await AgentServer(tmp_path / "serve-data").start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def coturn():
    """coturn on loopback with long-term credentials (tests.coturn.USER / PASSWORD)."""
    import shutil

    from tests.coturn import Coturn

    require(shutil.which("turnserver") is not None, "coturn (apt install coturn)")
    server = Coturn().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def coturn_rest():
    """coturn on loopback with REST credentials (use-auth-secret)."""
    import shutil

    from tests.coturn import Coturn

    require(shutil.which("turnserver") is not None, "coturn (apt install coturn)")
    server = Coturn(secret="rest-shared-secret").start()
    yield server
    server.stop()


@pytest.fixture
def silent_udp():
    from tests.coturn import SilentUdp

    sockets = []

    def make():
        s = SilentUdp()
        sockets.append(s)
        return s

    yield make
    for s in sockets:
        s.close()


@pytest.fixture(scope="session")
def pulse():
    """A private PulseAudio server (null sinks for mic and speaker) this process's PortAudio uses;
    one per session, shared by tests/audio and tests/agent (PortAudio reads the server once)."""
    from tests.pulse import Pulse

    require(shutil.which("pulseaudio") is not None and shutil.which("pacat") is not None,
            "PulseAudio (apt install pulseaudio pulseaudio-utils libasound2-plugins)")
    try:
        import sounddevice  # noqa: F401
    except OSError as exc:
        require(False, f"PortAudio (apt install libportaudio2): {exc}")
    server = Pulse().start()
    server.use_in_process()
    yield server
    server.stop()


@pytest.fixture
def acoustic_loop(pulse):
    """Speaker -> microphone with 30 ms of 'room' delay, like speakers next to a laptop mic."""
    from tests.pulse import MIC_SINK, SPK_SINK

    module = pulse.pactl("load-module", "module-loopback", f"source={SPK_SINK}.monitor", f"sink={MIC_SINK}",
                         "latency_msec=30", "source_dont_move=true", "sink_dont_move=true").stdout.strip()
    time.sleep(0.5)
    yield
    pulse.pactl("unload-module", module, check=False)
