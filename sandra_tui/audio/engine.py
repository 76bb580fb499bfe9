"""The audio side of a call as the controller sees it: a fresh mic track per connection
attempt, a drain for the remote track, mute/push-to-talk, levels and barge-in flush."""

from __future__ import annotations

import time

import numpy as np

from sandra_tui.audio.frames import FRAME_MS, SILENCE_DBFS, peak_dbfs, rms_dbfs
from sandra_tui.audio.sinks import RemoteDrain, Sink
from sandra_tui.audio.sources import MicTrack, SilenceSource, Source

LEVEL_INTERVAL_S = 0.1  # ~10 level updates a second


class AudioEngine:
    def __init__(self, source: Source | None = None, sinks: list[Sink] | None = None,
                 push_to_talk: bool = False, description: str = "no audio device") -> None:
        self.source = source or SilenceSource()
        self.sinks = list(sinks or [])
        self.description = description
        self.muted = False
        self.push_to_talk = push_to_talk
        self.talking = False  # push-to-talk key held
        self.output_listeners: list = []  # called with each remote mono frame
        self.level_listeners: list = []  # called with (in_rms, out_rms, in_peak, out_peak)
        self._drain: RemoteDrain | None = None
        self._in = (SILENCE_DBFS, SILENCE_DBFS)
        self._out = (SILENCE_DBFS, SILENCE_DBFS)
        self._last_level = 0.0
        self.frames_played = 0

    # -- uplink ------------------------------------------------------------------------------
    def sending(self) -> bool:
        if self.muted:
            return False
        return self.talking if self.push_to_talk else True

    def new_mic_track(self) -> MicTrack:
        return MicTrack(self.source, gate=self.sending, on_frame=self._on_mic)

    def _on_mic(self, samples: np.ndarray) -> None:
        self._in = (rms_dbfs(samples), peak_dbfs(samples)) if self.sending() else (SILENCE_DBFS, SILENCE_DBFS)
        self._maybe_levels()

    # -- downlink ----------------------------------------------------------------------------
    def attach_remote(self, track) -> RemoteDrain:
        old, self._drain = self._drain, RemoteDrain(track, self._on_remote)
        if old is not None:
            old._task.cancel()
        return self._drain

    @property
    def last_frame_at(self) -> float | None:
        return self._drain.last_frame_at if self._drain else None

    def _on_remote(self, samples: np.ndarray) -> None:
        self.frames_played += 1
        for sink in self.sinks:
            sink.write(samples)
        self._out = (rms_dbfs(samples), peak_dbfs(samples))
        for listener in list(self.output_listeners):
            listener(samples, self._out[0])
        self._maybe_levels()

    def played_ms(self) -> int:
        return self.frames_played * FRAME_MS

    def flush_playout(self) -> None:
        for sink in self.sinks:
            sink.flush()

    async def switch_devices(self, input_device: str | None, output_device: str | None) -> None:
        from sandra_tui.audio.devices import AudioUnavailable

        raise AudioUnavailable("this call has no audio devices (text only)")

    def _maybe_levels(self) -> None:
        now = time.monotonic()
        if now - self._last_level < LEVEL_INTERVAL_S:
            return
        self._last_level = now
        for listener in list(self.level_listeners):
            listener(self._in[0], self._out[0], self._in[1], self._out[1])

    async def detach(self) -> None:
        if self._drain is not None:
            await self._drain.stop()
            self._drain = None

    async def close(self) -> None:
        await self.detach()
        self.source.close()
        for sink in self.sinks:
            sink.close()
