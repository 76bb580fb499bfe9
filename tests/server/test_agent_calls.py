"""A plain aiortc client against the real agent app over loopback, driven only by the protocol:
voice turns, VAD settings, typed text, barge-in, cancel/truncate, echo mode, manual turns,
bad events. Every server event is validated against the openai SDK's models (RawClient)."""

import asyncio
import time

from sandra_tui.server import tts
from sandra_tui.server.app import FAULTS
from tests.agent.speech import rms_dbfs, spoken
from tests.conftest import require
from tests.rtc_client import RawClient, tone
from tests.server.conftest import configure


def event_time(client: RawClient, event: dict) -> float:
    return client.event_times[client.events.index(event)]


async def test_session_created_and_update(client):
    created = client.events[0]
    assert created["type"] == "session.created"
    assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    client.send({"type": "session.update", "session": {"type": "realtime", "instructions": "be brief",
                 "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}},
                           "output": {"voice": "marin"}}}})
    updated = await client.wait_for("session.updated")
    assert updated["session"]["instructions"] == "be brief"
    td = updated["session"]["audio"]["input"]["turn_detection"]
    assert td["silence_duration_ms"] == 300 and td["threshold"] == 0.5  # unspecified fields get defaults
    assert client.invalid == []


async def test_bad_session_update_changes_nothing(client):
    bad = [
        ({"type": "realtime", "voice": "x"}, "unknown_parameter", "session.voice"),
        ({"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
         "invalid_value", "session.audio.input.turn_detection.threshold"),
        ({"type": "realtime", "audio": {"input": {"turn_detection": {"type": "loud_vad"}}}}, "invalid_value",
         "session.audio.input.turn_detection.type"),
        ({"type": "realtime", "audio": {"output": {"speed": "fast"}}}, "invalid_value", "session.audio.output.speed"),
        ({"type": "realtime", "instructions": 7}, "invalid_type", "session.instructions"),
        ({"type": "transcription"}, "invalid_value", "session.type"),
        ({"instructions": "no type"}, "missing_required_parameter", "session.type"),
    ]
    for session, code, param in bad:
        n = len(client.events)
        client.send({"type": "session.update", "event_id": "evt_bad", "session": session})
        error = await client.wait_for("error", after=n)
        assert (error["error"]["code"], error["error"]["param"], error["error"]["event_id"]) == (code, param, "evt_bad")
    updated = await configure(client)
    assert updated["session"]["audio"]["output"]["speed"] == 1.0
    assert "session.updated" not in client.types()[:-1]
    assert client.invalid == []


async def test_voice_turn_vad_transcript_and_reply_audio(client):
    require(tts.available(), "espeak-ng (apt install espeak-ng)")
    await configure(client)
    client.mic.say(tone(0.8))
    started = await client.wait_for("input_audio_buffer.speech_started")
    stopped = await client.wait_for("input_audio_buffer.speech_stopped")
    assert stopped["item_id"] == started["item_id"]
    assert 800 <= stopped["audio_end_ms"] - started["audio_start_ms"] <= 1300  # speech + prefix padding
    committed = await client.wait_for("input_audio_buffer.committed")
    assert committed["item_id"] == started["item_id"]
    heard = await client.wait_for("conversation.item.input_audio_transcription.completed")
    assert heard["item_id"] == started["item_id"] and "seconds of speech" in heard["transcript"]
    audio_started = await client.wait_for("output_audio_buffer.started")
    latency = event_time(client, audio_started) - event_time(client, stopped)
    reply_text = (await client.wait_for("response.output_audio_transcript.done", timeout=20))["transcript"]
    synth_started = time.monotonic()
    await tts.speak(reply_text)  # what the reply's synthesis costs on this machine, now
    synth = time.monotonic() - synth_started
    # 0.5 s, espeak-ng included, on an idle machine; on a loaded one espeak-ng alone took longer
    # (0.57 s seen at load average 10), so the agent's own share is what is bounded there.
    assert latency < max(0.5, synth + 0.3), (latency, synth)
    done = await client.wait_for("response.done", timeout=20)
    assert done["response"]["status"] == "completed"
    assert audio_started["response_id"] == done["response"]["id"]
    deltas = [e["delta"] for e in client.events if e["type"] == "response.output_audio_transcript.delta"]
    transcript = (await client.wait_for("response.output_audio_transcript.done"))["transcript"]
    assert len(deltas) > 3 and "".join(deltas) == transcript
    assert "offline stand-in" in transcript  # honest about what it is
    assert "I heard 0.8 seconds" in transcript and "no words" in transcript  # a tone has no words
    await client.wait_for("output_audio_buffer.stopped")
    assert client.loud_frames(since=event_time(client, audio_started)) > 25  # > 0.5 s of speech reached us
    order = client.types()
    for a, b in [("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"),
                 ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed"),
                 ("input_audio_buffer.committed", "response.created"),
                 ("response.created", "response.output_item.added"),
                 ("response.content_part.added", "output_audio_buffer.started"),
                 ("output_audio_buffer.started", "response.output_audio_transcript.done"),
                 ("response.output_audio_transcript.done", "response.output_audio.done"),
                 ("response.output_item.done", "response.done"),
                 ("response.done", "output_audio_buffer.stopped")]:
        assert order.index(a) < order.index(b), (a, b)
    assert client.invalid == []


async def test_vad_threshold_and_silence_duration_are_honoured(client):
    words = spoken("hello sandra", peak_dbfs=-12)
    assert -34 < rms_dbfs(words) < -26  # about -30 dBFS over the words and the pauses between them
    await configure(client, threshold=0.95, silence_duration_ms=700)  # 0.95: frames under -22 dBFS are quiet
    client.mic.say(words)
    await asyncio.sleep(len(words) / 48000 + 0.5)
    assert "input_audio_buffer.speech_started" not in client.types()
    await configure(client, threshold=0.5, silence_duration_ms=700)
    client.mic.say(words)
    started = await client.wait_for("input_audio_buffer.speech_started")
    stopped = await client.wait_for("input_audio_buffer.speech_stopped")
    waited = event_time(client, stopped) - event_time(client, started)
    # the words less the first 40 ms, + 0.7 s of silence (event timing on one loop: +-0.3 s)
    assert len(words) / 48000 + 0.3 <= waited <= len(words) / 48000 + 1.1, waited
    assert client.invalid == []


async def test_typed_message_gets_spoken_and_transcribed_reply(client):
    client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": "hola Sandra"}]}})
    client.send({"type": "response.create"})
    added = await client.wait_for("conversation.item.added", item__role="user")
    assert added["item"]["content"][0]["text"] == "hola Sandra"
    done = await client.wait_for("response.output_audio_transcript.done", timeout=20)
    # typed text goes through the intents too: Spanish in, Spanish out
    assert done["transcript"].startswith("Escribiste: hola Sandra. Hola.") and "sin conexión" in done["transcript"]
    await client.wait_for("response.done", timeout=10)
    assert client.loud_frames() > 10
    assert client.invalid == []


async def test_barge_in_cancels_the_reply(client):
    await configure(client)
    client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": "tell me a long story " * 5}]}})
    client.send({"type": "response.create"})
    await client.wait_for("output_audio_buffer.started", timeout=15)
    await asyncio.sleep(0.5)
    client.mic.say(tone(0.6))
    await client.wait_for("input_audio_buffer.speech_started")
    cancelled = await client.wait_for("response.done", response__status="cancelled")
    assert cancelled["response"]["status_details"]["reason"] == "turn_detected"
    assert cancelled["response"]["output"][0]["status"] == "incomplete"
    cleared = await client.wait_for("output_audio_buffer.cleared")
    assert cleared["response_id"] == cancelled["response"]["id"]
    t_cleared = event_time(client, cleared)
    await asyncio.sleep(0.4)
    # no reply audio after the clear (one jitter-buffer's worth may still drain)
    assert client.loud_frames(since=t_cleared + 0.2) <= 3
    # the user's interruption is a turn of its own and gets a reply
    await client.wait_for("response.done", response__status="completed", timeout=20)
    assert client.invalid == []


async def test_cancel_clear_truncate_delete_retrieve(client):
    client.send({"type": "response.create"})
    created = await client.wait_for("response.created")
    await client.wait_for("output_audio_buffer.started")
    await asyncio.sleep(0.3)
    client.send({"type": "response.cancel"})
    done = await client.wait_for("response.done")
    assert done["response"]["id"] == created["response"]["id"] and done["response"]["status"] == "cancelled"
    await client.wait_for("output_audio_buffer.cleared")
    item_id = done["response"]["output"][0]["id"]
    n = len(client.events)
    client.send({"type": "response.cancel"})  # nothing left to cancel: an error, like the real API
    assert (await client.wait_for("error", after=n))["error"]["code"] == "response_cancel_not_active"
    client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                 "audio_end_ms": 100000})
    truncated = await client.wait_for("conversation.item.truncated")
    assert truncated["item_id"] == item_id and 200 <= truncated["audio_end_ms"] < 5000  # clamped to what was sent
    client.send({"type": "conversation.item.retrieve", "item_id": item_id})
    retrieved = await client.wait_for("conversation.item.retrieved")
    assert retrieved["item"]["role"] == "assistant" and retrieved["item"]["content"][0]["transcript"] == ""
    client.send({"type": "conversation.item.delete", "item_id": item_id})
    assert (await client.wait_for("conversation.item.deleted"))["item_id"] == item_id
    n = len(client.events)
    client.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 1})
    assert (await client.wait_for("error", after=n))["error"]["code"] == "item_not_found"
    assert client.invalid == []


async def test_bad_events_get_error_and_call_stays_up(client, agent_server):
    client.dc.send("{nope")
    client.send({"type": "no.such.event"})
    client.send({"type": "session.update", "session": "not an object"})
    client.send(["a", "list"])  # type: ignore[arg-type]
    client.send({"type": "conversation.item.create", "item": {"type": "function_call"}})
    client.send({"type": "conversation.item.truncate", "item_id": "item_x", "content_index": 0, "audio_end_ms": -5})
    client.send({"type": "input_audio_buffer.append", "audio": "AAAA"})
    client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": 5}]}})
    client.dc.send("x" * 50000)
    await asyncio.sleep(0.5)
    errors = [e["error"]["code"] for e in client.events if e["type"] == "error"]
    assert errors == ["invalid_json", "unknown_event", "invalid_type", "invalid_event", "invalid_value",
                      "invalid_value", "unsupported_event", "invalid_type", "invalid_json"]
    client.send({"type": "response.create"})
    await client.wait_for("response.created")
    n = len(client.events)
    client.send({"type": "response.create", "event_id": "evt_2"})  # one response at a time, as the real API
    error = await client.wait_for("error", after=n)
    assert error["error"]["code"] == "conversation_already_has_active_response"
    assert error["error"]["event_id"] == "evt_2"
    await client.wait_for("response.done", timeout=20)
    assert len(agent_server.calls) == 1
    assert client.invalid == []


async def test_echo_mode_plays_the_callers_audio_back(client, agent_server):
    await configure(client)
    await agent_server.faults(agent_mode="echo")
    client.mic.say(tone(0.5, hz=500))
    stopped = await client.wait_for("input_audio_buffer.speech_stopped")
    t_stop = event_time(client, stopped)
    await client.wait_for("output_audio_buffer.started")
    await client.wait_for("response.done")
    loud = [t for t, db in client.frames if t >= t_stop and db > -45]
    assert 20 <= len(loud) <= 35  # ~0.5 s of the tone came back, without the silences around it
    assert loud[0] - t_stop < 0.3  # the first echoed frame right after speech_stopped (+ jitter buffer)
    assert client.invalid == []


async def test_echo_mode_by_session_instructions(agent_server):
    echo, plain = RawClient(agent_server.url), RawClient(agent_server.url)
    try:
        await asyncio.gather(echo.connect(), plain.connect())
        await configure(plain)
        n = len(echo.events)
        echo.send({"type": "session.update", "session": {"type": "realtime", "instructions": "echo"}})
        await echo.wait_for("session.updated", after=n)
        echo.mic.say(tone(0.5, hz=500))
        done = await echo.wait_for("response.output_audio_transcript.done")
        assert done["transcript"] == "(echo)"
        assert agent_server.app[FAULTS].agent_mode == "reply"  # per call, not a global switch
        plain.mic.say(tone(0.5, hz=500))
        done = await plain.wait_for("response.output_audio_transcript.done", timeout=20)
        assert "offline stand-in" in done["transcript"]  # one call's session does not change another's
    finally:
        await asyncio.gather(echo.close(), plain.close())


async def test_manual_turns_without_vad(client):
    updated = await configure(client, transcription=True)
    n = len(client.events)
    client.send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    updated = await client.wait_for("session.updated", after=n)
    assert updated["session"]["audio"]["input"]["turn_detection"] is None
    client.mic.say(tone(0.6))
    await asyncio.sleep(1.0)
    assert "input_audio_buffer.speech_started" not in client.types()
    client.send({"type": "input_audio_buffer.commit"})
    committed = await client.wait_for("input_audio_buffer.committed")
    await client.wait_for("conversation.item.done", item__id=committed["item_id"])
    assert "response.created" not in client.types()  # without VAD the client asks for the reply
    client.send({"type": "response.create"})
    done = await client.wait_for("response.output_audio_transcript.done", timeout=20)
    assert "I heard" in done["transcript"]
    await client.wait_for("response.done")
    n = len(client.events)
    client.send({"type": "input_audio_buffer.clear"})
    client.send({"type": "input_audio_buffer.commit"})  # under 100 ms of audio: refused, as by the real API
    await client.wait_for("input_audio_buffer.cleared", after=n)
    assert (await client.wait_for("error", after=n))["error"]["code"] == "input_audio_buffer_commit_empty"
    assert client.invalid == []


async def test_without_espeak_the_reply_replays_the_callers_audio(client, monkeypatch):
    monkeypatch.setattr(tts, "available", lambda: False)
    await configure(client)
    client.mic.say(tone(0.7, hz=400))
    stopped = await client.wait_for("input_audio_buffer.speech_stopped")
    done = await client.wait_for("response.output_audio_transcript.done")
    assert "I heard 0.7 seconds" in done["transcript"]  # still an honest text
    await client.wait_for("output_audio_buffer.stopped")
    loud = client.loud_frames(since=event_time(client, stopped))
    assert 28 <= loud <= 45, loud
    assert client.invalid == []

