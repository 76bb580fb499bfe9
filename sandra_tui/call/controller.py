"""The call controller: the facade the UI and `call --headless` use (commands in, events out).

It holds what lives for the whole call, across reconnects and renewals: the history, the
outbox of typed messages, the audio engine, the embedded agent and the HTTP session. The
Supervisor (call/supervisor.py) decides when to connect, back off and renew; each attempt is a
Connection (call/connection.py) speaking the Realtime dialect through a RealtimeSession
(call/session.py). Nothing of an attempt outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid

import aiohttp

from sandra_tui.config import tls
from sandra_tui.audio.engine import AudioEngine
from sandra_tui.call.backoff import Backoff
from sandra_tui.call.connection import Connection, PathDead, open_peer_connections  # noqa: F401 - re-exported
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
    StateChanged,
    Transcript,
)
from sandra_tui.call.history import ConversationHistory
from sandra_tui.call.ice import IcePlanner, Plan
from sandra_tui.call.policy import ReconnectPolicy
from sandra_tui.call.session import RealtimeSession
from sandra_tui.call.supervisor import Supervisor
from sandra_tui.config.model import Config

log = logging.getLogger("sandra_tui.call")
latency_log = logging.getLogger("sandra_tui.latency")


class CallController:
    def __init__(self, config: Config, *, audio: AudioEngine | None = None, backend_url: str | None = None,
                 probe=None, seed: int | None = None, embedded: EmbeddedAgent | None = None) -> None:
        self.config = config
        self.backend_url = backend_url or config.backend.url
        if embedded is not None and self.backend_url != "embedded":  # spawned early on a wrong guess
            embedded.kill()
            embedded = None
        self.audio = audio or AudioEngine(push_to_talk=config.audio.push_to_talk)
        self.bus = EventBus()
        h = config.history
        self.history = ConversationHistory(h.max_messages, h.max_memory_mb, h.trim_to)
        r = config.reconnect
        self.backoff = Backoff(r.max_attempts, r.base_delay_ms, r.max_delay_ms, r.jitter,
                               random.Random(seed) if seed is not None else None)
        self.planner = IcePlanner(config.ice, probe)
        self.state = CallState.IDLE
        self.last_reason: str | None = None
        self.session_id = ""
        self.embedded = embedded  # the TUI's, spawned at launch (call/early_agent.py), or started here
        self.supervisor: Supervisor | None = None
        self.supervisor_task: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None
        self._backend: str | None = None
        self._token = None
        self._closed = False
        self._outbox: list[tuple[str, str]] = []  # typed messages (item id, text) not sent yet
        self._notices_shown: set[str] = set()
        self.audio.output_listeners.append(self._on_output_frame)
        self.audio.level_listeners.append(self._on_levels)
        self.audio.device_listeners.append(lambda i, o, why: self._emit(DevicesChanged(i, o, why)))
        self.audio.playout_listeners.append(lambda st: self._emit(PlayoutStats(
            st["depth_ms"], st["target_ms"], st["underruns"], st["concealed"])))
        self.audio.notice_listeners.append(lambda message: self._emit(Notice(message)))

    # -- what the UI reads --------------------------------------------------------------------
    @property
    def connection(self) -> Connection | None:
        """The connection carrying the call now (None between attempts)."""
        return self.supervisor.current if self.supervisor else None

    @property
    def plan(self) -> Plan | None:
        conn = self.connection
        return conn.plan if conn else None

    @property
    def backend_base(self) -> str | None:
        """The backend's base URL once known (the embedded agent's port is picked at start)."""
        if self.backend_url != "embedded":
            return self.backend_url
        return self.embedded.url if self.embedded else None

    @property
    def token_value(self) -> str | None:
        return self._token.value if self._token else None

    @property
    def running(self) -> bool:
        return self.supervisor_task is not None and not self.supervisor_task.done()

    def subscribe(self, callback):
        """`callback(event)` for every event; returns an unsubscribe function."""
        return self.bus.subscribe(callback)

    def _emit(self, event: Event) -> None:
        self.bus.publish(event)

    def _set_state(self, state: CallState, **details) -> None:
        self.state = state
        if state == CallState.FAILED:
            self.last_reason = details.get("reason")
        self._emit(StateChanged(state, **details))

    # -- commands -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Place the call (no-op while one is running)."""
        if self.running or self._closed:
            return
        self.last_reason = None
        self.session_id = f"sess_{uuid.uuid4().hex[:24]}"  # one id for the whole call, across reconnects
        self._token = None  # a new call: nothing to resume
        self.supervisor = Supervisor(
            open_connection=self._new_connection,
            policy=ReconnectPolicy(self.backoff, self.config.reconnect.stable_after_s),
            set_state=self._set_state, emit=self._emit, latency=self._latency, on_switch=self._on_switch,
            renew_after_s=self.config.call.renew_after_s, renew_quiet_max_s=self.config.call.renew_quiet_max_s)
        self.supervisor_task = asyncio.create_task(self._run(self.supervisor), name="sandra-call")

    async def retry(self) -> None:
        """After `failed`: start over with a fresh attempt counter."""
        if self.state in (CallState.FAILED, CallState.ENDED, CallState.IDLE):
            await self.start()

    async def hangup(self) -> None:
        task, supervisor = self.supervisor_task, self.supervisor
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if supervisor is not None:
            await supervisor.close_all()  # already done by the task, unless it never started
        if self.state not in (CallState.IDLE, CallState.FAILED, CallState.ENDED):
            self._set_state(CallState.ENDED)

    async def close(self) -> None:
        """Hang up and free everything (embedded agent, HTTP session, audio). Every step runs
        even when an earlier one fails; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        steps = [self.hangup, self._close_http, self._stop_embedded, self.audio.close]
        for step in steps:
            try:
                await step()
            except Exception:  # noqa: BLE001 - closing: the next step must still run
                log.exception("closing the call: %s failed", getattr(step, "__name__", step))

    async def _close_http(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _stop_embedded(self) -> None:
        agent, self.embedded = self.embedded, None
        if agent is not None:
            await agent.stop()

    async def wait(self) -> CallState:
        """Wait until the call is over (failed or hung up)."""
        if self.supervisor_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.supervisor_task
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
        """Shown at once; sent when a call is up and Sandra is not answering (queued until then)."""
        text = text.strip()
        if not text:
            return
        item_id = f"item_{uuid.uuid4().hex[:20]}"
        self.history.add("user", text, item_id=item_id, status="queued")
        self._outbox.append((item_id, text))
        self._emit(Transcript("user", text, True, item_id, status="queued"))
        self._emit_history()
        self._pump()

    def _pump(self) -> None:
        """Send the next typed message if the current session can take it now."""
        conn = self.connection  # set only once connected (and re-seeded)
        session = conn.session if conn is not None else None
        if session is None or session.busy or not self._outbox:
            return
        item_id, text = self._outbox[0]
        if session.send_user_text(item_id, text):
            self._outbox.pop(0)
            self.history.mark(item_id, "")
            self._emit(Transcript("user", text, True, item_id, status="sent"))

    async def cancel_response(self) -> None:
        """Stop Sandra mid-reply (the operator's barge-in key); nothing to do when she is quiet."""
        conn = self.connection
        if conn is not None and conn.session is not None:
            conn.session.cancel_response()

    def set_ice(self, ice) -> None:
        """ICE servers for the next (re)connect. The planner was built with the old ones (probe
        timeout, cache, relay fallback): a new planner, same probe."""
        self.config.ice = ice
        self.planner = IcePlanner(ice, getattr(self.planner, "probe", None))

    def clear_history(self) -> None:
        self.history.clear()
        self._outbox.clear()
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

    # -- the call -------------------------------------------------------------------------------
    async def _run(self, supervisor: Supervisor) -> None:
        try:
            try:
                # The embedded agent starts outside every attempt's connect timeout, with a
                # deadline of its own: a slow start must not spawn a second agent.
                self._backend = await self._backend_url()
                if self._http is None:
                    self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(**tls.connector_kwargs()))
            except EmbeddedAgentError as exc:
                self._emit(ErrorEvent(str(exc), "embedded_agent", fatal=True))
                self._set_state(CallState.FAILED, reason="embedded_agent")
                return
            await supervisor.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the call fails visibly, never silently
            log.exception("call supervisor crashed")
            self._emit(ErrorEvent(f"internal error: {exc}", "internal_error", fatal=True))
            self._set_state(CallState.FAILED, reason="internal_error")
        finally:
            self.last_reason = supervisor.last_reason if self.state == CallState.FAILED else self.last_reason

    async def _backend_url(self) -> str:
        if self.backend_url != "embedded":
            return self.backend_url
        if self.embedded is None:
            self.embedded = EmbeddedAgent()
        return await self.embedded.start()

    def _new_connection(self, attempt: int, last_reason: str | None, last_relay: bool,
                        renewal: bool) -> Connection:
        if attempt:
            self.planner.invalidate()  # a failed path: probe the servers afresh
        return Connection(
            config=self.config, http=self._http, backend=self._backend, planner=self.planner, audio=self.audio,
            emit=self._emit, latency=self._latency, make_session=self._make_session,
            session_id=self.session_id, attempt=attempt, last_reason=last_reason, last_relay=last_relay,
            active=not renewal, on_step=None if renewal else self._set_state, on_token=self._on_token,
            resume_key=self._token.value if self._token else None)

    def _make_session(self, send_raw, on_expired) -> RealtimeSession:
        if self._token is not None and self._token.api == "live":  # GPT-Live (#22): the token reply names the dialect
            from sandra_tui.call.live_session import LiveSession
            return LiveSession(send_raw, emit=self._emit, history=self.history, audio=self.audio,
                               latency=self._latency, on_idle=self._pump, on_expired=on_expired)
        return RealtimeSession(send_raw, emit=self._emit, history=self.history, audio=self.audio,
                               latency=self._latency, on_idle=self._pump, on_expired=on_expired)

    def _on_token(self, token) -> None:
        self._token = token
        if token.session_id:
            self.session_id = token.session_id
        if token.notice and token.notice not in self._notices_shown:
            self._notices_shown.add(token.notice)  # once per run, not on every reconnect
            self._emit(Notice(token.notice))

    def _on_switch(self, old: Connection | None, new: Connection) -> None:
        """`new` carries the call from now on: re-seed it (after a drop or for a renewal) and
        move the audio over."""
        if old is not None or new.attempt:
            skip = {item_id for item_id, _ in self._outbox}
            sent = new.session.reseed(self.history.messages(), skip_ids=skip)
            log.info("re-seeded the new session with %d items", sent)
        if old is not None:
            old.deactivate()
            new.activate()
        self.supervisor.current = new
        self._pump()

    # -- observations -------------------------------------------------------------------------
    def _on_output_frame(self, samples) -> None:
        conn = self.connection
        if conn is not None:
            conn.on_output_frame(samples, time.monotonic())

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

    # -- operator workflow (history, settings, media path, recording) -----------------------------
    async def media_path(self):
        """The current connection's media path (a MediaPath event, also published), or None."""
        from sandra_tui.call.connection import read_media_path

        conn = self.connection
        if conn is None:
            return None
        path = await read_media_path(conn)
        if path is not None:
            self._emit(path)
        return path

    @property
    def voice_locked(self) -> bool:
        """Sandra has replied in this session: the API no longer takes a new voice."""
        conn = self.connection
        return bool(conn and conn.session and getattr(conn.session, "replied", False))

    async def update_session(self, settings) -> str:
        """Apply [session] settings to the running call with session.update (the voice only
        before the first reply). Returns a sentence saying what was applied."""
        self.config.session = settings
        conn = self.connection
        if conn is None or conn.session is None:
            return "Used from the next call."
        if getattr(conn.session, "api", "") == "live":
            return "Saved. GPT-Live: voice and turn taking are fixed by the backend when the session starts."
        from sandra_tui.call.session import settings_update

        locked = self.voice_locked
        if not conn.session.send(settings_update(settings, include_voice=not locked)):
            return "Not applied: the call's channel is closed; used from the next call."
        return ("Applied now; the voice from the next call (locked after the first reply)." if locked
                else "Applied now.")

    async def rescan_devices(self):
        """A fresh device list: the engine restarts PortAudio (it keeps the list it read at
        start) and reopens the streams on the same choice."""
        rescan = getattr(self.audio, "rescan_devices", None)
        if rescan is not None:
            await rescan()
        return self.list_devices()

    @property
    def recording(self) -> bool:
        return getattr(self, "_recorder", None) is not None

    def set_recording(self, on: bool, directory=None) -> str:
        """Start or stop recording the call (stereo 48 kHz WAV, operator left, Sandra right).
        Returns the file's path."""
        from sandra_tui.audio.recorder import CallRecorder, recordings_dir
        from sandra_tui.call.events import RecordingChanged

        recorder = getattr(self, "_recorder", None)
        if on and recorder is None:
            recorder = CallRecorder.start(recordings_dir(self.config.call, directory))
            self._recorder = recorder
            recorder.attach(self.audio)

            def stop_at_hangup(event) -> None:  # the file ends with the call
                if isinstance(event, StateChanged) and event.state in (CallState.ENDED, CallState.FAILED):
                    self.set_recording(False)

            recorder.unsubscribe = self.subscribe(stop_at_hangup)
            self._emit(RecordingChanged(True, str(recorder.path)))
            return str(recorder.path)
        if not on and recorder is not None:
            self._recorder = None
            recorder.unsubscribe()
            recorder.detach(self.audio)
            recorder.close()
            self._emit(RecordingChanged(False, str(recorder.path), recorder.dropped))
            return str(recorder.path)
        return str(recorder.path) if recorder else ""

    # -- audio levels and the microphone test (issue #20) ---------------------------------------
    def set_audio_levels(self, output_volume: float | None = None, mic_gain: float | None = None) -> None:
        """Output volume (0-2) and microphone gain (0-4), applied at once and kept in the config."""
        if output_volume is not None:
            self.config.audio.output_volume = self.audio.set_output_volume(output_volume)
        if mic_gain is not None:
            self.config.audio.mic_gain = self.audio.set_mic_gain(mic_gain)

    async def mic_test(self, seconds: float = 3.0, on_phase=None):
        """Record `seconds` from the microphone and play them back (a MicTestResult); raises
        AudioUnavailable with a plain reason (text only, a call is up, the device is silent)."""
        if self.state not in (CallState.IDLE, CallState.FAILED, CallState.ENDED):
            from sandra_tui.audio.devices import AudioUnavailable

            raise AudioUnavailable("hang up first: the test needs the microphone and speaker to itself")
        return await self.audio.mic_test(seconds, on_phase)


__all__ = ["CallController", "PathDead", "open_peer_connections"]
