"""The agent, VAD, faults and settings without a network: every event the agent can emit is
validated against the openai SDK's models; VAD timing follows the session's settings."""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandra_tui.wire.realtime import SERVER_EVENTS
from sandra_tui.server import tts
from sandra_tui.server.agent import LocalAgentCall
from sandra_tui.server.faults import Faults
from sandra_tui.server.settings import ServerSettings
from sandra_tui.server.tokens import TokenStore, turn_rest_credentials
from sandra_tui.server.vad import BARGE_IN_FRAMES, Vad as EnergyVad, threshold_dbfs
from tests.realtime_schema import validate_client_event, validate_server_event
from tests.rtc_client import tone

LOUD = (tone(0.02, amp=12000)[:960]).astype(np.int16)
QUIET = np.zeros(960, dtype=np.int16)


class FakeChannel:
    label = "oai-events"

    def __init__(self) -> None:
        self.readyState = "open"
        self.sent: list[dict] = []
        self.handlers: dict[str, object] = {}

    def on(self, name, fn=None):
        if fn is not None:
            self.handlers[name] = fn
            return fn

        def register(f):
            self.handlers[name] = f
            return f

        return register

    def send(self, data: str) -> None:
        self.sent.append(json.loads(data))

    def client(self, event: dict) -> None:
        validate_client_event(event)  # what the tests send is the real API's dialect too
        self.handlers["message"](json.dumps(event))

    def types(self) -> list[str]:
        return [e["type"] for e in self.sent]

    async def wait_for(self, kind: str, after: int = 0, timeout: float = 10.0) -> dict:
        for _ in range(int(timeout / 0.01)):
            for event in self.sent[after:]:
                if event["type"] == kind:
                    return event
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {kind}; got {self.types()[-10:]}")


def speak(agent: LocalAgentCall, loud_frames: int, quiet_frames: int) -> None:
    for _ in range(loud_frames):
        agent.on_input_frame(LOUD)
    for _ in range(quiet_frames):
        agent.on_input_frame(QUIET)


async def pull_audio(track, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await track.recv()


@contextlib.asynccontextmanager
async def running_agent(call_id: str):
    """An agent on a fake channel whose audio is pulled as a peer would; closed after."""
    agent = LocalAgentCall(call_id, Faults(), "gpt-realtime", "marin")
    dc = FakeChannel()
    agent.attach_channel(dc)
    stop = asyncio.Event()
    puller = asyncio.create_task(pull_audio(agent.track, stop))
    try:
        yield agent, dc
    finally:
        stop.set()
        await agent.close()
        puller.cancel()


async def test_every_event_the_agent_emits_is_valid_for_the_sdk(monkeypatch):
    monkeypatch.setattr(tts, "available", lambda: False)  # replies replay the caller: short and fast
    async with running_agent("rtc_unit") as (agent, dc):
        dc.client({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 200, "prefix_padding_ms": 100}}}}})
        speak(agent, 15, 12)  # 0.3 s of speech, then the silence that ends the turn
        await dc.wait_for("output_audio_buffer.stopped")
        n = len(dc.sent)
        speak(agent, 50, 12)  # 1 s turn; barge in on its reply
        await dc.wait_for("output_audio_buffer.started", after=n)
        speak(agent, BARGE_IN_FRAMES, 0)  # while she speaks, a turn takes 300 ms of speech
        cancelled = await dc.wait_for("output_audio_buffer.cleared", after=n)
        speak(agent, 0, 12)
        await dc.wait_for("response.done", after=len(dc.sent) - 1)
        item_id = next(e for e in dc.sent if e["type"] == "response.done"
                       and e["response"]["id"] == cancelled["response_id"])["response"]["output"][0]["id"]
        for event in (
            {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 40},
            {"type": "conversation.item.retrieve", "item_id": item_id},
            {"type": "conversation.item.delete", "item_id": item_id},
            {"type": "conversation.item.create", "item": {"type": "message", "role": "system",
                                                           "content": [{"type": "input_text", "text": "hi"}]}},
            {"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",
                                                           "content": [{"type": "output_text", "text": "hi"}]}},
            {"type": "input_audio_buffer.clear"},
            {"type": "output_audio_buffer.clear"},
            {"type": "conversation.item.delete", "item_id": "item_gone"},
        ):
            dc.client(event)
        dc.handlers["message"]("not json")
        await asyncio.sleep(0.7)  # the last reply, if any, winds down
    emitted = set(dc.types())
    assert emitted == SERVER_EVENTS, (SERVER_EVENTS - emitted, emitted - SERVER_EVENTS)
    for event in dc.sent:
        validate_server_event(event)
        assert event["event_id"].startswith("event_")
    assert len({e["event_id"] for e in dc.sent}) == len(dc.sent)


def test_the_schema_helper_rejects_a_drifted_event():
    with pytest.raises(Exception, match="audio_end_ms"):
        validate_server_event({"type": "input_audio_buffer.speech_stopped", "event_id": "e", "item_id": "i"})
    with pytest.raises(Exception):
        validate_server_event({"type": "response.output_audio.delta", "event_id": "e"})  # GA name, missing fields
    assert validate_server_event({"type": "output_audio_buffer.started", "event_id": "e", "response_id": "r"})


@settings(max_examples=60, deadline=None)
@given(threshold=st.floats(0.0, 0.9), prefix_ms=st.integers(0, 1000), silence_ms=st.integers(20, 1500),
       lead_frames=st.integers(0, 80), speech_frames=st.integers(2, 100))
def test_vad_times_follow_the_session_settings(threshold, prefix_ms, silence_ms, lead_frames, speech_frames):
    vad = EnergyVad(threshold, prefix_ms, silence_ms)
    events = []
    frames = [QUIET] * lead_frames + [LOUD] * speech_frames + [QUIET] * (silence_ms // 20 + 2)
    for frame in frames:
        event = vad.feed(frame)
        if event:
            events.append((event.kind, event.ms, vad.clock_ms))
    assert [e[0] for e in events] == ["speech_started", "speech_stopped"]
    onset, end = lead_frames * 20, (lead_frames + speech_frames) * 20
    assert events[0][1] == max(0, onset - prefix_ms)  # audio_start_ms includes the prefix padding
    assert events[1][1] == end  # audio_end_ms: where the speech ended
    assert events[1][2] - end >= silence_ms  # announced only after silence_duration_ms of quiet


def test_vad_threshold_maps_to_levels_and_ignores_clicks():
    assert threshold_dbfs(0.0) == -60 and threshold_dbfs(0.5) == -40 and threshold_dbfs(1.0) == -20
    vad = EnergyVad(0.5, 300, 200)
    assert vad.feed(LOUD) is None and vad.feed(QUIET) is None  # one 20 ms click is not speech
    quiet_tone = (LOUD / 40).astype(np.int16)  # about -45 dBFS
    assert all(vad.feed(quiet_tone) is None for _ in range(20))


def test_utterance_buffer_is_bounded():
    agent = LocalAgentCall("rtc_unit", Faults(), "m", "v")
    agent.session["audio"]["input"]["turn_detection"] = None  # manual turns: everything is buffered
    for _ in range(70 * 50):
        agent.on_input_frame(QUIET)
    assert len(agent._utterance) * 0.02 <= 60.0


def test_faults_patch_is_all_or_nothing():
    faults = Faults()
    assert faults.update({"rtp_drop": 0.5, "bogus": 1}) == ["unknown fault 'bogus'"]
    assert faults.rtp_drop == 0.0
    for bad in ({"rtp_drop": 1.5}, {"rtp_drop": True}, {"rtp_jitter_ms": 5000}, {"token_status": 418},
                {"answer_shape": "odd"}, {"agent_mode": "sing"}, {"media_stopped": "yes"}, {"retry_after_s": 1.5}):
        assert faults.update(bad), bad
    assert faults.update({"media_stopped": True, "token_status": 429, "seed": 3}) == []
    assert faults.active() == {"media_stopped": True, "token_status": 429, "seed": 3}
    faults.reset(agent_mode="echo")
    assert faults.active() == {} and faults.agent_mode == "echo"


def test_turn_rest_credentials_are_coturn_compatible():
    username, credential = turn_rest_credentials("s3cret", "sess_1", 600, now=1_000_000)
    assert username == "1000600:sess_1"
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected


def test_ice_servers_and_setting_problems():
    assert ServerSettings().ice_servers("sess") == []  # loopback agent, nothing configured
    s = ServerSettings(turn_urls=["turn:t.example:3478?transport=udp", "turns:t.example:5349", "stun:s.example"],
                       turn_secret="k3y-secret", turn_ttl_s=120)
    servers = s.ice_servers("sess_9", now=1000)
    assert servers[0]["urls"] == ["turn:t.example:3478?transport=udp", "turns:t.example:5349"]
    assert servers[0]["username"] == "1120:sess_9" and servers[0]["credential"]
    assert servers[1] == {"urls": ["stun:s.example"]}
    assert s.problems() == []
    assert "k3y-secret" not in repr(s) and "sk-x" not in repr(ServerSettings(openai_api_key="sk-x"))
    assert any("SANDRA_TURN_SECRET" in p for p in ServerSettings(turn_urls=["turn:x"]).problems())
    assert any("no turn: URL" in p for p in ServerSettings(turn_secret="abc").problems())
    assert any("not a turn:" in p for p in ServerSettings(turn_urls=["http://x"]).problems())
    assert any("OPENAI_API_KEY" in p for p in ServerSettings(upstream="openai").problems())
    assert any("TTL" in p for p in ServerSettings(token_ttl_s=5).problems())
    env = {"SANDRA_TURN_URLS": "turn:a:3478, stun:b", "SANDRA_TURN_SECRET": "x" * 8, "SANDRA_TURN_TTL": "900",
           "OPENAI_API_KEY": "sk-abc", "SANDRA_OPENAI_BASE_URL": "http://127.0.0.1:9/"}
    s = ServerSettings.from_env(env)
    assert s.turn_urls == ["turn:a:3478", "stun:b"] and s.turn_ttl_s == 900
    assert s.openai_base_url == "http://127.0.0.1:9" and s.openai_api_key == "sk-abc"


def test_token_store_expiry_and_upstream_keys():
    now = [1000.0]
    store = TokenStore(ttl_s=60, grace_s=100, clock=lambda: now[0])
    value, issued = store.mint("my-session")
    assert value.startswith("ek_") and issued.session_id == "my-session"
    assert store.check(value) == issued
    _, other = store.mint("bad session id with spaces")
    assert other.session_id.startswith("sess_")
    store.remember("ek_upstream", "sess_u", 2000)
    assert store.check("ek_upstream") is None  # an OpenAI key does not open calls to the local agent
    assert store.session_of("ek_upstream") == "sess_u"
    now[0] += 61
    assert store.check(value) is None and store.session_of(value) == "my-session"  # metrics grace
    now[0] += 100
    assert store.session_of(value) is None


async def test_echo_replays_just_the_speech_and_the_transcript_counts_it():
    faults = Faults(agent_mode="echo")
    agent = LocalAgentCall("rtc_unit", faults, "m", "v")
    dc = FakeChannel()
    agent.attach_channel(dc)
    dc.client({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "server_vad", "prefix_padding_ms": 300, "silence_duration_ms": 400}}}}})
    try:
        for _ in range(30):
            agent.on_input_frame(QUIET)
        speak(agent, 25, 20)  # 0.5 s of speech, 0.4 s of silence ends it
        heard = await dc.wait_for("conversation.item.input_audio_transcription.completed")
        assert heard["transcript"] == "[0.5 seconds of speech]"
        await dc.wait_for("response.content_part.added")
        await asyncio.sleep(0.05)
        queued = list(agent.track._frames)
        assert len(queued) == 25  # no prefix padding, no trailing silence
        assert all(np.abs(frame).max() > 1000 for frame in queued)
        started = next(e for e in dc.sent if e["type"] == "input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 30 * 20 - 300
    finally:
        await agent.close()


async def test_while_her_reply_plays_a_turn_needs_300_ms_of_speech(monkeypatch):
    """Barge-in guard (LiveKit's min_interruption_duration): 200 ms of her own voice's residue
    does not cut her off; 300 ms of the caller's speech does; with her silent 40 ms starts a turn."""
    monkeypatch.setattr(tts, "available", lambda: False)
    async with running_agent("rtc_guard") as (agent, dc):
        speak(agent, 3, 0)  # nothing playing: 2 loud frames are a turn
        assert dc.types().count("input_audio_buffer.speech_started") == 1
        speak(agent, 40, 30)
        await dc.wait_for("output_audio_buffer.started")
        n = len(dc.sent)
        speak(agent, BARGE_IN_FRAMES - 5, 10)  # 200 ms burst while she speaks: not a turn
        assert "input_audio_buffer.speech_started" not in [e["type"] for e in dc.sent[n:]]
        speak(agent, BARGE_IN_FRAMES, 0)
        started = await dc.wait_for("input_audio_buffer.speech_started", after=n)
        assert started["audio_start_ms"] >= 0
        await dc.wait_for("output_audio_buffer.cleared", after=n)


def test_a_barge_in_onset_counts_speech_across_short_pauses():
    """300 ms of speech while she talks, counted across pauses of up to 100 ms (between words);
    the turn then starts at the onset's first speech frame, so no word of it is lost."""
    vad = EnergyVad()
    vad.onset_frames = BARGE_IN_FRAMES
    events = [vad.feed(f) for f in [QUIET] * 20 + [LOUD] * 8 + [QUIET] * 4 + [LOUD] * 6]
    assert events.count(None) == len(events)  # 14 speech frames so far
    started = vad.feed(LOUD)
    assert started is not None and started.kind == "speech_started"
    assert vad.onset_span == 19  # 8 + 4 paused + 7
    assert started.ms == vad.clock_ms - 19 * 20 - vad.prefix_padding_ms
    vad = EnergyVad()
    vad.onset_frames = BARGE_IN_FRAMES
    assert all(vad.feed(f) is None for f in [LOUD] * 10 + [QUIET] * 6 + [LOUD] * 10)  # a 120 ms pause resets
