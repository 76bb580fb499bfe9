"""The audio side of a call as the controller sees it: a fresh mic track per connection
attempt, a drain for the remote track into the playout buffer, mute/push-to-talk, levels,
barge-in flush, device switching and fallback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import numpy as np

from sandra_tui.audio.devices import AudioUnavailable
from sandra_tui.audio.frames import FRAME_MS, SILENCE_DBFS, peak_dbfs, rms_dbfs
from sandra_tui.audio.playout import PlayoutBuffer
from sandra_tui.audio.sinks import RemoteDrain, Sink
from sandra_tui.audio.sources import MicTrack, SilenceSource, Source
from sandra_tui.protocol.opus import install_decoder

log = logging.getLogger(__name__)

LEVEL_INTERVAL_S = 0.1  # ~10 level updates a second
MONITOR_INTERVAL_S = 1.0  # playout stats and device health


class AudioEngine:
    def __init__(self, source: Source | None = None, sinks: list[Sink] | None = None,
                 push_to_talk: bool = False, description: str = "no audio device",
                 playout: PlayoutBuffer | None = None) -> None:
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
        if self.playout is not None:
            self.playout.push(samples, pts)
        for sink in self.sinks:
            sink.write(samples)
        self._last_out = samples
        for listener in self.output_listeners:
            listener(samples)
        self._maybe_levels()

    @property
    def frames_played(self) -> int:
        """Frames that reached the speaker (or were received, without a speaker)."""
        return self.playout.frames_played if self.playout is not None else self.frames_received

    def played_ms(self) -> int:
        return self.frames_played * FRAME_MS

    def flush_playout(self) -> None:
        if self.playout is not None:
            self.playout.flush()
        for sink in self.sinks:
            sink.flush()

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
        for listener in list(self.level_listeners):
            listener(level_in[0], level_out[0], level_in[1], level_out[1])

    # -- devices -----------------------------------------------------------------------------
    async def switch_devices(self, input_device: str | None, output_device: str | None) -> None:
        devices = self.devices
        if devices is None:
            raise AudioUnavailable("this call has no audio devices (text only)")
        await asyncio.to_thread(devices.switch, input_device, output_device)  # opening a device can block
        self.description = devices.describe()
        self._publish_devices("")

    def _publish_devices(self, reason: str) -> None:
        devices = self.devices
        if devices is None:
            return
        for listener in list(self.device_listeners):
            listener(devices.input_name, devices.output_name, reason)

    def _notice(self, message: str) -> None:
        log.warning("audio: %s", message)
        for listener in list(self.notice_listeners):
            listener(message)

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
            if devices is not None:
                reason = await asyncio.to_thread(devices.check)
                if reason:
                    self.description = devices.describe()
                    self._notice(reason)
                    self._publish_devices(reason)
            if self.playout is not None and self._drain is not None:
                stats = self.playout.stats()
                for listener in list(self.playout_listeners):
                    listener(stats)

    async def detach(self) -> None:
        """The connection is gone (hang-up, reconnect): nothing more arrives, so the playout
        buffer stops and prebuffers for the next one, rather than count the quiet after the
        call as an underrun."""
        if self.playout is not None:
            self.playout.flush()
        if self._drain is not None:
            await self._drain.stop()
            self._drain = None

    async def close(self) -> None:
        if self.playout is not None:
            log.info("playout: %s", self.playout.stats())
        await self.detach()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        self.source.close()
        for sink in self.sinks:
            sink.close()


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
            return AudioEngine(devices, push_to_talk=audio_config.push_to_talk,
                               description=devices.describe()), None
        except AudioUnavailable as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 - PortAudio/ALSA fail in creative ways; never a traceback
            log.exception("audio devices failed")
            reason = f"audio devices failed: {exc}"
    else:
        reason = None
    message = f"No audio device: {reason}. Text chat and the transcript still work." if reason else None
    return AudioEngine(push_to_talk=audio_config.push_to_talk,
                       description="no audio device (text only)"), message
