"""The local Sandra: an honest stand-in that speaks the OpenAI Realtime protocol.

Per call: server VAD on the caller's audio, one spoken reply per user turn (espeak-ng, or the
caller's own audio when espeak-ng is missing), the reply transcript streamed as deltas while
the audio plays, typed messages answered the same way, and barge-in. In echo mode (the
`agent_mode` fault, `serve --agent-mode echo`, or session instructions "echo") the reply is
the caller's own speech, played back right after speech_stopped: a round-trip latency probe.

Event names and shapes follow the GA Realtime API; the tests validate every event against
the openai SDK's models.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import secrets
import time
from collections import OrderedDict, deque

import numpy as np
from aiortc.mediastreams import MediaStreamError

from sandra_tui.protocol.realtime import CLIENT_EVENTS, SESSION_EXPIRED
from sandra_tui.server import tts
from sandra_tui.server.audio_track import FRAME, SAMPLE_RATE, AgentAudioTrack
from sandra_tui.server.faults import Faults
from sandra_tui.server.vad import FRAME_MS, EnergyVad

log = logging.getLogger("sandra_tui.server.agent")
INTRO = "This is Sandra's local test agent, not a language model."
MAX_UTTERANCE_S = 60  # the input buffer keeps at most this much audio (older audio is dropped)
MAX_ITEMS = 500  # conversation items remembered per call
MIRROR_EDGE_PEAK = 1000  # about -30 dBFS: the start of a click
MAX_TEXT_CHARS = 400  # typed text echoed back in a reply
MAX_LOGGED_ERRORS = 5  # error events logged per call (a misbehaving client cannot flood the log)


class BadEvent(Exception):
    """A client event the API would refuse: becomes an `error` event with this code and param."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


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
        "truncation": "auto",
        "expires_at": int(time.time()) + 600,
        "include": None,
    }


# What session.update may set: nested dicts list their keys, None marks a leaf.
SESSION_SCHEMA: dict = {
    "type": None, "model": None, "instructions": None, "output_modalities": None, "tools": None,
    "tool_choice": None, "max_output_tokens": None, "tracing": None, "prompt": None, "include": None,
    "truncation": None,
    "audio": {
        "input": {"format": None, "transcription": None, "noise_reduction": None, "turn_detection": None},
        "output": {"format": None, "voice": None, "speed": None},
    },
}
TURN_DETECTION_KEYS = {"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response",
                       "interrupt_response", "idle_timeout_ms", "eagerness"}


def _check_keys(patch: dict, schema: dict, path: str) -> None:
    for key, value in patch.items():
        if key not in schema:
            raise BadEvent(f"Unknown parameter: '{path}.{key}'.", "unknown_parameter", f"{path}.{key}")
        sub = schema[key]
        if sub is not None and value is not None:
            if not isinstance(value, dict):
                raise BadEvent(f"'{path}.{key}' must be an object.", "invalid_type", f"{path}.{key}")
            _check_keys(value, sub, f"{path}.{key}")


def _check_turn_detection(td) -> None:
    param = "session.audio.input.turn_detection"
    if td is None:
        return
    if not isinstance(td, dict):
        raise BadEvent(f"'{param}' must be an object or null.", "invalid_type", param)
    for key in td:
        if key not in TURN_DETECTION_KEYS:
            raise BadEvent(f"Unknown parameter: '{param}.{key}'.", "unknown_parameter", f"{param}.{key}")
    if td.get("type") not in ("server_vad", "semantic_vad"):
        raise BadEvent(f"'{param}.type' must be 'server_vad' or 'semantic_vad'.", "invalid_value", f"{param}.type")
    limits = {"threshold": (0.0, 1.0), "prefix_padding_ms": (0, 10000), "silence_duration_ms": (0, 10000)}
    for key, (low, high) in limits.items():
        value = td.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise BadEvent(f"'{param}.{key}' must be a number from {low} to {high}.", "invalid_value",
                           f"{param}.{key}")
    for key in ("create_response", "interrupt_response"):
        if key in td and not isinstance(td[key], bool):
            raise BadEvent(f"'{param}.{key}' must be a boolean.", "invalid_type", f"{param}.{key}")


def _merge(base: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "turn_detection":
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
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
        self.errors = 0
        self.turns = 0
        self.echo_session = False  # session instructions "echo"
        self._mirror_loud = False
        self._prefix: deque[np.ndarray] = deque(maxlen=self._prefix_frames())
        self._utterance: deque[np.ndarray] = deque(maxlen=MAX_UTTERANCE_S * 1000 // FRAME_MS)
        self._speech_frames = 0  # frames of the utterance that came after the prefix padding
        self._user_item: str | None = None
        self._last_item: str | None = None
        self._items: OrderedDict[str, dict] = OrderedDict()  # the conversation, for truncate/delete/retrieve
        self._reply: dict | None = None  # the response in progress
        self._reply_task: asyncio.Task | None = None
        self._audio_reply: dict | None = None  # the reply whose audio is leaving now
        self._pending_text = ""
        self._pending_audio: np.ndarray | None = None  # committed by hand (no VAD), awaiting response.create
        self.on_session_started = None  # called once session.created is sent (the session's clock starts)

    @property
    def mode(self) -> str:
        return "echo" if self.echo_session else self.faults.agent_mode

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
        self.errors += 1
        if self.errors <= MAX_LOGGED_ERRORS:  # the rest are counted in the call's closing line
            log.info("call %s: error event %s: %s", self.call_id, code, message[:200])
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
        if self.on_session_started is not None:
            self.on_session_started()
            self.on_session_started = None

    async def expire(self, max_s: float) -> None:
        """The session hit its maximum length: the `error` event OpenAI sends at 60 minutes,
        then wait (at most 2 s) until the peer has acknowledged it, since closing the peer
        connection aborts SCTP and would drop it."""
        length = f"{max_s / 60:g} minutes" if max_s % 60 == 0 else f"{max_s:g} seconds"
        self.error(f"Your session hit the maximum duration of {length}.", SESSION_EXPIRED)
        deadline = time.monotonic() + 2.0
        while self.dc is not None and self.dc.readyState == "open" and time.monotonic() < deadline:
            sctp = self.dc.transport
            if not self.dc.bufferedAmount and not sctp._outbound_queue and not sctp._sent_queue:
                return
            await asyncio.sleep(0.02)

    def _remember(self, item: dict) -> None:
        self._items[item["id"]] = item
        self._items.move_to_end(item["id"])
        while len(self._items) > MAX_ITEMS:
            self._items.popitem(last=False)

    async def consume(self, track) -> None:
        """Read the caller's audio: VAD, utterance capture, liveness."""
        while True:
            try:
                frame = await track.recv()
            except (MediaStreamError, asyncio.CancelledError):
                return
            self.last_rx = time.monotonic()
            self.frames_in += 1
            if frame.sample_rate != SAMPLE_RATE:
                continue
            samples = _mono(frame)
            for start in range(0, len(samples) - FRAME + 1, FRAME):
                self.on_input_frame(samples[start : start + FRAME])

    # -- audio in --------------------------------------------------------------------------------
    def _turn_detection(self) -> dict | None:
        return self.session["audio"]["input"].get("turn_detection")

    def _prefix_frames(self) -> int:
        return self.vad.prefix_padding_ms // FRAME_MS + 1  # + the first loud frame

    def on_input_frame(self, samples: np.ndarray) -> None:
        """One 20 ms frame of the caller's audio, mono int16 at 48 kHz."""
        if self.mode == "mirror":
            self._mirror(samples)
            return
        if not self._turn_detection():
            self._utterance.append(samples)  # manual turns: input_audio_buffer.commit ends them
            self._speech_frames += 1
            return
        event = self.vad.feed(samples)
        if self.vad.speaking or (event and event.kind == "speech_stopped"):
            self._utterance.append(samples)
            self._speech_frames += 1
        else:
            self._prefix.append(samples)
        if event is None:
            return
        if event.kind == "speech_started":
            self._user_item = new_id("item")
            # the frames that triggered the VAD went to the prefix: the speech starts 2 frames back
            lead = list(self._prefix) + list(self._utterance)
            self._utterance.clear()
            self._utterance.extend(lead)
            self._speech_frames = min(len(lead), 2)
            self._prefix.clear()
            self.send("input_audio_buffer.speech_started", audio_start_ms=event.ms, item_id=self._user_item)
            if self._reply is not None and self._turn_detection().get("interrupt_response", True):
                self._cancel_reply("barge-in", "turn_detected")
        else:
            self.send("input_audio_buffer.speech_stopped", audio_end_ms=event.ms, item_id=self._user_item)
            # drop the trailing silence that ended the turn
            self._speech_frames = min(self._speech_frames, len(self._utterance))
            quiet = min(self.vad.silence_duration_ms // FRAME_MS, self._speech_frames - 1)
            for _ in range(max(0, quiet)):
                self._utterance.pop()
                self._speech_frames -= 1
            self._commit_utterance()

    def _commit_utterance(self) -> None:
        frames = list(self._utterance)
        n = min(self._speech_frames, len(frames))
        speech = frames[len(frames) - n:] if n else []
        audio = np.concatenate(frames) if frames else np.zeros(0, dtype=np.int16)
        speech_audio = np.concatenate(speech) if speech else audio
        self._utterance.clear()
        self._speech_frames = 0
        item_id = self._user_item or new_id("item")
        self._user_item = None
        seconds = len(speech_audio) / SAMPLE_RATE
        self.send("input_audio_buffer.committed", item_id=item_id, previous_item_id=self._last_item)
        item = {"id": item_id, "type": "message", "role": "user", "object": "realtime.item",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        previous, self._last_item = self._last_item, item_id
        if self.session["audio"]["input"].get("transcription"):
            transcript = f"[{seconds:.1f} seconds of speech]"  # no speech recognition here: say so
            self.send("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0,
                      transcript=transcript, usage={"type": "duration", "seconds": round(seconds, 2)})
            item["content"][0]["transcript"] = transcript
        self.send("conversation.item.done", item=item, previous_item_id=previous)
        self._remember(item)
        td = self._turn_detection()
        if not td or not td.get("create_response", True):
            self._pending_audio = speech_audio  # the client asks with response.create, as with the real API
        else:
            if self.mode == "echo":
                self.start_reply("(echo)", speech_audio, echo=True)
            else:
                self.start_reply(f"{INTRO} I heard {seconds:.1f} seconds of audio.", speech_audio)

    def _mirror(self, samples: np.ndarray) -> None:
        """Mirror mode: every frame straight back, no VAD, no events: a round-trip probe."""
        loud = int(np.abs(samples.astype(np.int32)).max()) > MIRROR_EDGE_PEAK
        edge = loud and not self._mirror_loud
        self._mirror_loud = loud
        self.track.mirror(samples, time.monotonic() if edge else None)

    # -- replies ---------------------------------------------------------------------------------
    def start_reply(self, text: str, fallback_audio: np.ndarray | None = None, echo: bool = False) -> dict:
        if self._reply is not None:
            self._cancel_reply("superseded", "turn_detected")
        response_id, item_id = new_id("resp"), new_id("item")
        reply = {"id": response_id, "item": item_id, "text": text, "sent": "", "audio_started": False,
                 "audio_s": 0.0, "frames_at_start": 0}
        self._reply = reply
        self._reply_task = self.spawn(self._run_reply(reply, fallback_audio, echo), "reply")
        return reply

    def _response(self, reply: dict, status: str, output: list | None = None, reason: str | None = None) -> dict:
        details = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": reason or "client_cancelled"}
        return {"id": reply["id"], "object": "realtime.response", "status": status, "status_details": details,
                "output": output or [], "conversation_id": "conv_local", "output_modalities": ["audio"],
                "max_output_tokens": "inf", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000},
                                                                 "voice": self.session["audio"]["output"]["voice"]}},
                "usage": None, "metadata": None}

    def _assistant_item(self, reply: dict, status: str, transcript: str | None) -> dict:
        return {"id": reply["item"], "type": "message", "role": "assistant", "object": "realtime.item",
                "status": status, "content": [{"type": "output_audio", "transcript": transcript}]}

    async def _run_reply(self, reply: dict, fallback_audio: np.ndarray | None, echo: bool) -> None:
        rid, iid, text = reply["id"], reply["item"], reply["text"]
        self.send("response.created", response=self._response(reply, "in_progress"))
        item = self._assistant_item(reply, "in_progress", None)
        self.send("response.output_item.added", response_id=rid, output_index=0, item=item)
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        self._last_item = iid
        self.send("response.content_part.added", response_id=rid, item_id=iid, output_index=0, content_index=0,
                  part={"type": "audio", "transcript": ""})
        if echo and fallback_audio is not None and len(fallback_audio):
            audio = fallback_audio
        else:
            audio = None
            if tts.available():
                speed = self.session["audio"]["output"].get("speed") or 1.0
                audio = await tts.speak(text, words_per_minute=int(260 * float(speed)))
            if audio is None or not len(audio):
                audio = fallback_audio if fallback_audio is not None and len(fallback_audio) else _tone(0.6)
        reply["frames_at_start"] = self.track.frames_sent
        duration = self.track.play(audio)
        reply["audio_s"] = duration
        words = text.split(" ")
        step = max(0.02, 0.8 * duration / max(1, len(words)))  # the transcript runs a little ahead
        for i, word in enumerate(words):
            delta = word if i == 0 else " " + word
            reply["sent"] += delta
            self.send("response.output_audio_transcript.delta", response_id=rid, item_id=iid, output_index=0,
                      content_index=0, delta=delta)
            await asyncio.sleep(step)
        deadline = time.monotonic() + self.track.queued_ms / 1000 + 2.0
        while self.track.queued_ms > 0:
            if time.monotonic() > deadline:  # nobody is pulling our audio (no sending transceiver)
                self.track.clear()
                break
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
        self._remember({**item, "_audio_ms": int(reply["audio_s"] * 1000)})
        self.send("response.output_item.done", response_id=rid, output_index=0, item=item)
        self.send("conversation.item.done", item=item, previous_item_id=None)
        self.send("response.done", response=self._response(reply, "completed", [item]))
        self.turns += 1
        if self._reply is reply:
            self._reply = None
        if reply.get("drained") and self._audio_reply is reply:
            self._audio_reply = None
            self.send("output_audio_buffer.stopped", response_id=reply["id"])

    def _cancel_reply(self, why: str, reason: str = "client_cancelled") -> None:
        reply, self._reply = self._reply, None
        if reply is None:
            return
        if self._reply_task is not None:
            self._reply_task.cancel()
        self.track.clear()
        item = self._assistant_item(reply, "incomplete", reply["sent"])
        heard_ms = (self.track.frames_sent - reply["frames_at_start"]) * FRAME_MS if reply["audio_started"] else 0
        self._remember({**item, "_audio_ms": min(heard_ms, int(reply["audio_s"] * 1000))})
        self.send("response.output_item.done", response_id=reply["id"], output_index=0, item=item)
        self.send("conversation.item.done", item=item, previous_item_id=None)
        self.send("response.done", response=self._response(reply, "cancelled", [item], reason))
        if reply["audio_started"]:
            self._audio_reply = None
            self.send("output_audio_buffer.cleared", response_id=reply["id"])
        log.debug("call %s: reply cancelled (%s)", self.call_id, why)

    def _on_audio_started(self) -> None:
        if self._reply is not None:
            self._reply["audio_started"] = True
            self._audio_reply = self._reply
            self.send("output_audio_buffer.started", response_id=self._reply["id"])

    def _on_audio_drained(self) -> None:
        reply = self._audio_reply
        if reply is None:
            return
        if reply is self._reply:  # still finishing: stopped follows its response.done
            reply["drained"] = True
            return
        self._audio_reply = None
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
        if event_id is not None and not isinstance(event_id, str):
            self.error("'event_id' must be a string.", "invalid_type", None, "event_id")
            return
        if kind not in CLIENT_EVENTS:
            self.error(f"Unknown event type {kind[:80]!r}.", "unknown_event", event_id, "type")
            return
        handler = getattr(self, "_client_" + kind.replace(".", "_"))
        try:
            handler(event)
        except BadEvent as exc:
            self.error(str(exc), exc.code, event_id, exc.param)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            self.error(f"Malformed {kind}: {detail}"[:300], "invalid_value", event_id)

    def _client_session_update(self, event: dict) -> None:
        patch = event.get("session")
        if not isinstance(patch, dict):
            raise BadEvent("'session' must be an object.", "invalid_type", "session")
        patch = {k: v for k, v in patch.items() if k not in ("id", "object", "expires_at")}
        _check_keys(patch, SESSION_SCHEMA, "session")
        if "type" not in patch:
            raise BadEvent("Missing required parameter: 'session.type'.", "missing_required_parameter",
                           "session.type")
        if patch["type"] != "realtime":
            raise BadEvent("'session.type' must be 'realtime' here.", "invalid_value", "session.type")
        candidate = _merge(copy.deepcopy(self.session), patch)
        td = candidate["audio"]["input"].get("turn_detection")
        _check_turn_detection(td)
        if td is not None:
            full = default_session("", "")["audio"]["input"]["turn_detection"]
            full.update(td)
            candidate["audio"]["input"]["turn_detection"] = td = full
            self.vad.configure(float(td["threshold"]), int(td["prefix_padding_ms"]), int(td["silence_duration_ms"]))
            self._prefix = deque(self._prefix, maxlen=self._prefix_frames())
        speed = candidate["audio"]["output"].get("speed")
        if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                                  or not 0.25 <= speed <= 1.5):
            raise BadEvent("'session.audio.output.speed' must be from 0.25 to 1.5.", "invalid_value",
                           "session.audio.output.speed")
        instructions = candidate.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise BadEvent("'session.instructions' must be a string.", "invalid_type", "session.instructions")
        self.session = candidate
        self.echo_session = (instructions or "").strip().lower() == "echo"
        self.send("session.updated", session=self.session)

    def _client_conversation_item_create(self, event: dict) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            raise BadEvent("'item' must be an object.", "invalid_type", "item")
        item = copy.deepcopy(item)
        if item.get("type") != "message" or item.get("role") not in ("user", "assistant", "system"):
            raise BadEvent("The local agent accepts message items (user, assistant, system) only.",
                           "invalid_value", "item.type")
        content = item.get("content")
        if not isinstance(content, list) or not all(isinstance(c, dict) for c in content):
            raise BadEvent("'item.content' must be a list of objects.", "invalid_type", "item.content")
        allowed = {"user": ("input_text", "input_audio"), "system": ("input_text",),
                   "assistant": ("output_text", "output_audio")}[item["role"]]
        for part in content:
            if part.get("type") not in allowed:
                raise BadEvent(f"A {item['role']} message takes content of type {' or '.join(allowed)}.",
                               "invalid_value", "item.content")
            if part["type"] in ("input_text", "output_text") and not isinstance(part.get("text"), str):
                raise BadEvent("Text content needs a string 'text'.", "invalid_type", "item.content.text")
        item_id = item.get("id")
        if item_id is not None and (not isinstance(item_id, str) or not 0 < len(item_id) <= 64):
            raise BadEvent("'item.id' must be a string of at most 64 characters.", "invalid_value", "item.id")
        if item_id in self._items:
            raise BadEvent(f"Item with id '{item_id}' already exists.", "item_already_exists", "item.id")
        item["id"] = item_id or new_id("item")
        item["object"] = "realtime.item"
        item["status"] = "completed"
        self.send("conversation.item.added", item=item, previous_item_id=self._last_item)
        self.send("conversation.item.done", item=item, previous_item_id=self._last_item)
        self._last_item = item["id"]
        self._remember(item)
        if item["role"] == "user":
            texts = [c.get("text", "") for c in content if c.get("type") == "input_text"]
            self._pending_text = " ".join(t for t in texts if t)

    def _client_response_create(self, event: dict) -> None:
        if self._reply is not None:
            raise BadEvent(f"Conversation already has an active response in progress: {self._reply['id']}. "
                           "Wait until the response is finished before creating a new one.",
                           "conversation_already_has_active_response")
        response = event.get("response")
        if response is not None and not isinstance(response, dict):
            raise BadEvent("'response' must be an object.", "invalid_type", "response")
        text, self._pending_text = self._pending_text.strip(), ""
        audio, self._pending_audio = self._pending_audio, None
        if audio is not None and not text:
            if self.mode == "echo":
                self.start_reply("(echo)", audio, echo=True)
            else:
                self.start_reply(f"{INTRO} I heard {len(audio) / SAMPLE_RATE:.1f} seconds of audio.", audio)
        elif text:
            if len(text) > MAX_TEXT_CHARS:
                text = text[:MAX_TEXT_CHARS] + "..."
            self.start_reply(f"{INTRO} You wrote: {text}")
        else:
            self.start_reply(f"{INTRO} How can I help?")

    def _client_response_cancel(self, event: dict) -> None:
        wanted = event.get("response_id")
        if self._reply is None or (wanted is not None and wanted != self._reply["id"]):
            raise BadEvent("There is no active response to cancel." if wanted is None else
                           f"Response '{wanted}' is not in progress.", "response_cancel_not_active", "response_id")
        self._cancel_reply("response.cancel", "client_cancelled")

    def _client_output_audio_buffer_clear(self, event: dict) -> None:
        if self._reply is not None:
            self._cancel_reply("output_audio_buffer.clear", "client_cancelled")
        elif self.track.clear() and self._audio_reply is not None:
            reply, self._audio_reply = self._audio_reply, None
            self.send("output_audio_buffer.cleared", response_id=reply["id"])

    def _client_conversation_item_truncate(self, event: dict) -> None:
        item_id, index, end_ms = event.get("item_id"), event.get("content_index", 0), event.get("audio_end_ms")
        if not isinstance(item_id, str):
            raise BadEvent("'item_id' must be a string.", "invalid_type", "item_id")
        if not isinstance(index, int) or isinstance(index, bool) or index != 0:
            raise BadEvent("'content_index' must be 0 (one audio part per item).", "invalid_value", "content_index")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise BadEvent("'audio_end_ms' must be a whole number of ms >= 0.", "invalid_value", "audio_end_ms")
        item = self._items.get(item_id)
        if item is None and self._reply is not None and self._reply["item"] == item_id:
            self._cancel_reply("truncate", "client_cancelled")
            item = self._items.get(item_id)
        if item is None:
            raise BadEvent(f"Item with item_id '{item_id}' not found.", "item_not_found", "item_id")
        if item.get("role") != "assistant":
            raise BadEvent("Only assistant messages can be truncated.", "invalid_value", "item_id")
        # A client counts what it played, which can run a frame or two past what was sent: clamp.
        end_ms = min(end_ms, item.get("_audio_ms", end_ms))
        item["_audio_ms"] = end_ms
        item["content"][0]["transcript"] = ""  # the real API drops the unheard transcript as well
        self.send("conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms)

    def _client_conversation_item_delete(self, event: dict) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id not in self._items:
            raise BadEvent(f"Item with item_id '{item_id}' not found.", "item_not_found", "item_id")
        del self._items[item_id]
        self.send("conversation.item.deleted", item_id=item_id)

    def _client_conversation_item_retrieve(self, event: dict) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id not in self._items:
            raise BadEvent(f"Item with item_id '{item_id}' not found.", "item_not_found", "item_id")
        item = {k: v for k, v in self._items[item_id].items() if not k.startswith("_")}
        self.send("conversation.item.retrieved", item=item)

    def _client_input_audio_buffer_clear(self, event: dict) -> None:
        self._utterance.clear()
        self._speech_frames = 0
        self.vad.reset()
        self._user_item = None
        self.send("input_audio_buffer.cleared")

    def _client_input_audio_buffer_commit(self, event: dict) -> None:
        if len(self._utterance) * FRAME_MS < 100:
            raise BadEvent(f"Error committing input audio buffer: buffer too small. Expected at least 100ms of "
                           f"audio, but buffer only has {len(self._utterance) * FRAME_MS}.00ms of audio.",
                           "input_audio_buffer_commit_empty")
        self._user_item = self._user_item or new_id("item")
        self.vad.reset()
        self._commit_utterance()

    def _client_input_audio_buffer_append(self, event: dict) -> None:
        raise BadEvent("Over WebRTC the audio travels as RTP: input_audio_buffer.append is not accepted.",
                       "unsupported_event", "type")

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
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
