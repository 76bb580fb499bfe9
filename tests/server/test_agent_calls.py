"""A plain aiortc client against the real agent app over loopback: turns, typed text, barge-in."""

import asyncio
import time

import pytest

from sandra_tui.server import tts
from tests.conftest import require
from tests.rtc_client import RawClient, tone


@pytest.fixture
async def client(agent_server):
    c = RawClient(agent_server.url)
    await c.connect()
    yield c
    await c.close()


async def test_session_created_and_update(client):
    await client.wait_for("session.created")
    client.send({"type": "session.update", "session": {"type": "realtime", "instructions": "be brief",
                 "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}})
    updated = await client.wait_for("session.updated")
    assert updated["session"]["instructions"] == "be brief"
    assert updated["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 300
    assert client.invalid == []


async def test_voice_turn_vad_transcript_and_reply_audio(client):
    require(tts.available(), "espeak-ng (apt install espeak-ng)")
    await client.wait_for("session.created")
    client.mic.say(tone(0.8))
    started = await client.wait_for("input_audio_buffer.speech_started")
    stopped = await client.wait_for("input_audio_buffer.speech_stopped")
    assert stopped["audio_end_ms"] - started["audio_start_ms"] >= 700
    await client.wait_for("input_audio_buffer.committed")
    done_user = await client.wait_for("conversation.item.input_audio_transcription.completed")
    assert "seconds of speech" in done_user["transcript"]
    await client.wait_for("output_audio_buffer.started")
    t_audio = time.monotonic()
    done = await client.wait_for("response.done", timeout=20)
    assert done["response"]["status"] == "completed"
    deltas = [e["delta"] for e in client.events if e["type"] == "response.output_audio_transcript.delta"]
    transcript = (await client.wait_for("response.output_audio_transcript.done"))["transcript"]
    assert len(deltas) > 3 and "".join(deltas) == transcript
    assert "local test agent" in transcript and "not a language model" in transcript
    await client.wait_for("output_audio_buffer.stopped")
    assert client.loud_frames(since=t_audio) > 25  # > 0.5 s of speech reached us
    order = client.types()
    for a, b in [("input_audio_buffer.speech_stopped", "input_audio_buffer.committed"),
                 ("input_audio_buffer.committed", "response.created"),
                 ("response.created", "output_audio_buffer.started"),
                 ("response.output_audio_transcript.done", "response.done")]:
        assert order.index(a) < order.index(b), (a, b)
    assert client.invalid == []


async def test_typed_message_gets_spoken_and_transcribed_reply(client):
    await client.wait_for("session.created")
    client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": "hola Sandra"}]}})
    client.send({"type": "response.create"})
    await client.wait_for("conversation.item.added", item__role="user")
    done = await client.wait_for("response.output_audio_transcript.done", timeout=20)
    assert "hola Sandra" in done["transcript"]
    assert client.loud_frames() > 10
    assert client.invalid == []


async def test_barge_in_cancels_the_reply(client):
    await client.wait_for("session.created")
    client.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                 "content": [{"type": "input_text", "text": "tell me a long story " * 5}]}})
    client.send({"type": "response.create"})
    await client.wait_for("output_audio_buffer.started", timeout=15)
    await asyncio.sleep(0.5)
    client.mic.say(tone(0.6))
    await client.wait_for("input_audio_buffer.speech_started")
    cancelled = await client.wait_for("response.done", response__status="cancelled")
    assert cancelled["response"]["status"] == "cancelled"
    cleared = await client.wait_for("output_audio_buffer.cleared")
    assert cleared["response_id"] == cancelled["response"]["id"]
    t_cleared = client.event_times[client.events.index(cleared)]
    await asyncio.sleep(0.4)
    # no reply audio after the clear (one jitter-buffer's worth may still drain)
    assert client.loud_frames(since=t_cleared + 0.2) <= 3
    assert client.invalid == []


async def test_response_cancel_and_truncate(client):
    await client.wait_for("session.created")
    client.send({"type": "response.create"})
    created = await client.wait_for("response.created")
    client.send({"type": "response.cancel"})
    done = await client.wait_for("response.done")
    assert done["response"]["id"] == created["response"]["id"] and done["response"]["status"] == "cancelled"
    client.send({"type": "conversation.item.truncate", "item_id": "item_x", "content_index": 0, "audio_end_ms": 120})
    truncated = await client.wait_for("conversation.item.truncated")
    assert truncated["audio_end_ms"] == 120
    assert client.invalid == []


async def test_bad_events_get_error_and_call_stays_up(client, agent_server):
    await client.wait_for("session.created")
    client.dc.send("{nope")
    client.send({"type": "no.such.event"})
    client.send({"type": "session.update", "session": "not an object"})
    client.send(["a", "list"])  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    errors = [e for e in client.events if e["type"] == "error"]
    assert [e["error"]["code"] for e in errors] == ["invalid_json", "unknown_event", "invalid_value", "invalid_event"]
    client.send({"type": "response.create"})
    await client.wait_for("response.created")
    assert len(agent_server.calls) == 1
    assert client.invalid == []


async def test_echo_mode_plays_the_callers_audio_back(client, agent_server):
    await client.wait_for("session.created")
    await agent_server.faults(agent_mode="echo")
    client.mic.say(tone(0.5, hz=500))
    stopped = await client.wait_for("input_audio_buffer.speech_stopped")
    t_stop = client.event_times[client.events.index(stopped)]
    await client.wait_for("output_audio_buffer.started")
    await client.wait_for("response.done")
    assert client.loud_frames(since=t_stop) >= 20  # ~0.5 s of the tone came back
