"""The call controller: owns the peer connection, the reconnect state machine and the
conversation. The UI and `call --headless` observe its events and call its methods.

One supervisor task runs the call: connect, wait until the path dies, back off, connect again.
Everything a connection attempt creates (peer connection, data channel, watchdog) is torn
down before the next attempt, so nothing outlives a drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import weakref

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.frames import peak_dbfs
from sandra_tui.call import signaling
from sandra_tui.call.backoff import Backoff, attempt_log_line
from sandra_tui.call.embedded import EmbeddedAgent, EmbeddedAgentError
from sandra_tui.call.events import (
    AudioLevels,
    CallState,
    DevicesChanged,
    ErrorEvent,
    Event,
    EventBus,
    HistoryChanged,
    LatencySample,
    MuteChanged,
    Notice,
    PlayoutStats,
    Quality,
    ReconnectAttempt,
    Reconnected,
    Speech,
    StateChanged,
    Transcript,
)
from sandra_tui.call.history import ConversationHistory
from sandra_tui.call.ice import IcePlanner, Plan, backend_is_loopback, gather_servers
from sandra_tui.call.quality import loss_percent, mos, read_stats
from sandra_tui.call.signaling import SignalingError, Token
from sandra_tui.config.model import Config
from sandra_tui.protocol.loopback import pin_host_candidates_to_loopback

log = logging.getLogger("sandra_tui.call")
latency_log = logging.getLogger("sandra_tui.latency")

POLL_S = 0.25  # watchdog / stats poll
DC_CLOSE_GRACE_S = 0.2
QUALITY_EVERY = 4  # polls per quality event (1 s)
REPLY_AUDIO_DBFS = -50.0  # a reply frame louder than this is "audio"
RESEED_MESSAGES = 10  # history items replayed into a new session after a reconnect


# Every peer connection a controller made, so tests and diagnostics can check none is left open.
PEER_CONNECTIONS: weakref.WeakSet = weakref.WeakSet()


def open_peer_connections() -> list[RTCPeerConnection]:
    return [pc for pc in PEER_CONNECTIONS if pc.connectionState != "closed"]


class _PathDead(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallController:
    def __init__(self, config: Config, *, audio: AudioEngine | None = None, backend_url: str | None = None,
                 probe=None, seed: int | None = None) -> None:
        self.config = config
        self.backend_url = backend_url or config.backend.url
        self.audio = audio or AudioEngine(push_to_talk=config.audio.push_to_talk)
        self.bus = EventBus()
        h = config.history
        self.history = ConversationHistory(h.max_messages, h.max_memory_mb, h.trim_to)
        r = config.reconnect
        import random

        self.backoff = Backoff(r.max_attempts, r.base_delay_ms, r.max_delay_ms, r.jitter,
                               random.Random(seed) if seed is not None else None)
        self.planner = IcePlanner(config.ice, probe)
        self.state = CallState.IDLE
        self.last_reason: str | None = None
        self.session_id = ""
        self.plan: Plan | None = None
        self._embedded: EmbeddedAgent | None = None
        self._http: aiohttp.ClientSession | None = None
        self._supervisor: asyncio.Task | None = None
        self._closed = False
        self._pc: RTCPeerConnection | None = None
        self._dc = None
        self._token: Token | None = None
        self._call_url: str | None = None
        self._dead: asyncio.Future | None = None
        self._watchdog: asyncio.Task | None = None
        self._connected_at: float | None = None
        self._first_audio_pending = False
        self._attempt_started = 0.0
        self._speech_stopped_at: float | None = None
        self._text_sent_at: float | None = None
        self._reply_active = False
        self._response_active = False  # between response.created and response.done
        self._reply_item: str | None = None
        self._reply_started_frames = 0
        self._pending_sends: list[dict] = []
        self._timers: list[asyncio.TimerHandle] = []
        self.audio.output_listeners.append(self._on_output_frame)
        self.audio.level_listeners.append(self._on_levels)
        self.audio.device_listeners.append(lambda i, o, why: self._emit(DevicesChanged(i, o, why)))
        self.audio.playout_listeners.append(lambda st: self._emit(PlayoutStats(
            st["depth_ms"], st["target_ms"], st["underruns"], st["concealed"])))
        self.audio.notice_listeners.append(lambda message: self._emit(Notice(message)))

    @property
    def backend_base(self) -> str | None:
        """The backend's base URL once known (the embedded agent's port is picked at start)."""
        if self.backend_url != "embedded":
            return self.backend_url
        return self._embedded.url if self._embedded else None

    @property
    def token_value(self) -> str | None:
        return self._token.value if self._token else None

    # -- subscribing ----------------------------------------------------------------------------
    def subscribe(self, callback):
        """`callback(event)` for every event; returns an unsubscribe function."""
        return self.bus.subscribe(callback)

    def _emit(self, event: Event) -> None:
        self.bus.publish(event)

    def _set_state(self, state: CallState, **details) -> None:
        self.state = state
        self._emit(StateChanged(state, **details))

    # -- commands -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._supervisor is not None and not self._supervisor.done()

    async def start(self) -> None:
        """Place the call (no-op while one is running)."""
        if self.running:
            return
        self.last_reason = None
        self.session_id = f"sess_{uuid.uuid4().hex[:24]}"  # one id for the whole call, across reconnects
        self._supervisor = asyncio.create_task(self._supervise(), name="sandra-call")

    async def retry(self) -> None:
        """After `failed`: start over with a fresh attempt counter."""
        if self.state in (CallState.FAILED, CallState.ENDED, CallState.IDLE):
            await self.start()

    async def hangup(self) -> None:
        task, self._supervisor = self._supervisor, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._teardown(hangup=True)
        if self.state not in (CallState.IDLE, CallState.FAILED, CallState.ENDED):
            self._set_state(CallState.ENDED)

    async def close(self) -> None:
        """Hang up and free everything (embedded agent, HTTP session, audio). A second call does
        nothing (`sandra-tui` closes on quit, and again on the way out in case quit was skipped)."""
        if self._closed:
            return
        self._closed = True
        await self.hangup()
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._embedded is not None:
            await self._embedded.stop()
            self._embedded = None
        await self.audio.close()

    async def wait(self) -> CallState:
        """Wait until the call is over (failed or hung up)."""
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        return self.state

    def set_muted(self, muted: bool) -> None:
        self.audio.muted = muted
        self._emit(MuteChanged(muted, self.audio.push_to_talk))

    def toggle_mute(self) -> bool:
        self.set_muted(not self.audio.muted)
        return self.audio.muted

    def set_push_to_talk(self, enabled: bool) -> None:
        self.audio.push_to_talk = enabled
        self._emit(MuteChanged(self.audio.muted, enabled))

    def talk(self, pressed: bool) -> None:
        """Push-to-talk key down/up."""
        self.audio.talking = pressed

    async def send_text(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        item_id = f"item_{uuid.uuid4().hex[:20]}"
        self.history.add("user", text, item_id=item_id)
        self._emit(Transcript("user", text, True, item_id))
        self._emit_history()
        self._text_sent_at = time.monotonic()
        self._send({"type": "conversation.item.create",
                    "item": {"id": item_id, "type": "message", "role": "user",
                             "content": [{"type": "input_text", "text": text}]}})
        self._send({"type": "response.create"})

    async def cancel_response(self) -> None:
        """Stop Sandra mid-reply (the operator's barge-in key); nothing to do when she is quiet."""
        # The API wants response.cancel before output_audio_buffer.clear, and answers a cancel
        # with no response in progress with an error.
        if self._response_active:
            self._send({"type": "response.cancel"})
        self._barge_in()

    def clear_history(self) -> None:
        self.history.clear()
        self._emit_history()

    # -- audio devices ----------------------------------------------------------------------------
    def list_devices(self):
        """The machine's audio devices (`sandra_tui.audio.devices.Device`); raises AudioUnavailable."""
        from sandra_tui.audio.devices import list_devices

        return list_devices()

    async def set_devices(self, input_device: str | None = None, output_device: str | None = None) -> None:
        """Switch the microphone and/or speaker (name or index; "" = system default) without
        dropping the call. Raises AudioUnavailable with a plain message when it cannot."""
        await self.audio.switch_devices(input_device, output_device)
        if input_device is not None:
            self.config.audio.input_device = input_device
        if output_device is not None:
            self.config.audio.output_device = output_device

    # -- supervisor -----------------------------------------------------------------------------
    async def _supervise(self) -> None:
        failures = 0
        reason = None
        retry_after = None
        dropped_at: float | None = None
        last_relay = False
        try:
            while True:
                try:
                    await self._connect(failures, reason, last_relay)
                except SignalingError as exc:
                    reason, retry_after = exc.reason, exc.retry_after_s
                    self._emit(ErrorEvent(str(exc), exc.reason, fatal=not exc.retryable))
                    if not exc.retryable:
                        await self._teardown()
                        self.last_reason = reason
                        self._set_state(CallState.FAILED, reason=reason, retryable=exc.status not in (401, 403))
                        return
                except _PathDead as exc:
                    reason, retry_after = exc.reason, None
                except EmbeddedAgentError as exc:
                    self._emit(ErrorEvent(str(exc), "embedded_agent", fatal=True))
                    self.last_reason = "embedded_agent"
                    self._set_state(CallState.FAILED, reason="embedded_agent")
                    return
                else:
                    if failures:
                        total = (time.monotonic() - dropped_at) * 1000 if dropped_at else 0.0
                        log.warning("Reconnection successful!")
                        self._emit(Reconnected(failures, round(total, 1)))
                        self._latency("reconnect_total", total)
                    self._set_state(CallState.CONNECTED)
                    reason = await self._wait_dead()
                    retry_after = None
                    dropped_at = time.monotonic()
                    if time.monotonic() - (self._connected_at or 0) >= self.config.reconnect.stable_after_s:
                        failures = 0  # a stable call earns a fresh set of attempts
                last_relay = bool(self.plan and self.plan.relay_only)
                if dropped_at is None:
                    dropped_at = time.monotonic()
                await self._teardown()
                self.planner.invalidate()
                failures += 1
                self.last_reason = reason
                if failures > self.backoff.max_attempts:
                    log.warning("Reconnection failed after %d attempts. Reason: %s", failures - 1, reason)
                    self._set_state(CallState.FAILED, reason=reason)
                    return
                delay = self.backoff.delay_ms(failures)
                if retry_after is not None:
                    delay = max(delay, int(retry_after * 1000))
                log.warning(attempt_log_line(failures, self.backoff.max_attempts, delay, reason))
                self._emit(ReconnectAttempt(failures, self.backoff.max_attempts, delay, reason))
                self._set_state(CallState.RECONNECTING, reason=reason, attempt=failures,
                                max_attempts=self.backoff.max_attempts, delay_ms=delay)
                await asyncio.sleep(delay / 1000)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the call fails visibly, never silently
            log.exception("call supervisor crashed")
            await self._teardown()
            self.last_reason = "internal_error"
            self._emit(ErrorEvent(f"internal error: {exc}", "internal_error", fatal=True))
            self._set_state(CallState.FAILED, reason="internal_error")

    async def _wait_dead(self) -> str:
        assert self._dead is not None
        return await self._dead

    def _mark_dead(self, reason: str, dead: asyncio.Future | None = None) -> None:
        """Declare the current path dead (or only the attempt whose future is `dead`)."""
        if dead is not None and dead is not self._dead:
            return  # a late signal from an attempt already torn down
        if self._dead is not None and not self._dead.done():
            log.info("path dead: %s", reason)
            self._dead.set_result(reason)

    # -- one connection attempt -------------------------------------------------------------
    async def _connect(self, attempt: int, last_reason: str | None, last_relay: bool) -> None:
        self._attempt_started = time.monotonic()
        self._dead = asyncio.get_running_loop().create_future()
        timeout = self.config.backend.connect_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self._connect_steps(attempt, last_reason, last_relay)
        except TimeoutError:
            raise _PathDead("connect_timeout") from None

    async def _backend(self) -> str:
        if self.backend_url != "embedded":
            return self.backend_url
        if self._embedded is None:
            self._embedded = EmbeddedAgent()
        return await self._embedded.start()

    async def _connect_steps(self, attempt: int, last_reason: str | None, last_relay: bool) -> None:
        cfg = self.config
        self._set_state(CallState.ACQUIRING_TOKEN)
        backend = await self._backend()
        if self._http is None:
            self._http = aiohttp.ClientSession()
        started = time.monotonic()
        self._token = token = await signaling.fetch_token(
            self._http, backend, cfg.backend.token_path, cfg.backend.request_timeout_s,
            {"session_id": self.session_id, "reconnect": attempt > 0})
        if token.session_id and token.session_id != self.session_id:
            self.session_id = token.session_id  # the backend decides when it names sessions itself
        self._latency("token_acquisition", (time.monotonic() - started) * 1000)

        self._set_state(CallState.CONNECTING)
        loopback = backend_is_loopback(backend) and backend_is_loopback(token.realtime_url)
        if loopback:
            pin_host_candidates_to_loopback()
        servers = gather_servers(cfg.ice, token.ice_servers, loopback)
        self.plan = plan = await self.planner.plan(servers, attempt, last_reason, last_relay)
        log.info("ICE servers for this attempt: %s", plan.describe())
        rtc = RTCConfiguration(
            iceServers=plan.to_rtc(),
            iceTransportPolicy=RTCIceTransportPolicy.RELAY if plan.relay_only else RTCIceTransportPolicy.ALL,
        )
        self._pc = pc = RTCPeerConnection(rtc)
        PEER_CONNECTIONS.add(pc)
        dead = self._dead
        connected = asyncio.get_running_loop().create_future()

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not connected.done():
                connected.set_result(True)
            elif state in ("failed", "closed"):
                reason = "ice_failed" if pc.iceConnectionState == "failed" else f"pc_{state}"
                if not connected.done():
                    connected.set_exception(_PathDead(reason))
                self._mark_dead(reason, dead)

        @pc.on("track")
        def _on_track(track) -> None:
            if track.kind == "audio":
                self._first_audio_pending = True
                self.audio.attach_remote(track)

        dc = self._dc = pc.createDataChannel("oai-events")
        dc_open = asyncio.get_running_loop().create_future()
        dc.on("open", lambda: dc_open.done() or dc_open.set_result(True))
        # A closing peer connection closes its channel first: wait a moment so the reason names
        # the cause (pc_closed) rather than the symptom.
        dc.on("close", lambda: self._timers.append(asyncio.get_running_loop().call_later(
            DC_CLOSE_GRACE_S, self._mark_dead, "datachannel_closed", dead)))
        dc.on("message", self._on_message)
        transceiver = pc.addTransceiver(self.audio.new_mic_track(), direction="sendrecv")
        self.audio.attach_receiver(transceiver.receiver)  # with a playout buffer, decode on arrival

        await pc.setLocalDescription(await pc.createOffer())
        started = time.monotonic()
        answer, self._call_url = await signaling.exchange_sdp(self._http, token, pc.localDescription.sdp,
                                                             cfg.backend.request_timeout_s)
        self._latency("sdp_exchange", (time.monotonic() - started) * 1000)
        answer = signaling.normalize_answer(answer)
        started = time.monotonic()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except (ValueError, Exception) as exc:  # aiortc raises ValueError/KeyError on bad SDP
            raise SignalingError("signaling_error", f"sdp: the answer was rejected: {exc}") from None
        if not signaling.has_end_of_candidates(answer):
            await pc.addIceCandidate(None)
        await connected
        await dc_open
        self._connected_at = time.monotonic()
        self._latency("ice_connect", (self._connected_at - started) * 1000)
        self._send_session_update()
        if attempt:
            self._reseed()
        self._flush_pending()
        self._watchdog = asyncio.create_task(self._watch(pc), name="sandra-watchdog")

    async def _teardown(self, hangup: bool = False) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        await self.audio.detach()
        pc, self._pc, self._dc = self._pc, None, None
        if hangup and self._http is not None and self._token is not None:
            await signaling.hang_up(self._http, self._token, self._call_url)
        self._call_url = None
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()
        self._reply_active = False
        self._response_active = False
        if self._dead is not None and not self._dead.done():
            self._dead.cancel()
        self._dead = None

    # -- watchdog and stats -----------------------------------------------------------------
    async def _watch(self, pc: RTCPeerConnection) -> None:
        """Declare the path dead after `watchdog_ms` without inbound RTP (aiortc's own consent
        check takes ~30 s and ends in "closed"); publish quality once a second."""
        # Declared dead within watchdog_ms of the last packet, poll granularity included.
        limit = max(POLL_S, self.config.reconnect.watchdog_ms / 1000 - 2 * POLL_S)
        last_count, last_rx, polls = -1, time.monotonic(), 0
        seen = False
        while True:
            await asyncio.sleep(POLL_S)
            try:
                snap = read_stats(await pc.getStats())
            except Exception:  # noqa: BLE001 - a closing PC can fail getStats
                return
            now = time.monotonic()
            if snap.packets_received != last_count:
                seen = seen or snap.packets_received > 0
                last_count, last_rx = snap.packets_received, now
            idle = now - last_rx
            if (seen and idle >= limit) or (not seen and idle >= max(limit, self.config.backend.connect_timeout_s)):
                self._mark_dead("media_timeout")
                return
            polls += 1
            if polls % QUALITY_EVERY == 0:
                loss = loss_percent(snap.packets_lost, snap.packets_received)
                one_way = (snap.rtt_ms or 0.0) / 2
                self._emit(Quality(
                    rtt_ms=None if snap.rtt_ms is None else round(snap.rtt_ms, 1),
                    jitter_ms=None if snap.jitter_ms is None else round(snap.jitter_ms, 1),
                    packets_lost=snap.packets_lost, packets_received=snap.packets_received,
                    loss_pct=round(loss, 2), mos=mos(one_way, snap.jitter_ms or 0.0, loss)))

    # -- data channel ----------------------------------------------------------------------------
    def _send(self, event: dict) -> None:
        """Send a client event now, or when the channel next opens (reconnecting)."""
        event.setdefault("event_id", f"evt_{uuid.uuid4().hex[:20]}")
        dc = self._dc
        if dc is not None and dc.readyState == "open" and self.state == CallState.CONNECTED:
            try:
                dc.send(json.dumps(event))
                return
            except Exception:  # noqa: BLE001 - a channel closing under us: queue it
                pass
        if event["type"] in ("conversation.item.create", "response.create"):
            self._pending_sends.append(event)

    def _flush_pending(self) -> None:
        pending, self._pending_sends = self._pending_sends, []
        for event in pending:
            self._dc.send(json.dumps(event))

    def _send_session_update(self) -> None:
        s = self.config.session
        session = {
            "type": "realtime",
            "audio": {
                "input": {
                    "turn_detection": {
                        "type": "server_vad", "threshold": s.vad_threshold,
                        "prefix_padding_ms": s.vad_prefix_padding_ms,
                        "silence_duration_ms": s.vad_silence_duration_ms,
                        "create_response": True, "interrupt_response": True,
                    },
                    "transcription": {"model": "whisper-1"},
                },
                "output": {"voice": s.voice},
            },
        }
        if s.instructions:
            session["instructions"] = s.instructions
        self._dc.send(json.dumps({"type": "session.update", "session": session}))

    def _reseed(self) -> None:
        """Give the new session the recent conversation so Sandra keeps context."""
        queued = {e.get("item", {}).get("id") for e in self._pending_sends}
        for message in self.history.recent(RESEED_MESSAGES):
            if not message.content or message.role not in ("user", "assistant") or message.item_id in queued:
                continue
            kind = "input_text" if message.role == "user" else "output_text"
            self._dc.send(json.dumps({
                "type": "conversation.item.create",
                "item": {"type": "message", "role": message.role,
                         "content": [{"type": kind, "text": message.content}]},
            }))

    def _on_message(self, raw) -> None:
        try:
            event = json.loads(raw)
            kind = event["type"]
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring a malformed event from the server")
            return
        handler = getattr(self, "_on_" + kind.replace(".", "_"), None)
        if handler is not None:
            try:
                handler(event)
            except (KeyError, TypeError, AttributeError):
                log.warning("ignoring a malformed %s event", kind)

    def _on_input_audio_buffer_speech_started(self, event: dict) -> None:
        self._emit(Speech("user_started"))
        if self._reply_active:
            self._barge_in()

    def _on_input_audio_buffer_speech_stopped(self, event: dict) -> None:
        self._speech_stopped_at = time.monotonic()
        self._emit(Speech("user_stopped"))

    def _on_conversation_item_input_audio_transcription_delta(self, event: dict) -> None:
        delta = event.get("delta") or ""
        if delta:
            self.history.append_delta("user", event["item_id"], delta)
            self._emit(Transcript("user", delta, False, event["item_id"]))

    def _on_conversation_item_input_audio_transcription_completed(self, event: dict) -> None:
        text = event["transcript"]
        self.history.finish("user", event["item_id"], text)
        self._emit(Transcript("user", text, True, event["item_id"]))
        self._emit_history()

    def _on_response_output_audio_transcript_delta(self, event: dict) -> None:
        self._reply_item = event["item_id"]
        self.history.append_delta("assistant", event["item_id"], event["delta"])
        self._emit(Transcript("assistant", event["delta"], False, event["item_id"]))

    def _on_response_output_audio_transcript_done(self, event: dict) -> None:
        self.history.finish("assistant", event["item_id"], event["transcript"])
        self._emit(Transcript("assistant", event["transcript"], True, event["item_id"]))
        self._emit_history()

    _on_response_output_text_delta = _on_response_output_audio_transcript_delta

    def _on_response_output_text_done(self, event: dict) -> None:
        self.history.finish("assistant", event["item_id"], event["text"])
        self._emit(Transcript("assistant", event["text"], True, event["item_id"]))
        self._emit_history()

    def _on_output_audio_buffer_started(self, event: dict) -> None:
        self._reply_active = True
        self._reply_started_frames = self.audio.frames_played
        self._emit(Speech("reply_started"))

    def _on_output_audio_buffer_stopped(self, event: dict) -> None:
        self._reply_active = False
        self._emit(Speech("reply_stopped"))

    _on_output_audio_buffer_cleared = _on_output_audio_buffer_stopped

    def _on_response_created(self, event: dict) -> None:
        self._response_active = True

    def _on_response_done(self, event: dict) -> None:
        self._response_active = False
        if event["response"].get("status") == "cancelled":
            self._emit(Speech("reply_cancelled"))

    def _on_error(self, event: dict) -> None:
        error = event.get("error") or {}
        self._emit(ErrorEvent(f"Sandra: {error.get('message', 'unknown error')}", str(error.get("code") or "")))

    def _barge_in(self) -> None:
        """Stop local playout at once and tell the server how much of the reply was heard."""
        if not self._reply_active:
            return
        self.audio.flush_playout()
        heard_ms = (self.audio.frames_played - self._reply_started_frames) * 20
        self._send({"type": "output_audio_buffer.clear"})
        if self._reply_item:
            self._send({"type": "conversation.item.truncate", "item_id": self._reply_item,
                        "content_index": 0, "audio_end_ms": max(0, heard_ms)})
        self._reply_active = False
        self._emit(Speech("reply_cancelled"))

    # -- audio observations ---------------------------------------------------------------------
    def _on_output_frame(self, samples) -> None:
        now = time.monotonic()
        if self._first_audio_pending and self._connected_at is not None:
            self._first_audio_pending = False
            self._latency("time_to_first_audio", (now - self._connected_at) * 1000)
        # The level is only needed while a reply is awaited: not for every frame of a call.
        if self._speech_stopped_at is None and self._text_sent_at is None:
            return
        if peak_dbfs(samples) < REPLY_AUDIO_DBFS:
            return
        if self._speech_stopped_at is not None:
            self._latency("response_latency", (now - self._speech_stopped_at) * 1000)
            self._speech_stopped_at = None
            self._text_sent_at = None
        elif self._text_sent_at is not None:
            self._latency("text_response_latency", (now - self._text_sent_at) * 1000)
            self._text_sent_at = None

    def _on_levels(self, in_rms: float, out_rms: float, in_peak: float, out_peak: float) -> None:
        self._emit(AudioLevels(round(in_rms, 1), round(out_rms, 1), round(in_peak, 1), round(out_peak, 1)))

    def _latency(self, name: str, ms: float) -> None:
        cls = self.config.latency.classify(ms)
        latency_log.info("[LATENCY] %s: %s took %dms", cls, name, round(ms))
        self._emit(LatencySample(name, ms, cls))

    def _emit_history(self) -> None:
        self._emit(HistoryChanged(len(self.history), round(self.history.memory_usage_mb(), 4)))

    def notice(self, message: str) -> None:
        self._emit(Notice(message))
