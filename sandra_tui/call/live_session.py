"""The GPT-Live dialect on one connection's data channel, behind RealtimeSession's interface.

Live has no turn events (no speech_started, no response.done): transcripts arrive as deltas
with times on the session timeline and nothing says a turn is over. So turns are inferred:
the caller's turn ends when Sandra's transcript starts (or after USER_QUIET_S without input
text); Sandra's reply ends when her audio has been quiet for REPLY_QUIET_FRAMES and no
transcript came meanwhile. The remote audio runs at 50 frames a second for the whole call, so
these checks ride on `on_output_frame` and need no timer of their own.

What Live lacks is done in its own terms: a typed message is `session.instructions.append`,
re-seeding a new session is `session.thinking.append` (silent context), the stop key flushes
local playout and tells the model with a thinking note, and the engine's mute is mirrored as
`session.input_audio.mute` / `unmute`. Nothing is sent before `session.started`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from sandra_tui.audio.frames import peak_dbfs
from sandra_tui.call.events import ErrorEvent, HistoryChanged, Notice, Speech, Transcript
from sandra_tui.call.session import REPLY_AUDIO_DBFS, SessionBase, dispatch, new_event_id, plain_error
from sandra_tui.media.constants import FRAME_MS
from sandra_tui.wire import live

log = logging.getLogger("sandra_tui.call")

REPLY_QUIET_FRAMES = 30  # 600 ms of quiet reply audio (and no transcript) ends a reply
USER_QUIET_S = 1.0  # no input transcript for this long ends the caller's turn
AWAIT_REPLY_S = 15.0  # a typed message unanswered for this long no longer holds the next one
MAX_QUEUED = 256  # commands waiting for session.started


class LiveSession(SessionBase):
    api = "live"

    def __init__(self, send_raw, **sinks) -> None:
        super().__init__(send_raw, **sinks)
        self.replied = True  # the voice is fixed at startup by the backend: never the client's to change
        self.session: dict = {}  # the SessionResource of session.started
        self.usage: dict | None = None  # the latest session.usage.updated
        self.closed_reason: str | None = None
        self._started = asyncio.Event()
        self._queue: list[dict] = []
        self._t0: float | None = None  # monotonic time of the session timeline's 0 (estimated)
        self._user_item: str | None = None
        self._user_text = ""
        self._reply_text = ""
        self._last_input_at: float | None = None
        self._last_output_at: float | None = None
        self._input_end_ms: int | None = None
        self._speech_end_ms: int | None = None  # the caller's last speech end, on the session timeline
        self._text_sent_at: float | None = None
        self._awaiting_until: float | None = None  # a typed message waits for its reply until then
        self._turn_server_ms: float | None = None
        self._turn_total_ms: float | None = None
        self._quiet_frames = 0
        self._suppress = False  # the stop key: the rest of this reply is flushed locally
        self._wire_muted = False
        self.handlers = {
            "session.started": self._session_started,
            "session.updated": lambda event: None,
            "session.input_transcript.delta": self._input_delta,
            "session.output_transcript.delta": self._output_delta,
            "session.input_audio.muted": lambda event: log.info("live: input muted"),
            "session.input_audio.unmuted": lambda event: log.info("live: input unmuted"),
            "session.instructions.appended": self._timeline,
            "session.thinking.appended": self._timeline,
            "session.commentary.appended": self._timeline,
            "session.usage.updated": self._usage,
            "session.closed": self._closed,
            "error": self._error,
            "info": lambda event: log.info("live info %s: %s", event.get("code"), str(event.get("message"))[:200]),
        }

    # -- out ------------------------------------------------------------------------------------
    def send(self, event: dict) -> bool:
        if event.get("type") not in live.CLIENT_EVENTS:  # a Realtime event has no meaning here
            log.warning("not sent on a Live session: %s", str(event.get("type"))[:80])
            return False
        event.setdefault("event_id", new_event_id())
        if not self._started.is_set():
            if len(self._queue) >= MAX_QUEUED:
                return False
            self._queue.append(event)
            return True
        try:
            self._send_raw(json.dumps(event))
            return True
        except Exception:  # noqa: BLE001 - a channel closing under us: the caller keeps what matters
            return False

    async def wait_started(self) -> None:
        """Until `session.started` (the connection's connect timeout bounds the wait)."""
        await self._started.wait()

    def configure(self, session_config) -> None:
        # Voice, instructions and turn taking are the backend's startup settings in Live;
        # session.update changes only delegation and triggers, which Sandra does not use.
        log.info("live: [session] settings are not sent (fixed at startup by the backend)")

    def reseed(self, messages, skip_ids=()) -> int:
        """Give a new session the conversation so far as silent context; returns how many went."""
        sent = 0
        for message in messages:
            if not message.content or message.role not in ("user", "assistant") or message.item_id in skip_ids:
                continue
            prefix = live.EARLIER_USER if message.role == "user" else live.EARLIER_ASSISTANT
            if self.send(live.append_event("thinking", prefix + message.content)):
                sent += 1
        return sent

    @property
    def busy(self) -> bool:
        """A reply is being made or played, or a typed message still waits for one."""
        waiting = self._awaiting_until is not None and time.monotonic() < self._awaiting_until
        return self.reply_active or self.reply_item is not None or self._suppress or waiting

    def send_user_text(self, item_id: str, text: str) -> bool:
        if not self.send(live.append_event("instructions", live.TYPED_PREFIX + text)):
            return False
        now = time.monotonic()
        self._text_sent_at = now  # latency counts from the moment it really left
        self._awaiting_until = now + AWAIT_REPLY_S
        return True

    def cancel_response(self) -> None:
        """The stop key: quiet when Sandra is; otherwise stop her locally and tell the model."""
        if not (self.reply_active or self.reply_item):
            return
        self.send(live.append_event("thinking", live.STOPPED))
        self.barge_in()
        self._suppress = True

    def barge_in(self) -> None:
        """Stop local playout at once; the reply so far stays in the history, marked interrupted."""
        if not (self.reply_active or self.reply_item):
            return
        self.audio.flush_playout()
        item, text = self.reply_item, self._reply_text
        self.reply_item, self._reply_text = None, ""
        if item:
            self._finish("assistant", item, text)
            self.history.mark(item, "interrupted")
        self.reply_active = False
        self._emit(Speech("reply_cancelled"))

    # -- in -------------------------------------------------------------------------------------
    def handle(self, raw) -> None:
        dispatch(self.handlers, raw)  # delegation, decisions, responses: not in the table, not used

    def _session_started(self, event: dict) -> None:
        self.session = dict(event["session"])
        self._t0 = time.monotonic()  # at most this late: the clock is refined by every timed event
        self._started.set()
        queued, self._queue = self._queue, []
        for queued_event in queued:
            self.send(queued_event)

    def _timeline(self, event: dict, now: float | None = None) -> float:
        """Refine the estimate of the session's 0: nothing is sent before its end_ms."""
        now = time.monotonic() if now is None else now
        end_s = int(event["end_ms"]) / 1000
        if self._t0 is None or now - end_s < self._t0:
            self._t0 = now - end_s
        return now

    def _input_delta(self, event: dict) -> None:
        now = self._timeline(event)
        delta = str(event["delta"])
        if self._user_item is None:
            self.barge_in()  # the caller speaks over Sandra: what is still buffered here goes
            self._suppress = False
            self._user_item, self._user_text = f"live_in_{uuid.uuid4().hex[:16]}", ""
            self._turn_server_ms = self._turn_total_ms = None  # a new turn: nothing of the last one pairs up
            self.user_speaking = True
            self._emit(Speech("user_started"))
        self._last_input_at = now
        self._input_end_ms = int(event["end_ms"])
        self._speech_end_ms = self._input_end_ms
        if delta:
            self._user_text += delta
            self.history.append_delta("user", self._user_item, delta)
            self._emit(Transcript("user", delta, False, self._user_item))

    def _end_user_turn(self) -> None:
        item, text = self._user_item, self._user_text
        self._user_item, self._user_text = None, ""
        self.user_speaking = False
        self._emit(Speech("user_stopped"))
        if item and text:
            self._finish("user", item, text)

    def _output_delta(self, event: dict) -> None:
        now = self._timeline(event)
        if self._suppress:
            return  # the operator stopped this reply
        if self._user_item is not None:
            self._end_user_turn()
        if self.reply_item is None:
            self.reply_item, self._reply_text = f"live_out_{uuid.uuid4().hex[:16]}", ""
            if self._input_end_ms is not None:
                # server part of the turn, on the session's own timeline: speech end to reply start
                self._turn_server_ms = max(0.0, float(int(event["start_ms"]) - self._input_end_ms))
                self._input_end_ms = None
                self._split_turn()
        self._last_output_at = now
        delta = str(event["delta"])
        self._reply_text += delta
        self.history.append_delta("assistant", self.reply_item, delta)
        self._emit(Transcript("assistant", delta, False, self.reply_item))

    def _finish(self, role: str, item_id: str, text: str) -> None:
        self.history.finish(role, item_id, text)
        self._emit(Transcript(role, text, True, item_id))
        self._emit(HistoryChanged(len(self.history), round(self.history.memory_usage_mb(), 4)))

    def _end_reply(self) -> None:
        item, text = self.reply_item, self._reply_text
        self.reply_item, self._reply_text = None, ""
        was, self.reply_active = self.reply_active, False
        self._suppress = False
        self._awaiting_until = None
        if item:
            self._finish("assistant", item, text)
        if was:
            self._emit(Speech("reply_stopped"))
        self._on_idle()

    def _usage(self, event: dict) -> None:
        self.usage = dict(event["usage"])
        log.debug("live usage: %s", self.usage)

    def _closed(self, event: dict) -> None:
        reason = self.closed_reason = str(event.get("reason") or "")
        log.info("live session closed: %s", reason)
        if reason == "expired":
            self._emit(Notice("The session reached its time limit; renewing it."))
            self._on_expired("session_expired")
        elif reason != "close_requested":
            self._on_expired("session_closed")  # the path is over: the supervisor reconnects

    def _error(self, event: dict) -> None:
        error = event.get("error") or {}
        log.warning("live error event: %s", json.dumps(error)[:500])
        self._emit(ErrorEvent(plain_error(error), str(error.get("code") or "")))

    # -- audio observations ---------------------------------------------------------------------
    def on_output_frame(self, samples, now: float) -> None:
        self._sync_mute()
        loud = peak_dbfs(samples) >= REPLY_AUDIO_DBFS
        if self._suppress:
            self.audio.flush_playout()
        if loud:
            self._quiet_frames = 0
            if not self.reply_active and not self._suppress:
                self._playback_started(now)
        else:
            self._quiet_frames += 1
        self._check_turns(now)

    def _playback_started(self, now: float) -> None:
        self.reply_active = True
        self._emit(Speech("reply_started"))
        if self._speech_end_ms is not None:
            # mapped with the clock as refined by then: every timed event since narrows it
            total = max(0.0, (now - self._t0 - self._speech_end_ms / 1000) * 1000)
            self._latency("response_latency", total)
            self._turn_total_ms = total
            self._split_turn()
        elif self._text_sent_at is not None:
            self._latency("text_response_latency", (now - self._text_sent_at) * 1000)
        self._speech_end_ms = self._text_sent_at = None

    def _split_turn(self) -> None:
        """turn_server / turn_client once both the reply's start and its first audio are known."""
        server, total = self._turn_server_ms, self._turn_total_ms
        if server is None or total is None:
            return
        self._turn_server_ms = self._turn_total_ms = None
        if server <= total:
            self._latency("turn_server", server)
            self._latency("turn_client", total - server)

    def _check_turns(self, now: float) -> None:
        if self._user_item is not None and self._last_input_at is not None \
                and now - self._last_input_at >= USER_QUIET_S:
            self._end_user_turn()
        quiet = self._quiet_frames >= REPLY_QUIET_FRAMES and (
            self._last_output_at is None or now - self._last_output_at >= REPLY_QUIET_FRAMES * FRAME_MS / 1000)
        if quiet and (self.reply_active or self.reply_item is not None or self._suppress):
            self._end_reply()
        elif self._awaiting_until is not None and now >= self._awaiting_until and not self.busy:
            self._awaiting_until = None
            self._on_idle()

    def _sync_mute(self) -> None:
        muted = bool(self.audio.muted)
        if muted != self._wire_muted and self._started.is_set():
            kind = "session.input_audio.mute" if muted else "session.input_audio.unmute"
            if self.send({"type": kind}):
                self._wire_muted = muted
