"""The Realtime dialect on one connection's data channel.

Server events go through an explicit table from event type to handler: an event named after
some other method (say `output_frame`) can reach nothing. The session reports up through
plain callables handed in (`emit`, `latency`, `on_idle`, `on_expired`); it imports nothing of
the supervisor or the controller.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from sandra_tui.audio.frames import FRAME_MS, peak_dbfs
from sandra_tui.call.events import ErrorEvent, HistoryChanged, Notice, RateLimits, Speech, ToolCall, Transcript

log = logging.getLogger("sandra_tui.call")

REPLY_AUDIO_DBFS = -50.0  # a reply frame louder than this is "audio"

# What an API error means to the operator. The full text (ids included) goes to the log only.
PLAIN_ERRORS = {
    "conversation_already_has_active_response": "Sandra was still answering; your message waits its turn.",
    "session_expired": "The session reached its time limit; renewing it.",
    "rate_limit_exceeded": "Sandra is rate limited; try again in a moment.",
    "invalid_value": "Sandra did not accept a setting of this call.",
    "unknown_parameter": "Sandra did not accept a setting of this call.",
    "decimal_below_min_value": "Sandra did not accept a setting of this call.",
    "server_error": "Sandra had a problem on her side.",
}
_IDS = re.compile(r"\b(?:resp|item|evt|event|sess|rtc|call|conv|msg)_[A-Za-z0-9]+\b")


def plain_error(error: dict) -> str:
    """The notice for an API `error` event: a known code's plain sentence, otherwise the
    message with ids taken out."""
    code = str(error.get("code") or "")
    if code in PLAIN_ERRORS:
        return PLAIN_ERRORS[code]
    message = _IDS.sub("…", str(error.get("message") or "unknown error")).strip()
    return f"Sandra reported a problem: {message[:160]}"


def dispatch(handlers: dict, raw) -> None:
    """One server event to its handler in `handlers` (type -> callable); malformed events and
    events of no interest are dropped with at most a log line, never an exception."""
    try:
        event = json.loads(raw)
        kind = event["type"]
        handler = handlers.get(kind) if isinstance(kind, str) else None
    except (ValueError, TypeError, KeyError):
        log.warning("ignoring a malformed event from the server")
        return
    if handler is None:
        return
    try:
        handler(event)
    except (KeyError, TypeError, AttributeError, ValueError):
        log.warning("ignoring a malformed %s event", kind)


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex[:20]}"


def user_text_item(item_id: str, text: str) -> dict:
    return {"type": "conversation.item.create",
            "item": {"id": item_id, "type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": text}]}}


def settings_update(s, include_voice: bool = True, transcription_model: str = "whisper-1") -> dict:
    """`session.update` with every [session] setting the operator can change during a call
    (turn detection, noise reduction, transcription language; the voice while allowed)."""
    if s.turn_detection == "semantic_vad":
        turn = {"type": "semantic_vad", "eagerness": s.eagerness, "create_response": True,
                "interrupt_response": True}
    else:
        turn = {"type": "server_vad", "threshold": s.vad_threshold, "prefix_padding_ms": s.vad_prefix_padding_ms,
                "silence_duration_ms": s.vad_silence_duration_ms, "create_response": True,
                "interrupt_response": True}
    transcription = {"model": transcription_model}
    if s.transcription_language:
        transcription["language"] = s.transcription_language
    audio_in = {"turn_detection": turn, "transcription": transcription,
                "noise_reduction": None if s.noise_reduction == "off" else {"type": s.noise_reduction}}
    session = {"type": "realtime", "audio": {"input": audio_in}}
    if include_voice:
        session["audio"]["output"] = {"voice": s.voice}
    return {"type": "session.update", "session": session}


class SessionBase:
    """What both dialects' sessions hold: the channel, the call's sinks and the turn flags."""

    def __init__(self, send_raw, *, emit, history, audio, latency, on_idle=None, on_expired=None) -> None:
        self._send_raw = send_raw  # str -> None; raises once the channel is closed
        self._emit = emit
        self.history = history
        self.audio = audio
        self._latency = latency
        self._on_idle = on_idle or (lambda: None)
        self._on_expired = on_expired or (lambda reason: None)
        self.reply_active = False  # the reply's audio is playing
        self.reply_item: str | None = None  # her transcript being built
        self.user_speaking = False  # the caller is talking (between speech start and stop)


class RealtimeSession(SessionBase):
    def __init__(self, send_raw, **sinks) -> None:
        super().__init__(send_raw, **sinks)
        self.response_active = False  # between our response.create / response.created and response.done
        self._reply_started_frames = 0
        self._speech_stopped_at: float | None = None
        self._text_sent_at: float | None = None
        self._retry_response = False  # our response.create met an active response: send it after done
        self.handlers = {
            "input_audio_buffer.speech_started": self._speech_started,
            "input_audio_buffer.speech_stopped": self._speech_stopped,
            "conversation.item.input_audio_transcription.delta": self._input_transcript_delta,
            "conversation.item.input_audio_transcription.completed": self._input_transcript_completed,
            "response.output_audio_transcript.delta": self._reply_delta,
            "response.output_audio_transcript.done": self._reply_transcript_done,
            "response.output_text.delta": self._reply_delta,
            "response.output_text.done": self._reply_text_done,
            "output_audio_buffer.started": self._playback_started,
            "output_audio_buffer.stopped": self._playback_stopped,
            "output_audio_buffer.cleared": self._playback_stopped,
            "response.created": self._response_created,
            "response.done": self._response_done,
            "rate_limits.updated": self._rate_limits,
            "error": self._error,
            "response.function_call_arguments.delta": self._tool_arguments_delta,
            "response.function_call_arguments.done": self._tool_arguments_done,
            "conversation.item.created": self._item_created,
            "conversation.item.added": self._item_created,
            "response.output_item.added": self._item_created,
            "response.output_item.done": self._item_created,
        }
        self.replied = False  # the first reply locks the voice (the API refuses a change after)
        self._tools: dict[str, dict] = {}  # call_id -> {name, arguments, started, item}
        self._turn_server_ms: float | None = None

    # -- out ------------------------------------------------------------------------------------
    def send(self, event: dict) -> bool:
        event.setdefault("event_id", new_event_id())
        try:
            self._send_raw(json.dumps(event))
            return True
        except Exception:  # noqa: BLE001 - a channel closing under us: the caller keeps what matters
            return False

    def configure(self, session_config) -> None:
        self.send(settings_update(session_config))  # every saved setting, from the first moment

    def reseed(self, messages, skip_ids=()) -> int:
        """Give a new session the conversation so far; returns how many items went."""
        sent = 0
        for message in messages:
            if not message.content or message.role not in ("user", "assistant") or message.item_id in skip_ids:
                continue
            kind = "input_text" if message.role == "user" else "output_text"
            if self.send({"type": "conversation.item.create",
                          "item": {"type": "message", "role": message.role,
                                   "content": [{"type": kind, "text": message.content}]}}):
                sent += 1
        return sent

    @property
    def busy(self) -> bool:
        """A reply is being made or played: a typed message now would collide with it."""
        return self.response_active or self.reply_active

    def send_user_text(self, item_id: str, text: str) -> bool:
        if not self.send(user_text_item(item_id, text)):
            return False
        self.response_active = True  # until response.done: the next message waits for it
        self._text_sent_at = time.monotonic()  # latency counts from the moment it really left
        return self.send({"type": "response.create"})

    def cancel_response(self) -> None:
        # The API wants response.cancel before output_audio_buffer.clear, and answers a cancel
        # with no response in progress with an error.
        if self.response_active:
            self.send({"type": "response.cancel"})
        self.barge_in()

    def barge_in(self) -> None:
        """Stop local playout at once and tell the server how much of the reply was heard."""
        if not self.reply_active:
            return
        self.audio.flush_playout()
        heard_ms = (self.audio.frames_played - self._reply_started_frames) * FRAME_MS
        self.send({"type": "output_audio_buffer.clear"})
        if self.reply_item:
            self.send({"type": "conversation.item.truncate", "item_id": self.reply_item,
                       "content_index": 0, "audio_end_ms": max(0, heard_ms)})
            self.history.mark(self.reply_item, "interrupted")
        self.reply_active = False
        self._emit(Speech("reply_cancelled"))

    # -- in -------------------------------------------------------------------------------------
    def handle(self, raw) -> None:
        dispatch(self.handlers, raw)

    def _speech_started(self, event: dict) -> None:
        self.user_speaking = True
        self._emit(Speech("user_started"))
        if self.reply_active:
            self.barge_in()

    def _speech_stopped(self, event: dict) -> None:
        self.user_speaking = False
        self._speech_stopped_at = time.monotonic()
        self._emit(Speech("user_stopped"))

    def _input_transcript_delta(self, event: dict) -> None:
        delta = event.get("delta") or ""
        if delta:
            self.history.append_delta("user", event["item_id"], delta)
            self._emit(Transcript("user", delta, False, event["item_id"]))

    def _input_transcript_completed(self, event: dict) -> None:
        self._finish("user", event["item_id"], event["transcript"])

    def _reply_delta(self, event: dict) -> None:
        self.reply_item = event["item_id"]
        self.history.append_delta("assistant", event["item_id"], event["delta"])
        self._emit(Transcript("assistant", event["delta"], False, event["item_id"]))

    def _reply_transcript_done(self, event: dict) -> None:
        self._finish("assistant", event["item_id"], event["transcript"])

    def _reply_text_done(self, event: dict) -> None:
        self._finish("assistant", event["item_id"], event["text"])

    def _finish(self, role: str, item_id: str, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError("transcript is not text")
        self.history.finish(role, item_id, text)
        self._emit(Transcript(role, text, True, item_id))
        self._emit(HistoryChanged(len(self.history), round(self.history.memory_usage_mb(), 4)))

    def _playback_started(self, event: dict) -> None:
        self.replied = True
        if self._speech_stopped_at is not None:  # server part of the turn: speech end to its first audio
            self._turn_server_ms = (time.monotonic() - self._speech_stopped_at) * 1000
        self.reply_active = True
        self._reply_started_frames = self.audio.frames_played
        self._emit(Speech("reply_started"))

    def _playback_stopped(self, event: dict) -> None:
        was = self.reply_active
        self.reply_active = False
        if was:
            self._emit(Speech("reply_stopped"))
        if not self.response_active:
            self._on_idle()

    def _response_created(self, event: dict) -> None:
        self.response_active = True
        self.audio.resume_playout()  # its audio may follow a barge-in's flush at once: none is dropped

    def _response_done(self, event: dict) -> None:
        self.response_active = False
        response = event.get("response") or {}
        if response.get("status") == "cancelled":
            self._emit(Speech("reply_cancelled"))
            for item in response.get("output") or []:
                if isinstance(item, dict) and item.get("id"):
                    self.history.mark(item["id"], "interrupted")
        if self._retry_response:
            self._retry_response = False
            self.response_active = True
            self._text_sent_at = time.monotonic()
            self.send({"type": "response.create"})
            return
        self._on_idle()

    def _rate_limits(self, event: dict) -> None:
        limits = tuple((str(r.get("name", "")), r.get("remaining"), r.get("limit"), r.get("reset_seconds"))
                       for r in event.get("rate_limits") or [] if isinstance(r, dict))
        self._emit(RateLimits(limits))

    def _error(self, event: dict) -> None:
        error = event.get("error") or {}
        code = str(error.get("code") or "")
        log.warning("server error event: %s", json.dumps(error)[:500])
        if code == "session_expired":
            self._emit(Notice(PLAIN_ERRORS[code]))
            self._on_expired(code)
            return
        if code == "conversation_already_has_active_response":
            # Our response.create met a response the server VAD started: ask again once it is done.
            self._retry_response = True
            self.response_active = True
            return
        self._emit(ErrorEvent(plain_error(error), code))

    # -- tool calls -------------------------------------------------------------------------------
    def _tool(self, event: dict) -> dict:
        call_id = str(event.get("call_id") or event.get("item_id") or "")
        tool = self._tools.get(call_id)
        if tool is None:
            tool = self._tools[call_id] = {"call_id": call_id, "name": str(event.get("name") or ""),
                                           "arguments": "", "started": time.monotonic(), "message": None}
            if len(self._tools) > 64:  # bounded: results that never came are forgotten
                self._tools.pop(next(iter(self._tools)))
        return tool

    def _show_tool(self, tool: dict, status: str, result: str = "", duration_ms: float | None = None) -> None:
        text = f"{tool['name'] or 'function'}({tool['arguments']})"
        if result:
            text += f" -> {result}"
        if duration_ms is not None:
            text += f"  [{duration_ms:.0f} ms]"
        if tool["message"] is None:
            tool["message"] = self.history.add("tool", text, item_id=f"tool_{tool['call_id']}", final=status != "arguments")
        else:
            self.history.finish("tool", f"tool_{tool['call_id']}", text)
        self._emit(ToolCall(tool["call_id"], tool["name"], tool["arguments"], result, status, duration_ms))

    def _tool_arguments_delta(self, event: dict) -> None:
        tool = self._tool(event)
        tool["arguments"] += str(event.get("delta") or "")

    def _tool_arguments_done(self, event: dict) -> None:
        tool = self._tool(event)
        tool["arguments"] = str(event.get("arguments") if event.get("arguments") is not None else tool["arguments"])
        if event.get("name"):
            tool["name"] = str(event["name"])
        self._show_tool(tool, "running")

    def _item_created(self, event: dict) -> None:
        item = event.get("item") or {}
        if not isinstance(item, dict):
            return
        if item.get("type") == "function_call":
            tool = self._tool({"call_id": item.get("call_id"), "name": item.get("name")})
            tool["name"] = str(item.get("name") or tool["name"])
            if item.get("arguments") and not tool["arguments"]:
                tool["arguments"] = str(item["arguments"])
        elif item.get("type") == "function_call_output":
            tool = self._tools.pop(str(item.get("call_id") or ""), None)
            if tool is not None:
                self._show_tool(tool, "done", str(item.get("output") or ""),
                                round((time.monotonic() - tool["started"]) * 1000, 1))

    # -- audio observations ---------------------------------------------------------------------
    def on_output_frame(self, samples, now: float) -> None:
        # The level is only needed while a reply is awaited: not for every frame of a call.
        if self._speech_stopped_at is None and self._text_sent_at is None:
            return
        if peak_dbfs(samples) < REPLY_AUDIO_DBFS:
            return
        if self._speech_stopped_at is not None:
            total = (now - self._speech_stopped_at) * 1000
            self._latency("response_latency", total)
            if self._turn_server_ms is not None and self._turn_server_ms <= total:
                self._latency("turn_server", self._turn_server_ms)
                self._latency("turn_client", total - self._turn_server_ms)
            self._turn_server_ms = None
        elif self._text_sent_at is not None:
            self._latency("text_response_latency", (now - self._text_sent_at) * 1000)
        self._speech_stopped_at = self._text_sent_at = None
