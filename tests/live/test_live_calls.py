"""Calls in both dialects, real aiortc peers on loopback: against the local agent (`serve
--dialect realtime|live`) and through `serve --upstream openai` (api live) against a fake of the
Live endpoint written from the SDK. Each call makes a voice turn (a WAV microphone) and a typed
turn; every Live event on the wire, both ways, validates against openai.types.live."""

import asyncio
import json
import wave

import numpy as np
import pytest

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.sinks import WavFileSink
from sandra_tui.audio.sources import WavFileSource
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, ErrorEvent, LatencySample, Transcript
from sandra_tui.wire import live
from sandra_tui.server import live_dialect
from tests.agent_server import AgentServer
from tests.call.test_controller import Recorder, leak_check, make_config  # noqa: F401 - fixture
from tests.fake_openai import STANDARD_KEY
from tests.fake_openai_live import FakeOpenAILive
from tests.live.schema import validate_client_event, validate_server_event


def mic_wav(path, lead_s=1.0, speech_s=1.5) -> None:
    """Silence, then a chirp with noise the agent's energy VAD takes for speech (then silence)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(48000 * speech_s)) / 48000
    speech = (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(len(t))) * 32767
    samples = np.concatenate([np.zeros(int(48000 * lead_s)), speech]).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(samples.tobytes())


@pytest.fixture
def wire():
    """Every Live event the translator sends ("out") and receives ("in"), as parsed JSON."""
    seen: list[tuple[str, dict]] = []

    def tap(direction: str, raw: str) -> None:
        seen.append((direction, json.loads(raw)))

    live_dialect.WIRE_TAPS.append(tap)
    yield seen
    live_dialect.WIRE_TAPS.remove(tap)


def finals(rec, role):
    return [e.text for e in rec.of(Transcript) if e.role == role and e.final]


async def voice_and_typed_turn(url: str, tmp_path, wire, expect_api: str):
    mic_wav(tmp_path / "mic.wav")
    engine = AudioEngine(WavFileSource(str(tmp_path / "mic.wav")), [WavFileSink(str(tmp_path / "speaker.wav"))])
    controller = CallController(make_config(url), audio=engine)
    rec = Recorder(controller)
    try:
        await controller.start()
        await rec.wait_state(CallState.CONNECTED, timeout=15)
        assert controller.connection.token.api == expect_api
        assert type(controller.connection.session).__name__ == ("LiveSession" if expect_api == "live"
                                                                else "RealtimeSession")
        # the voice turn: the agent hears the chirp and says how long it was
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final
                       and "I heard" in e.text, timeout=30)
        # the agent's speech recognition gives words for the chirp (whatever it makes of it)
        assert any(t.strip() for t in finals(rec, "user")), finals(rec, "user")
        # the typed turn, once Sandra is quiet
        for _ in range(200):
            if not controller.connection.session.busy:
                break
            await asyncio.sleep(0.05)
        await controller.send_text("typed in this dialect")
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final
                       and "You wrote: typed in this dialect" in e.text, timeout=30)
        # mute reaches the wire as a Live command (the engine gates the uplink in both dialects)
        controller.set_muted(True)
        if expect_api == "live":
            for _ in range(100):
                if any(e["type"] == "session.input_audio.muted" for d, e in wire if d == "out"):
                    break
                await asyncio.sleep(0.05)
        controller.set_muted(False)
        await asyncio.sleep(0.3)
        roles = [m.role for m in controller.history if m.content]
        assert roles[-4:] == ["user", "assistant", "user", "assistant"], roles
        names = [e.name for e in rec.of(LatencySample)]
        assert {"token_acquisition", "sdp_exchange", "ice_connect", "time_to_first_audio", "response_latency",
                "text_response_latency"} <= set(names), names
        assert [e for e in rec.of(ErrorEvent)] == []
        latencies = {e.name: round(e.ms) for e in rec.of(LatencySample)}
        print(f"{expect_api}: {latencies}")
        return controller, rec, latencies
    finally:
        await controller.close()


def check_wire(wire) -> set[str]:
    """Every event validates (strictly: no field the SDK does not know); returns the types seen."""
    assert wire, "no Live event crossed the wire"
    for direction, event in wire:
        (validate_server_event if direction == "out" else validate_client_event)(event)
    return {f"{d}:{e['type']}" for d, e in wire}


@pytest.mark.parametrize("dialect", ["realtime", "live"])
async def test_local_agent_in_each_dialect(tmp_path, wire, leak_check, dialect):
    server = await AgentServer(tmp_path, dialect=dialect).start()
    try:
        controller, rec, latencies = await voice_and_typed_turn(server.url, tmp_path, wire, dialect)
        assert server.calls == {}  # hung up
    finally:
        await server.stop()
    if dialect == "realtime":
        assert wire == []  # the translator stays out of a Realtime call
        return
    kinds = check_wire(wire)
    assert {"out:session.started", "out:session.input_transcript.delta", "out:session.output_transcript.delta",
            "out:session.instructions.appended", "out:session.usage.updated", "out:session.input_audio.muted",
            "out:session.input_audio.unmuted", "in:session.instructions.append", "in:session.input_audio.mute",
            "in:session.input_audio.unmute"} <= kinds, kinds
    assert "turn_server" in latencies and "turn_client" in latencies  # split from the session timeline
    assert wire[0] == ("out", wire[0][1]) and wire[0][1]["type"] == "session.started"  # nothing before it
    first_in = next(i for i, (d, _) in enumerate(wire) if d == "in")
    assert first_in > 0


@pytest.fixture
async def fake_live():
    fake = await FakeOpenAILive().start()
    yield fake
    await fake.stop()


async def test_relay_to_the_live_endpoint(tmp_path, wire, fake_live, leak_check):
    server = await AgentServer(tmp_path, upstream="openai", openai_base_url=fake_live.url,
                               openai_api_key=STANDARD_KEY, api="live").start()
    try:
        controller, rec, _ = await voice_and_typed_turn(server.url, tmp_path, wire, "live")
        assert not controller.token_value.startswith("sk-")  # the client holds only our short key
        assert controller.connection is None
    finally:
        await server.stop()
    created = [s for s in fake_live.seen if s.path == "/v1/live/sessions"]
    assert len(created) == 1 and created[0].auth == f"Bearer {STANDARD_KEY}"
    assert created[0].content_type == "application/json"
    session = created[0].body["session"]
    assert session["model"] == "gpt-live-1" and session["audio"] == {"output": {"voice": "marin"}}
    assert session["instructions"].startswith("You are Sandra")
    allowed = session["client"]["data_channel"]["allowed_client_events"]
    assert set(allowed) == set(live.FRONTEND_CLIENT_EVENTS)
    kinds = check_wire(wire)
    assert {e["type"] for d, e in wire if d == "in"} <= set(allowed)  # the client kept to what it may send
    assert "out:session.output_transcript.delta" in kinds and "out:session.input_transcript.delta" in kinds
    # the hang-up went through the backend, which kept the session id, with the standard key
    assert len(fake_live.hangups) == 1 and fake_live.hangups[0] in fake_live.configs
    hangup = [s for s in fake_live.seen if s.path.endswith("/hangup")]
    assert hangup[0].auth == f"Bearer {STANDARD_KEY}"
    assert fake_live.calls.calls == {}
