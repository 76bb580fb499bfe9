"""Issue #20 item 4 on real connections: the media path (candidate pair type, server, codec,
bitrate) read from a real aiortc peer talking to the real agent over loopback, directly (host)
and through coturn (relay), and what the call pane shows of it."""

import asyncio

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.sources import WavFileSource
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, MediaPath
from tests.call.test_controller import Recorder, leak_check, make_config  # noqa: F401 - leak_check: fixture
from tests.ui.test_history_real import mic_wav


async def _path_while_talking(controller, rec, gap_s: float = 1.0) -> MediaPath:
    """Two reads `gap_s` apart while audio flows both ways: the second has bitrates."""
    await controller.send_text("hello, what is the path")  # Sandra answers: audio comes in
    for _ in range(200):
        if controller.audio.frames_received > 10:
            break
        await asyncio.sleep(0.05)
    first = await controller.media_path()
    assert first is not None and first.rx_kbps is None  # one reading: no rate yet
    await asyncio.sleep(gap_s)
    second = await controller.media_path()
    print(f"frames received {controller.audio.frames_received}")
    assert any(isinstance(e, MediaPath) for e in rec.events)  # published for the call pane too
    return second


async def test_host_path_codec_and_bitrate_on_a_real_call(agent_server, tmp_path, leak_check):  # noqa: F811
    mic_wav(tmp_path / "mic.wav", seconds=4.0)
    engine = AudioEngine(WavFileSource(str(tmp_path / "mic.wav")))
    controller = CallController(make_config(agent_server.url), audio=engine)
    rec = Recorder(controller)
    try:
        await controller.start()
        await rec.wait_state(CallState.CONNECTED)
        path = await _path_while_talking(controller, rec)
    finally:
        await controller.close()
    print(f"host path: {path}")
    assert (path.local_type, path.remote_type, path.server) == ("host", "host", "")
    assert path.codec.startswith("opus/48000")
    # Opus voice at 20 ms frames: tens of kbit/s with headers, well under 200 (loose: a loaded
    # machine bunches packets, and one second is a short window).
    assert 8 < path.tx_kbps < 200 and 0 < path.rx_kbps < 200


async def test_relay_path_names_the_turn_server(agent_server, coturn, tmp_path, leak_check):  # noqa: F811
    from sandra_tui.call.probe_adapter import make_probe
    from sandra_tui.config.model import TurnServer
    from tests.coturn import PASSWORD, USER

    mic_wav(tmp_path / "mic.wav", seconds=6.0)
    cfg = make_config(agent_server.url, base_delay_ms=100)
    cfg.ice.turn = [TurnServer(url=coturn.turn_url, username=USER, credential=PASSWORD)]
    controller = CallController(cfg, audio=AudioEngine(WavFileSource(str(tmp_path / "mic.wav"))),
                                probe=make_probe())
    rec = Recorder(controller)
    try:
        await controller.start()
        await rec.wait_state(CallState.CONNECTED)
        n = len(rec.events)
        controller.connection.mark_dead("ice_failed")  # host failed: the next attempt is relay only
        await rec.wait_state(CallState.CONNECTED, after=n, timeout=10)
        assert controller.plan.relay_only
        path = await _path_while_talking(controller, rec)
    finally:
        await controller.close()
    print(f"relay path: {path}")
    assert path.local_type == "relay" and path.server == coturn.turn_url.split("?")[0]
    assert PASSWORD not in repr(path) and USER not in path.server  # no credential in the event
    assert path.codec.startswith("opus/48000") and path.tx_kbps > 8
