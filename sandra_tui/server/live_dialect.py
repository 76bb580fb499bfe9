"""`serve --dialect live`: the local agent speaks GPT-Live on its data channel.

The agent (server/agent.py) speaks the Realtime dialect. `wrap(channel)` hands it a channel
that looks like aiortc's RTCDataChannel but translates at the boundary:

- agent -> caller: Realtime server events become Live ones (session.created -> session.started,
  transcription -> session.input_transcript.delta, reply transcript ->
  session.output_transcript.delta, error -> error, session_expired -> session.closed "expired",
  response.done -> session.usage.updated); the rest (turn and response lifecycle) has no Live
  counterpart and is dropped.
- caller -> agent: Live client events become Realtime ones (instructions.append of a typed
  message -> conversation.item.create + response.create, thinking.append -> a system item,
  the stop note -> response.cancel + output_audio_buffer.clear); mute, update and close are
  acknowledged here, as the Live server does.

Times on the session timeline are ms since session.started went out; the caller's speech
keeps the agent's own audio clock (ms of caller audio since the call began), which starts
with the media, within a few ms of that.
"""

from __future__ import annotations

import json
import logging
import secrets
import time

from sandra_tui.wire import live

log = logging.getLogger("sandra_tui.server.live")

WIRE_TAPS: list = []  # callables (direction "in" | "out", raw str): tests validate every Live event
_KEEP = ("readyState", "bufferedAmount", "transport", "label", "close", "id")


def wire_api(settings) -> str:
    """The dialect the caller speaks: `api` through OpenAI, `dialect` (default `api`) locally."""
    if settings.upstream == "openai":
        return getattr(settings, "api", "realtime") or "realtime"
    return getattr(settings, "dialect", None) or getattr(settings, "api", "realtime") or "realtime"


def _tap(direction: str, raw: str) -> None:
    for tap in list(WIRE_TAPS):
        try:
            tap(direction, raw)
        except Exception:  # noqa: BLE001 - a test's tap must not break a call
            log.exception("wire tap failed")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


class LiveChannel:
    """A data channel that speaks Live outside and Realtime inside (to the agent)."""

    def __init__(self, channel, *, model: str, voice: str, session_s: float = 3600.0,
                 allowed_client_events=None) -> None:
        self._channel = channel
        self._model, self._voice = live.live_model(model), voice
        self._session_s = session_s
        self._allowed = None if allowed_client_events in (None, "all") else set(allowed_client_events)
        self._handlers: list = []  # the agent's "message" handlers: they get Realtime JSON
        self.session_id = _new_id("live")
        self._t0: float | None = None
        self._speech = {}  # agent item id -> [start_ms, end_ms, transcribed]
        self._reply_from: int | None = None
        self._out_end = 0
        self.closed = False
        channel.on("message", self._from_caller)

    def __getattr__(self, name):
        if name in _KEEP:
            return getattr(self._channel, name)
        raise AttributeError(name)

    # -- the agent's side (aiortc's RTCDataChannel API) --------------------------------------------
    def on(self, event: str, handler=None):
        def register(fn):
            if event == "message":
                self._handlers.append(fn)
                # Live always transcribes the caller: switch the agent's transcription on.
                fn(json.dumps({"type": "session.update", "session": {
                    "type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}}))
            else:
                self._channel.on(event, fn)
            return fn

        return register(handler) if handler is not None else register

    def send(self, raw: str) -> None:
        """An agent event (Realtime) out as zero or more Live events."""
        event = json.loads(raw)
        for out in self._translate_out(event):
            self._send_live(out)

    # -- out ------------------------------------------------------------------------------------
    def _now_ms(self) -> int:
        return 0 if self._t0 is None else int((time.monotonic() - self._t0) * 1000)

    def _resource(self) -> dict:
        return live.session_resource(self.session_id, self._model, self._voice,
                                     int(time.time() + self._session_s))

    def _send_live(self, event: dict) -> None:
        event.setdefault("event_id", _new_id("event"))
        raw = json.dumps(event)
        _tap("out", raw)
        self._channel.send(raw)

    def _closed(self, reason: str, client_event_id: str | None = None) -> dict:
        self.closed = True
        seconds = float(int(self._now_ms() / 1000))
        out = {"type": "session.closed", "reason": reason, "session": self._resource(),
               "usage": {"seconds": seconds}}
        if client_event_id:
            out["client_event_id"] = client_event_id
        return out

    def _translate_out(self, event: dict) -> list[dict]:
        kind = event.get("type")
        if kind == "session.created":
            self._t0 = time.monotonic()
            out = [{"type": "session.started", "session": self._resource()}]
            if self._allowed is not None:
                out.append({"type": "info", "code": "data_channel_permissions",
                            "message": "client events allowed on this data channel: "
                                       + ", ".join(sorted(self._allowed))})
            return out
        if kind == "input_audio_buffer.speech_started":
            self._speech[event["item_id"]] = [int(event.get("audio_start_ms") or 0), None, False]
            return []
        if kind == "input_audio_buffer.speech_stopped":
            span = self._speech.setdefault(event["item_id"], [int(event.get("audio_end_ms") or 0), None, False])
            span[1] = max(span[0], int(event.get("audio_end_ms") or span[0]))
            return []
        if kind == "conversation.item.input_audio_transcription.delta":
            return self._input_delta(event["item_id"], event.get("delta") or "", final=False)
        if kind == "conversation.item.input_audio_transcription.completed":
            return self._input_delta(event["item_id"], event.get("transcript") or "", final=True)
        if kind == "output_audio_buffer.started":
            self._reply_from = self._now_ms()
            return []
        if kind in ("response.output_audio_transcript.delta", "response.output_text.delta"):
            start = max(self._out_end, self._reply_from if self._reply_from is not None else self._now_ms())
            end = max(start, self._now_ms())
            self._out_end = end
            return [{"type": "session.output_transcript.delta", "delta": event.get("delta") or "",
                     "start_ms": start, "end_ms": end}]
        if kind == "response.done":
            self._reply_from = None
            return [{"type": "session.usage.updated", "usage": {"seconds": float(int(self._now_ms() / 1000))}}]
        if kind == "error":
            error = event.get("error") or {}
            if error.get("code") == "session_expired":
                return [self._closed("expired")]
            out = {"code": str(error.get("code") or "server_error"), "message": str(error.get("message") or ""),
                   "type": str(error.get("type") or "invalid_request_error")}
            if error.get("param"):
                out["param"] = str(error["param"])
            wrapped = {"type": "error", "error": out}
            if error.get("event_id"):
                out["client_event_id"] = wrapped["client_event_id"] = str(error["event_id"])
            return [wrapped]
        return []  # response/item/buffer lifecycle: Live has no such events

    def _input_delta(self, item_id: str, text: str, final: bool) -> list[dict]:
        span = self._speech.setdefault(item_id, [self._now_ms(), None, False])
        if final and span[2]:  # deltas went already: Live has no done event to repeat it in
            self._speech.pop(item_id, None)
            return []
        span[2] = True
        start, end = span[0], span[1] if span[1] is not None else max(span[0], self._now_ms())
        if final:
            self._speech.pop(item_id, None)
        if not text:
            return []
        return [{"type": "session.input_transcript.delta", "delta": text, "start_ms": start, "end_ms": end}]

    # -- in -------------------------------------------------------------------------------------
    def _from_caller(self, raw) -> None:
        if isinstance(raw, str):
            _tap("in", raw)
        try:
            event = json.loads(raw)
            kind, event_id = event["type"], event.get("event_id")
        except (ValueError, TypeError, KeyError):
            self._send_live({"type": "error", "error": {"code": "invalid_event", "type": "invalid_request_error",
                                                        "message": "Events must be JSON objects with a 'type'."}})
            return
        ack = {"client_event_id": event_id} if isinstance(event_id, str) else {}
        if kind not in live.CLIENT_EVENTS:
            self._reject(f"Unknown event type {str(kind)[:80]!r}.", "unknown_event", ack)
            return
        if self._allowed is not None and kind not in self._allowed:
            self._reject(f"{kind} is not allowed on this data channel.", "event_not_permitted", ack)
            return
        handler = getattr(self, "_in_" + kind.replace(".", "_"), None)
        if handler is None:
            self._reject(f"{kind} is not supported by the local agent.", "unsupported_event", ack)
            return
        handler(event, ack)

    def _reject(self, message: str, code: str, ack: dict) -> None:
        error = {"code": code, "message": message, "type": "invalid_request_error"}
        if ack:
            error["client_event_id"] = ack["client_event_id"]
        self._send_live({"type": "error", "error": error, **ack})

    def _to_agent(self, event: dict) -> None:
        raw = json.dumps(event)
        for handler in self._handlers:
            handler(raw)

    def _in_session_update(self, event: dict, ack: dict) -> None:
        self._send_live({"type": "session.updated", "session": self._resource(), **ack})

    def _in_session_input_audio_mute(self, event: dict, ack: dict) -> None:
        self._send_live({"type": "session.input_audio.muted", **ack})

    def _in_session_input_audio_unmute(self, event: dict, ack: dict) -> None:
        self._send_live({"type": "session.input_audio.unmuted", **ack})

    def _appended(self, kind: str, ack: dict) -> None:
        now = self._now_ms()
        self._send_live({"type": f"session.{kind}.appended", "start_ms": now, "end_ms": now, **ack})

    def _text(self, event: dict, ack: dict) -> str | None:
        content = event.get("content")
        if not isinstance(content, str) or not content:
            self._reject("'content' must be a non-empty string.", "invalid_value", ack)
            return None
        return content

    def _in_session_instructions_append(self, event: dict, ack: dict) -> None:
        content = self._text(event, ack)
        if content is None:
            return
        self._appended("instructions", ack)
        typed = content[len(live.TYPED_PREFIX):] if content.startswith(live.TYPED_PREFIX) else content
        self._to_agent({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": typed}]}})
        self._to_agent({"type": "response.create"})

    def _in_session_thinking_append(self, event: dict, ack: dict) -> None:
        content = self._text(event, ack)
        if content is None:
            return
        self._appended("thinking", ack)
        if content == live.STOPPED:  # the agent's own way to stop a reply
            self._to_agent({"type": "response.cancel"})
            self._to_agent({"type": "output_audio_buffer.clear"})
            return
        self._to_agent({"type": "conversation.item.create", "item": {
            "type": "message", "role": "system", "content": [{"type": "input_text", "text": content}]}})

    def _in_session_commentary_append(self, event: dict, ack: dict) -> None:
        content = self._text(event, ack)
        if content is not None:
            self._appended("commentary", ack)  # the agent has nothing to say about it

    def _in_session_close(self, event: dict, ack: dict) -> None:
        self._send_live(self._closed("close_requested", ack.get("client_event_id")))


def wrap(channel, *, model: str, voice: str, session_s: float | None = None, allowed_client_events=None) -> LiveChannel:
    return LiveChannel(channel, model=model, voice=voice, session_s=session_s or 3600.0,
                       allowed_client_events=allowed_client_events)
