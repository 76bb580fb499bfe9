"""The audio side of a call as the controller sees it: a fresh mic track per connection
attempt, a drain for the remote track into the playout buffer, mute/push-to-talk, levels,
barge-in flush, device switching and fallback.

Device work (opening, switching, the health check with its fallback) runs on one worker
thread the engine owns, so two of them never swap streams at once. Notices are coalesced
(`Notices`): one per condition per window, repeats told as a count.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque

import numpy as np

from sandra_tui.audio.devices import AudioUnavailable
from sandra_tui.audio.frames import FRAME_MS, SILENCE_DBFS, peak_dbfs, rms_dbfs
from sandra_tui.audio.gain import GAIN_RANGE, VOLUME_RANGE, Gain
from sandra_tui.audio.playout import PlayoutBuffer
from sandra_tui.audio.sinks import RemoteDrain, Sink
from sandra_tui.audio.sources import MicTrack, SilenceSource, Source
from sandra_tui.media.opus import install_decoder

log = logging.getLogger(__name__)

LEVEL_INTERVAL_S = 0.1  # ~10 level updates a second
MONITOR_INTERVAL_S = 1.0  # playout stats and device health
NOTICE_WINDOW_S = 30.0  # one notice per condition per this long
LATE_NOTICE = (3, 10.0)  # callbacks late in 3 checks within 10 s: worth telling (one is a hiccup)


def _call_all(listeners, *args) -> None:
    """Each listener on its own: one that raises is logged, the others still hear."""
    for listener in list(listeners):
        try:
            listener(*args)
        except Exception:  # noqa: BLE001 - a subscriber's bug must not stop the audio
            log.exception("audio listener %r failed", listener)


class Notices:
    """At most one notice per condition (`key`) per window: the first at once; repeats are
    counted and, when the window is over, told once with the count ("... x7")."""

    def __init__(self, emit, window_s: float = NOTICE_WINDOW_S, clock=time.monotonic) -> None:
        self._emit = emit
        self.window_s = window_s
        self._clock = clock
        self._open: dict[str, list] = {}  # key -> [window start, message, count, count told]
        self.sent = 0

    def add(self, key: str, message: str) -> None:
        entry = self._open.get(key)
        if entry is None:
            self._open[key] = [self._clock(), message, 1, 1]
            self._send(message)
            return
        entry[1] = message
        entry[2] += 1
        self.flush()

    def flush(self) -> None:
        """Tell the counts of windows that are over (the engine calls this once a second)."""
        now = self._clock()
        for key, entry in list(self._open.items()):
            if now - entry[0] < self.window_s:
                continue
            if entry[2] > entry[3]:
                entry[0], entry[3] = now, entry[2]
                self._send(f"{entry[1]} x{entry[2]}")
            else:
                del self._open[key]  # quiet for a whole window: the next one is news again

    def _send(self, message: str) -> None:
        self.sent += 1
        self._emit(message)


class AudioEngine:
    def __init__(self, source: Source | None = None, sinks: list[Sink] | None = None,
                 push_to_talk: bool = False, description: str = "no audio device",
                 playout: PlayoutBuffer | None = None, output_volume: float = 1.0, mic_gain: float = 1.0) -> None:
        self.source = source or SilenceSource()
        self.sinks = list(sinks or [])
        self.playout = playout if playout is not None else getattr(self.source, "playout", None)
        self.description = description
        self.muted = False
        self.push_to_talk = push_to_talk
        self.talking = False  # push-to-talk key held
        self.output_listeners: list = []  # called with each remote mono frame (samples)
        self.level_listeners: list = []  # called with (in_rms, out_rms, in_peak, out_peak)
        self.device_listeners: list = []  # called with (input_name, output_name, reason)
        self.playout_listeners: list = []  # called with PlayoutBuffer.stats()
        self.notice_listeners: list = []  # called with a message for the operator
        self._drain: RemoteDrain | None = None
        self._monitor: asyncio.Task | None = None
        self._last_level = 0.0
        self._last_in: np.ndarray | None = None
        self._last_out: np.ndarray | None = None
        self.frames_received = 0
        self.trace = None  # an EdgeTrace (set_trace) when a benchmark asks
        self.notices = Notices(self._send_notice)
        self._late: deque[float] = deque(maxlen=LATE_NOTICE[0])
        # One thread for all device work: switch and fallback never swap streams at once.
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandra-audio")
        self._worker_open = True
        self.volume = Gain(output_volume, VOLUME_RANGE)  # on what the speaker plays
        self.gain = Gain(mic_gain, GAIN_RANGE)  # on what is sent (and recorded, and tested)
        self.mic_test_running = False

    @property
    def devices(self):
        """The DeviceAudio behind this engine, or None for files / text only."""
        return self.source if hasattr(self.source, "switch") else None

    # -- uplink ------------------------------------------------------------------------------
    def sending(self) -> bool:
        if self.muted:
            return False
        return self.talking if self.push_to_talk else True

    def new_mic_track(self, live=None) -> MicTrack:
        """A track for one connection. `live()` False (a renewed session not switched to yet)
        sends silence paced by the clock and leaves the microphone to the live track."""
        self._start_monitor()
        return MicTrack(self.source, gate=self.sending, on_frame=self._on_mic, live=live)

    def set_trace(self, trace) -> None:
        self.trace = trace
        devices = self.devices
        if devices is not None:
            devices.trace = trace

    def _on_mic(self, samples: np.ndarray) -> None:
        # In place: MicTrack sends the very array it hands here (a copy of the device's frame).
        self.gain.apply(samples)
        if self.trace is not None and self.sending():
            self.trace.mark("sent", samples)
        self._last_in = samples if self.sending() else None
        self._maybe_levels()

    # -- downlink ----------------------------------------------------------------------------
    def attach_receiver(self, receiver, accept=None) -> None:
        """With a playout buffer (it orders, conceals and paces), packets are decoded as they
        arrive and skip aiortc's jitter buffer and decoder thread. Without one (files, text
        only), aiortc's path stays: its jitter buffer keeps a written file in order."""
        if self.playout is not None:
            on_samples = self._on_remote if accept is None else (
                lambda samples, pts=None: self._on_remote(samples, pts) if accept() else None)
            install_decoder(receiver, on_samples)  # the receiver holds it

    def attach_remote(self, track) -> RemoteDrain:
        """Drain the remote track (it carries nothing while the direct decoder works, except
        audio that is not Opus): its queue is unbounded otherwise."""
        old, self._drain = self._drain, RemoteDrain(track, self._on_remote)
        if old is not None:
            old._task.cancel()
        return self._drain

    def _on_remote(self, samples: np.ndarray, pts: int | None = None) -> None:
        self.frames_received += 1
        if self.trace is not None:
            self.trace.mark("received", samples)
        for sink in self.sinks:
            sink.write(samples)
        self._last_out = samples
        if self.output_listeners:
            _call_all(self.output_listeners, samples)
        self._maybe_levels()
        if self.playout is not None:
            # The volume last and in place (the decoder made this frame for us alone): files,
            # the recording and the meters keep what Sandra sent; the speaker and the echo
            # canceller's reference get what is played.
            self.playout.push(self.volume.apply(samples), pts)

    @property
    def frames_played(self) -> int:
        """Frames that reached the speaker (or were received, without a speaker)."""
        return self.playout.frames_played if self.playout is not None else self.frames_received

    def flush_playout(self) -> None:
        """Barge-in: what is queued goes, and the reply's frames still on their way."""
        if self.playout is not None:
            self.playout.flush(tail=True)
        for sink in self.sinks:
            sink.flush()

    def resume_playout(self) -> None:
        """A new reply follows a flush: its first frames play (see Playout.flush)."""
        if self.playout is not None:
            self.playout.resume()

    def _maybe_levels(self) -> None:
        # Levels of the latest frame, ~10 times a second: meters need no more, and RMS of
        # every frame both ways would cost more than the meters are worth.
        now = time.monotonic()
        if now - self._last_level < LEVEL_INTERVAL_S:
            return
        self._last_level = now
        silent = (SILENCE_DBFS, SILENCE_DBFS)
        i, o = self._last_in, self._last_out
        level_in = (rms_dbfs(i), peak_dbfs(i)) if i is not None else silent
        level_out = (rms_dbfs(o), peak_dbfs(o)) if o is not None else silent
        _call_all(self.level_listeners, level_in[0], level_out[0], level_in[1], level_out[1])

    # -- devices -----------------------------------------------------------------------------
    async def _on_worker(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def switch_devices(self, input_device: str | None, output_device: str | None) -> None:
        devices = self.devices
        if devices is None:
            raise AudioUnavailable("this call has no audio devices (text only)")
        await self._on_worker(devices.switch, input_device, output_device)  # opening a device can block
        self.description = devices.describe()
        self._publish_devices("")

    async def rescan_devices(self) -> None:
        """PortAudio reads the machine's devices once, when it starts: start it again so a
        headset plugged in since is listed. Its streams die with it, so ours are closed first
        and reopened on the same choice (or the default when that one is gone): a call hears
        a fraction of a second of silence."""
        for kind, message in await self._on_worker(self._rescan):
            self._notice(message, f"rescan-{kind}")  # here, on the loop: listeners are not thread-safe
        if self.devices is not None:
            self.description = self.devices.describe()
            self._publish_devices("")  # not a warning: the picker says what it found

    def _rescan(self) -> list[tuple[str, str]]:
        from sandra_tui.audio.devices import reinitialize

        devices = self.devices
        found: list[tuple[str, str]] = []
        if devices is None:
            reinitialize()  # text only: nothing open; the next list is fresh
            return found
        with devices._lock:  # our DeviceAudio's own lock: no check or switch in between
            wanted = (devices.wanted_input, devices.wanted_output)
            devices.close()
            reinitialize()
            for kind, choice in zip(("input", "output"), wanted):
                args = (choice, None) if kind == "input" else (None, choice)
                try:
                    devices.switch(*args)
                except AudioUnavailable as exc:
                    found.append((kind, f"{exc}; using the default {kind}"))
                    devices.switch(*(("", None) if kind == "input" else (None, "")))
                    # switch() remembered "" as wanted; the config keeps the operator's choice
        return found

    def set_output_volume(self, value: float) -> float:
        return self.volume.set(value)

    def set_mic_gain(self, value: float) -> float:
        return self.gain.set(value)

    async def mic_test(self, seconds: float = 3.0, on_phase=None):
        """Record `seconds` from the microphone and play them back (sandra_tui.audio.mic_test).
        Not during a call: it would take the call's microphone frames."""
        from sandra_tui.audio.mic_test import run_mic_test

        devices = self.devices
        if devices is None:
            raise AudioUnavailable("no microphone: this session is text only")
        if self._drain is not None:
            raise AudioUnavailable("hang up first: the test needs the microphone and speaker to itself")
        if self.mic_test_running:
            raise AudioUnavailable("a microphone test is already running")
        self.mic_test_running = True
        try:
            return await run_mic_test(devices, seconds, gain=self.gain, volume=self.volume, on_phase=on_phase)
        finally:
            self.mic_test_running = False

    def _publish_devices(self, reason: str) -> None:
        devices = self.devices
        if devices is None:
            return
        _call_all(self.device_listeners, devices.input_name, devices.output_name, reason)

    def _notice(self, message: str, key: str | None = None) -> None:
        self.notices.add(key or message, message)

    def _send_notice(self, message: str) -> None:
        log.warning("audio: %s", message)
        _call_all(self.notice_listeners, message)

    def _start_monitor(self) -> None:
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.ensure_future(self._run_monitor())

    async def _run_monitor(self) -> None:
        devices = self.devices
        if devices is not None:
            for message in devices.notices:
                self._notice(message)
            devices.notices.clear()
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_S)
            try:
                await self._monitor_once(devices)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one failed check must not end the monitoring
                log.exception("audio monitor: the check failed")

    async def _monitor_once(self, devices) -> None:
        if devices is not None:
            for health in await self._on_worker(devices.check):
                if health.key == "late":
                    now = time.monotonic()
                    self._late.append(now)
                    if len(self._late) < LATE_NOTICE[0] or now - self._late[0] > LATE_NOTICE[1]:
                        continue
                self._notice(health.message, health.key)
                if health.switched:
                    self.description = devices.describe()
                    self._publish_devices(health.message)
        self.notices.flush()
        if self.playout is not None and self._drain is not None:
            _call_all(self.playout_listeners, self.playout.stats())

    async def detach(self) -> None:
        """The connection is gone (hang-up, reconnect): nothing more arrives, so the playout
        buffer stops and prebuffers for the next one, rather than count the quiet after the
        call as an underrun."""
        if self.playout is not None:
            self.playout.flush()
        if self._drain is not None:
            drain, self._drain = self._drain, None
            await drain.stop()

    async def close(self) -> None:
        """Stops everything, whatever failed before: the streams are always closed."""
        try:
            if self.playout is not None:
                log.info("playout: %s", self.playout.stats())
            await self.detach()
        except Exception:  # noqa: BLE001 - closing goes on: the devices must be released
            log.exception("audio: detaching failed")
        finally:
            monitor, self._monitor = self._monitor, None
            if monitor is not None:
                monitor.cancel()
                await asyncio.wait([monitor])  # not `await monitor`: its error is not ours to raise
                if not monitor.cancelled() and monitor.exception() is not None:
                    log.error("audio monitor had failed", exc_info=monitor.exception())
            try:
                if self._worker_open:
                    await self._on_worker(self._close_devices)  # after any check in progress
                else:
                    self._close_devices()
            except BaseException:
                self._close_devices()  # cancelled while waiting: close here, then go on
                raise
            finally:
                self._worker_open = False
                self._worker.shutdown(wait=False)

    def _close_devices(self) -> None:
        for part in [self.source, *self.sinks]:
            try:
                part.close()
            except Exception:  # noqa: BLE001 - one failing close must not leave the others open
                log.exception("audio: closing %r failed", part)


def build_engine(audio_config, *, use_devices: bool = True, device_rate: int = 0) -> tuple[AudioEngine, str | None]:
    """An engine on the configured devices, or text only with the one reason why."""
    if use_devices:
        try:
            from sandra_tui.audio.device_audio import DeviceAudio

            devices = DeviceAudio(audio_config.input_device, audio_config.output_device,
                                  echo_cancellation=audio_config.echo_cancellation,
                                  noise_suppression=audio_config.noise_suppression,
                                  playout_target_ms=audio_config.playout_target_ms, device_rate=device_rate,
                                  block_ms=audio_config.block_ms)
            return AudioEngine(devices, push_to_talk=audio_config.push_to_talk, description=devices.describe(),
                               output_volume=audio_config.output_volume, mic_gain=audio_config.mic_gain), None
        except AudioUnavailable as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - PortAudio/ALSA fail in creative ways; never a traceback
            log.exception("audio devices failed")
            reason = f"audio devices failed: {exc}"
    else:
        reason = None
    message = f"No audio device: {reason}. Text chat and the transcript still work." if reason else None
    return AudioEngine(push_to_talk=audio_config.push_to_talk, description="no audio device (text only)",
                       output_volume=audio_config.output_volume, mic_gain=audio_config.mic_gain), message
