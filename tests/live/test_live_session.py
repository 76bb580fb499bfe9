"""LiveSession and the server's Live translator, event by event: what goes out validates against
openai.types.live, turns are inferred from transcripts and reply audio, mute is mirrored, the
stop key is quiet when Sandra is, session.closed ends the path for the right reason."""

import json

import numpy as np

from sandra_tui.call.events import ErrorEvent, LatencySample, Speech, Transcript
from sandra_tui.call.history import ConversationHistory
from sandra_tui.call.live_session import REPLY_QUIET_FRAMES, LiveSession
from sandra_tui.wire import live
from sandra_tui.server.live_dialect import LiveChannel
from tests.live.schema import validate_client_event, validate_server_event

LOUD = (np.ones(960) * 8000).astype(np.int16)
QUIET = np.zeros(960, dtype=np.int16)


class FakeAudio:
    def __init__(self) -> None:
        self.muted = False
        self.flushes = 0
        self.frames_played = 0

    def flush_playout(self) -> None:
        self.flushes += 1


def make_session():
    sent, emitted, expired, idle = [], [], [], []
    audio = FakeAudio()
    session = LiveSession(lambda raw: sent.append(json.loads(raw)), emit=emitted.append,
                          history=ConversationHistory(), audio=audio,
                          latency=lambda name, ms: emitted.append(LatencySample(name, ms, "GOOD")),
                          on_idle=lambda: idle.append(1), on_expired=expired.append)
    return session, sent, emitted, expired, idle, audio


def server(session, event: dict) -> None:
    event.setdefault("event_id", "event_1")
    validate_server_event(event)  # what the test feeds is a real Live event too
    session.handle(json.dumps(event))


def started(session) -> None:
    server(session, {"type": "session.started",
                     "session": live.session_resource("live_x", "gpt-live-1", "marin", 2_000_000_000)})


def frames(session, samples, n: int, t0: float) -> float:
    for i in range(n):
        session.on_output_frame(samples, t0 + i * 0.02)
    return t0 + n * 0.02


async def test_nothing_is_sent_before_session_started_and_realtime_events_are_refused():
    session, sent, *_ = make_session()
    assert session.send_user_text("item_1", "hello") is True
    assert sent == []  # queued
    assert session.send({"type": "conversation.item.create", "item": {}}) is False
    started(session)
    await session.wait_started()
    assert [e["type"] for e in sent] == ["session.instructions.append"]
    assert sent[0]["content"] == live.TYPED_PREFIX + "hello" and sent[0]["delegation_id"] is None
    for event in sent:
        validate_client_event(event)


async def test_a_voice_turn_is_inferred_and_timed_from_the_session_timeline():
    session, sent, emitted, _, idle, _ = make_session()
    started(session)
    server(session, {"type": "session.input_transcript.delta", "delta": "what time", "start_ms": 1000, "end_ms": 1600})
    server(session, {"type": "session.input_transcript.delta", "delta": " is it", "start_ms": 1600, "end_ms": 2000})
    assert session.user_speaking and session.busy is False
    server(session, {"type": "session.output_transcript.delta", "delta": "It is", "start_ms": 2400, "end_ms": 2600})
    assert not session.user_speaking and session.busy
    import time
    t = frames(session, LOUD, 10, time.monotonic())
    server(session, {"type": "session.output_transcript.delta", "delta": " noon.", "start_ms": 2600, "end_ms": 2900})
    frames(session, QUIET, REPLY_QUIET_FRAMES + 40, t)
    finals = [(e.role, e.text) for e in emitted if isinstance(e, Transcript) and e.final]
    assert finals == [("user", "what time is it"), ("assistant", "It is noon.")]
    speech = [e.what for e in emitted if isinstance(e, Speech)]
    assert speech == ["user_started", "user_stopped", "reply_started", "reply_stopped"]
    names = {e.name: e.ms for e in emitted if isinstance(e, LatencySample)}
    assert names["turn_server"] == 400.0  # 2400 - 2000 on the server's own clock
    assert "response_latency" in names and "turn_client" in names
    assert idle and not session.busy
    assert [m.role for m in session.history] == ["user", "assistant"]


async def test_mute_is_mirrored_once_each_way():
    session, sent, _, _, _, audio = make_session()
    started(session)
    session.on_output_frame(QUIET, 0.0)
    audio.muted = True
    for i in range(5):
        session.on_output_frame(QUIET, 0.02 * i)
    audio.muted = False
    session.on_output_frame(QUIET, 0.2)
    assert [e["type"] for e in sent] == ["session.input_audio.mute", "session.input_audio.unmute"]
    for event in sent:
        validate_client_event(event)


async def test_stop_key_is_quiet_when_idle_and_stops_a_reply_locally():
    session, sent, emitted, _, _, audio = make_session()
    started(session)
    session.cancel_response()
    assert sent == [] and audio.flushes == 0
    server(session, {"type": "session.output_transcript.delta", "delta": "A long", "start_ms": 10, "end_ms": 20})
    frames(session, LOUD, 5, 0.0)
    session.cancel_response()
    assert sent[-1]["type"] == "session.thinking.append" and sent[-1]["content"] == live.STOPPED
    validate_client_event(sent[-1])
    assert session.history.messages()[-1].status == "interrupted"
    before = audio.flushes
    server(session, {"type": "session.output_transcript.delta", "delta": " story", "start_ms": 20, "end_ms": 30})
    frames(session, LOUD, 5, 1.0)  # what the server still sends is flushed, not played or shown
    assert audio.flushes >= before + 5
    assert [m.content for m in session.history] == ["A long"]
    assert Speech("reply_cancelled") in emitted


async def test_reseed_goes_as_silent_context():
    session, sent, *_ = make_session()
    started(session)
    history = ConversationHistory()
    history.add("user", "my number is 42", item_id="a")
    history.add("assistant", "noted", item_id="b")
    history.add("user", "still queued", item_id="c")
    assert session.reseed(history.messages(), skip_ids={"c"}) == 2
    assert [e["content"] for e in sent] == [live.EARLIER_USER + "my number is 42", live.EARLIER_ASSISTANT + "noted"]
    for event in sent:
        validate_client_event(event)


async def test_session_closed_and_errors():
    session, _, emitted, expired, _, _ = make_session()
    started(session)
    closing = {"session": live.session_resource("live_x", "gpt-live-1", "marin", 1), "usage": {"seconds": 3.0}}
    server(session, {"type": "session.closed", "reason": "close_requested", **closing})
    server(session, {"type": "session.closed", "reason": "expired", **closing})
    server(session, {"type": "session.closed", "reason": "remote_hangup", **closing})
    assert expired == ["session_expired", "session_closed"]
    server(session, {"type": "error", "error": {"code": "weird", "type": "server_error",
                                                "message": "bad thing in item_abc123"}})
    errors = [e for e in emitted if isinstance(e, ErrorEvent)]
    assert errors and "item_abc123" not in errors[-1].message
    server(session, {"type": "session.usage.updated", "usage": {"seconds": 12.0}})
    assert session.usage == {"seconds": 12.0}


class FakeChannel:
    readyState = "open"

    def __init__(self) -> None:
        self.sent, self.handlers = [], {}

    def on(self, event, fn=None):
        self.handlers.setdefault(event, []).append(fn)
        return fn

    def send(self, raw):
        self.sent.append(json.loads(raw))


def test_translator_refuses_what_it_should_and_closes_in_live_terms():
    channel = FakeChannel()
    wrapped = LiveChannel(channel, model="gpt-realtime", voice="marin",
                          allowed_client_events=live.FRONTEND_CLIENT_EVENTS)
    to_agent = []
    wrapped.on("message", to_agent.append)
    assert json.loads(to_agent[0])["type"] == "session.update"  # the agent transcribes, as Live always does
    wrapped.send(json.dumps({"type": "session.created", "event_id": "e", "session": {}}))
    wrapped.send(json.dumps({"type": "response.created", "event_id": "e", "response": {}}))  # no Live twin
    wrapped.send(json.dumps({"type": "error", "event_id": "e",
                             "error": {"type": "invalid_request_error", "code": "x", "message": "m",
                                       "event_id": "evt_1"}}))
    caller = channel.handlers["message"][0]
    caller(json.dumps({"type": "conversation.item.create", "event_id": "evt_2"}))  # Realtime: unknown
    caller(json.dumps({"type": "response.create", "event_id": "evt_3"}))  # Live, but not for the frontend
    caller("not json")
    caller(json.dumps({"type": "session.close", "event_id": "evt_4"}))
    kinds = [e["type"] for e in channel.sent]
    assert kinds == ["session.started", "info", "error", "error", "error", "error", "session.closed"], kinds
    codes = [e["error"]["code"] for e in channel.sent if e["type"] == "error"]
    assert codes == ["x", "unknown_event", "event_not_permitted", "invalid_event"]
    assert channel.sent[-1]["reason"] == "close_requested" and channel.sent[-1]["client_event_id"] == "evt_4"
    assert channel.sent[0]["session"]["model"] == "gpt-live-1"
    for event in channel.sent:
        validate_server_event(event)
    assert len(to_agent) == 1  # nothing refused reached the agent
