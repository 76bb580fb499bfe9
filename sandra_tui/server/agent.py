"""The local Sandra: an honest stand-in that speaks the OpenAI Realtime protocol.

Per call: server VAD on the caller's audio, one spoken reply per user turn (espeak-ng, or the
caller's own audio when espeak-ng is missing), the reply transcript streamed as deltas while
the audio plays, typed messages answered the same way, and barge-in. Event names and shapes
follow the GA Realtime API (validated against the openai SDK's models in the tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque

import numpy as np
from aiortc.mediastreams import MediaStreamError

from sandra_tui.server import tts
from sandra_tui.server.audio_track import AgentAudioTrack
from sandra_tui.server.faults import Faults
from sandra_tui.server.vad import EnergyVad

log = logging.getLogger("sandra_tui.server.agent")
INTRO = "This is Sandra's local test agent, not a language model."
CLIENT_EVENTS = {
    "session.update", "conversation.item.create", "response.create", "response.cancel",
    "output_audio_buffer.clear", "conversation.item.truncate", "input_audio_buffer.clear",
    "input_audio_buffer.commit", "conversation.item.delete", "conversation.item.retrieve",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def default_session(model: str, voice: str) -> dict:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                   "silence_duration_ms": 500, "create_response": True,
                                   "interrupt_response": True, "idle_timeout_ms": None},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice, "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "expires_at": int(time.time()) + 600,
        "include": None,
    }


def _merge(base: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


class LocalAgentCall:
    """The conversation side of one call; the peer connection is owned by calls.CallRegistry."""

    def __init__(self, call_id: str, faults: Faults, model: str, voice: str) -> None:
        self.call_id = call_id
        self.faults = faults
        self.session = default_session(model, voice)
        self.track = AgentAudioTrack()
        self.track.on_started = self._on_audio_started
        self.track.on_drained = self._on_audio_drained
        self.vad = EnergyVad()
        self.dc = None
        self.tasks: set[asyncio.Task] = set()
        self.last_rx = time.monotonic()
        self.frames_in = 0
        self._prefix: deque[np.ndarray] = deque(maxlen=15)  # 300 ms before speech_started
        self._utterance: list[np.ndarray] = []
        self._user_item: str | None = None
        self._last_item: str | None = None
        self._reply: dict | None = None  # the response in progress
        self._reply_task: asyncio.Task | None = None
        self._audio_reply: dict | None = None  # the reply whose audio is leaving now
        self.turns = 0

    # -- plumbing --------------------------------------------------------------------------------
    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"{name}-{self.call_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def send(self, kind: str, **fields) -> None:
        if self.dc is None or self.dc.readyState != "open":
            return
        event = {"event_id": new_id("event"), "type": kind, **fields}
        try:
            self.dc.send(json.dumps(event))
        except Exception:  # noqa: BLE001 - the channel closed under us: the call is ending
            pass

    def error(self, message: str, code: str, event_id: str | None = None, param: str | None = None) -> None:
        self.send("error", error={"type": "invalid_request_error", "code": code, "message": message,
                                  "param": param, "event_id": event_id})

    def attach_channel(self, dc) -> None:
        self.dc = dc

        @dc.on("message")
        def _message(raw) -> None:
            self.on_client_event(raw)

        if dc.readyState == "open":
            self._greet()
        else:
            dc.on("open", self._greet)

    def _greet(self) -> None:
        self.send("session.created", session=self.session)

    async def consume(self, track) -> None:
        """Read the caller's audio: VAD, utterance capture, liveness."""
        while True:
            try:
                frame = await track.recv()
            except (MediaStreamError, asyncio.CancelledError):
                return
            self.last_rx = time.monotonic()
            self.frames_in += 1
            samples = _mono(frame)
            if frame.sample_rate != 48000:
                continue
            for start in range(0, len(samples) - 959, 960):
                self._on_input_frame(samples[start : start + 960])

    # -- audio in --------------------------------------------------------------------------------
    def _vad_enabled(self) -> bool:
        td = self.session["audio"]["input"].get("turn_detection")
        return bool(td) and td.get("type") in ("server_vad", "semantic_vad")

    def _on_input_frame(self, samples: np.ndarray) -> None:
        if not self._vad_enabled():
            self._utterance.append(samples)  # manual turns: input_audio_buffer.commit ends them
            return
        event = self.vad.feed(samples)
        if self.vad.speaking or (event and event.kind == "speech_stopped"):
            self._utterance.append(samples)
        else:
            self._prefix.append(samples)
        if event is None:
            return
        if event.kind == "speech_started":
            self._user_item = new_id("item")
            self._utterance = list(self._prefix) + self._utterance
            self._prefix.clear()
            self.send("input_audio_buffer.speech_started", audio_start_ms=event.ms, item_id=self._user_item)
            td = self.session["audio"]["input"]["turn_detection"]
            if self._reply is not None and td.get("interrupt_response", True):
                self._cancel_reply("barge-in")
        else:
            self.send("input_audio_buffer.speech_stopped", audio_end_ms=event.ms, item_id=self._user_item)
            self._commit_utterance()

    def _commit_utterance(self) -> None:
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, dtype=np.int16)
        self._utterance = []
        item_id = self._user_item or new_id("item")
        self._user_item = None
        seconds = len(audio) / 48000
        self.send("input_audio_buffer.committed", item_id=item_id, previous_item_id=self._last_item)
        item = {"id": item_id, "type": "message", "role": "user", "object": "realtime.item",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        self._last_item = item_id
        transcript = f"[{seconds:.1f} seconds of speech]"
        self.send("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0,
                  transcript=transcript, usage={"type": "duration", "seconds": round(seconds, 2)})
        item["content"][0]["transcript"] = transcript
        self.send("conversation.item.done", item=item, previous_item_id=None)
        td = self.session["audio"]["input"].get("turn_detection") or {}
        if td.get("create_response", True):
            if self.faults.agent_mode == "echo":
                self.start_reply("(echo)", audio)
            else:
                self.start_reply(f"{INTRO} I heard {seconds:.1f} seconds of audio.", audio)

    # -- replies ---------------------------------------------------------------------------------
    def start_reply(self, text: str, fallback_audio: np.ndarray | None = None) -> None:
        if self._reply is not None:
            self._cancel_reply("superseded")
        response_id, item_id = new_id("resp"), new_id("item")
        self._reply = {"id": response_id, "item": item_id, "text": text, "sent": "", "audio_started": False}
        self._reply_task = self.spawn(self._run_reply(self._reply, fallback_audio), "reply")

    def _response(self, reply: dict, status: str, output: list | None = None) -> dict:
        return {"id": reply["id"], "object": "realtime.response", "status": status,
                "status_details": None if status != "cancelled" else {"type": "cancelled", "reason": "turn_detected"},
                "output": output or [], "conversation_id": "conv_local", "output_modalities": ["audio"],
                "max_output_tokens": "inf", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000},
                                                                 "voice": self.session["audio"]["output"]["voice"]}},
                "usage": None, "metadata": None}

    def _assistant_item(self, reply: dict, status: str, transcript: str | None) -> dict:
        return {"id": reply["item"], "type": "message", "role": "assistant", "object": "realtime.item",
                "status": status, "content": [{"type": "output_audio", "transcript": transcript}]}

    async def _run_reply(self, reply: dict, fallback_audio: np.ndarray | None) -> None:
        rid, iid, text = reply["id"], reply["item"], reply["text"]
        self.send("response.created", response=self._response(reply, "in_progress"))
        self.send("response.output_item.added", response_id=rid, output_index=0,
                  item=self._assistant_item(reply, "in_progress", None))
        self.send("conversation.item.added", item=self._assistant_item(reply, "in_progress", None),
                  previous_item_id=self._last_item)
        self._last_item = iid
        self.send("response.content_part.added", response_id=rid, item_id=iid, output_index=0, content_index=0,
                  part={"type": "audio", "transcript": ""})
        if self.faults.agent_mode == "echo" and fallback_audio is not None and len(fallback_audio):
            audio = fallback_audio
        else:
            audio = await tts.speak(text) if tts.available() else None
            if audio is None or not len(audio):
                audio = fallback_audio if fallback_audio is not None and len(fallback_audio) else _tone(0.6)
        duration = self.track.play(audio)
        words = text.split(" ")
        step = max(0.02, duration / max(1, len(words)))
        for i, word in enumerate(words):
            delta = word if i == 0 else " " + word
            reply["sent"] += delta
            self.send("response.output_audio_transcript.delta", response_id=rid, item_id=iid, output_index=0,
                      content_index=0, delta=delta)
            await asyncio.sleep(step)
        while self.track.queued_ms > 0:
            await asyncio.sleep(0.02)
        self._finish_reply(reply)

    def _finish_reply(self, reply: dict) -> None:
        rid, iid, text = reply["id"], reply["item"], reply["text"]
        self.send("response.output_audio_transcript.done", response_id=rid, item_id=iid, output_index=0,
                  content_index=0, transcript=text)
        self.send("response.output_audio.done", response_id=rid, item_id=iid, output_index=0, content_index=0)
        self.send("response.content_part.done", response_id=rid, item_id=iid, output_index=0, content_index=0,
                  part={"type": "audio", "transcript": text})
        item = self._assistant_item(reply, "completed", text)
        self.send("response.output_item.done", response_id=rid, output_index=0, item=item)
        self.send("conversation.item.done", item=item, previous_item_id=None)
        self.send("response.done", response=self._response(reply, "completed", [item]))
        self.turns += 1
        if self._reply is reply:
            self._reply = None

    def _cancel_reply(self, why: str) -> None:
        reply, self._reply = self._reply, None
        if reply is None:
            return
        if self._reply_task is not None:
            self._reply_task.cancel()
        self.track.clear()
        item = self._assistant_item(reply, "incomplete", reply["sent"])
        self.send("response.done", response=self._response(reply, "cancelled", [item]))
        if reply["audio_started"]:
            self._audio_reply = None
            self.send("output_audio_buffer.cleared", response_id=reply["id"])
        log.info("call %s: reply cancelled (%s)", self.call_id, why)

    def _on_audio_started(self) -> None:
        if self._reply is not None:
            self._reply["audio_started"] = True
            self._audio_reply = self._reply
            self.send("output_audio_buffer.started", response_id=self._reply["id"])

    def _on_audio_drained(self) -> None:
        # The reply may be done already (response.done comes before the last audio leaves).
        reply, self._audio_reply = self._audio_reply, None
        if reply is not None:
            self.send("output_audio_buffer.stopped", response_id=reply["id"])

    # -- client events ---------------------------------------------------------------------------
    def on_client_event(self, raw) -> None:
        try:
            event = json.loads(raw)
        except (ValueError, TypeError):
            self.error("The event is not valid JSON.", "invalid_json")
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self.error("Events must be JSON objects with a string 'type'.", "invalid_event")
            return
        kind, event_id = event["type"], event.get("event_id")
        if kind not in CLIENT_EVENTS:
            self.error(f"Unknown event type {kind[:80]!r}.", "unknown_event", event_id, "type")
            return
        handler = getattr(self, "_client_" + kind.replace(".", "_"), None)
        try:
            if handler is None:
                self.error(f"{kind} is not supported by the local agent.", "unsupported_event", event_id, "type")
            else:
                handler(event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.error(f"Malformed {kind}: {exc}", "invalid_value", event_id)

    def _client_session_update(self, event: dict) -> None:
        patch = event["session"]
        if not isinstance(patch, dict):
            raise TypeError("session must be an object")
        patch = {k: v for k, v in patch.items() if k not in ("id", "object", "expires_at")}
        _merge(self.session, patch)
        td = self.session["audio"]["input"].get("turn_detection") or {}
        if td:
            self.vad.configure(float(td.get("threshold", 0.5)), int(td.get("prefix_padding_ms", 300)),
                               int(td.get("silence_duration_ms", 500)))
        if (self.session.get("instructions") or "").strip().lower() == "echo":
            self.faults.agent_mode = "echo"
        self.send("session.updated", session=self.session)

    def _client_conversation_item_create(self, event: dict) -> None:
        item = dict(event["item"])
        if item.get("type") != "message" or item.get("role") not in ("user", "assistant", "system"):
            raise ValueError("only message items are supported")
        content = item.get("content")
        if not isinstance(content, list):
            raise TypeError("item.content must be a list")
        item.setdefault("id", new_id("item"))
        item["object"] = "realtime.item"
        item["status"] = "completed"
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        self.send("conversation.item.done", item=item, previous_item_id=self._last_item)
        self._last_item = item["id"]
        if item["role"] == "user":
            texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "input_text"]
            self._pending_text = " ".join(t for t in texts if t)

    def _client_response_create(self, event: dict) -> None:
        text = getattr(self, "_pending_text", "")
        self._pending_text = ""
        if text:
            self.start_reply(f"{INTRO} You wrote: {text}")
        else:
            self.start_reply(f"{INTRO} How can I help?")

    def _client_response_cancel(self, event: dict) -> None:
        self._cancel_reply("response.cancel")

    def _client_output_audio_buffer_clear(self, event: dict) -> None:
        reply = self._reply
        self.track.clear()
        if reply is not None:
            self._cancel_reply("output_audio_buffer.clear")
        else:
            self.send("output_audio_buffer.cleared", response_id=None)

    def _client_conversation_item_truncate(self, event: dict) -> None:
        self.send("conversation.item.truncated", item_id=str(event["item_id"]),
                  content_index=int(event.get("content_index", 0)), audio_end_ms=int(event["audio_end_ms"]))

    def _client_input_audio_buffer_clear(self, event: dict) -> None:
        self._utterance = []
        self.send("input_audio_buffer.cleared")

    def _client_input_audio_buffer_commit(self, event: dict) -> None:
        self._user_item = self._user_item or new_id("item")
        self._commit_utterance()

    async def close(self) -> None:
        self._reply = None
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.track.stop()


def _mono(frame) -> np.ndarray:
    """A decoded frame (s16, packed, 1 or 2 channels) as mono int16."""
    data = frame.to_ndarray().reshape(-1)
    channels = len(frame.layout.channels)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data.astype(np.int16)


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(48000 * seconds)) / 48000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
