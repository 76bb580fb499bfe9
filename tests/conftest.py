from __future__ import annotations

import os
import shutil

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
    """Speaker -> microphone, like a laptop on speakers: while the test runs, the default sink is a
    remap of the microphone sink, so what the client plays is mixed straight into what its
    microphone hears. A laptop's speaker is centimetres from its microphone (well under 1 ms of
    air); the echo's delay is the sound server's buffering on the way out and back in, which is
    the client's own streams. Not module-loopback: under load its adaptive resampler grows and
    retunes its buffer in 20-50 ms steps every half second (render-to-capture lag measured at
    90-142 ms against 36-68 ms idle), a room whose walls move, which no room does; the canceller
    kept re-converging and 1 run in 22 beside stress-ng --cpu 4 read 7.8 dB."""
    from tests.pulse import MIC_SINK, RATE, ROOM_SINK, SPK_SINK

    module = pulse.pactl("load-module", "module-remap-sink", f"sink_name={ROOM_SINK}", f"master={MIC_SINK}",
                         f"rate={RATE}", "channels=1", "channel_map=mono", "master_channel_map=mono",
                         "remix=no").stdout.strip()
    pulse.pactl("set-default-sink", ROOM_SINK)
    try:
        yield
    finally:
        pulse.pactl("set-default-sink", SPK_SINK, check=False)
        pulse.pactl("unload-module", module, check=False)
