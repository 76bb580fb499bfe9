"""Energy-based voice activity detection, configured like OpenAI's server_vad."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_MS = 20


def threshold_dbfs(threshold: float) -> float:
    """Map server_vad's 0..1 threshold onto a level: 0.5 -> -40 dBFS, 0 -> -60, 1 -> -20."""
    return -60.0 + 40.0 * min(1.0, max(0.0, threshold))


@dataclass
class VadEvent:
    kind: str  # speech_started | speech_stopped
    ms: int  # audio_start_ms / audio_end_ms on the input audio clock


class EnergyVad:
    def __init__(self, threshold: float = 0.5, prefix_padding_ms: int = 300, silence_duration_ms: int = 500) -> None:
        self.configure(threshold, prefix_padding_ms, silence_duration_ms)
        self.clock_ms = 0
        self.speaking = False
        self._loud_run = 0
        self._quiet_ms = 0
        self.speech_start_ms = 0

    def configure(self, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self.level = threshold_dbfs(threshold)
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = max(FRAME_MS, silence_duration_ms)

    def reset(self) -> None:
        """Forget a turn in progress (input_audio_buffer.clear / commit); the clock keeps running."""
        self.speaking = False
        self._loud_run = 0
        self._quiet_ms = 0

    def feed(self, samples: np.ndarray) -> VadEvent | None:
        """One 20 ms frame of int16 mono."""
        self.clock_ms += FRAME_MS
        x = samples.astype(np.float32) / 32768.0
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
        loud = rms > 0 and 20 * np.log10(rms) > self.level
        if not self.speaking:
            self._loud_run = self._loud_run + 1 if loud else 0
            if self._loud_run >= 2:  # 40 ms of speech: not a click
                self.speaking = True
                self._quiet_ms = 0
                self.speech_start_ms = max(0, self.clock_ms - 2 * FRAME_MS - self.prefix_padding_ms)
                return VadEvent("speech_started", self.speech_start_ms)
            return None
        self._quiet_ms = 0 if loud else self._quiet_ms + FRAME_MS
        if self._quiet_ms >= self.silence_duration_ms:
            self.speaking = False
            self._loud_run = 0
            return VadEvent("speech_stopped", self.clock_ms - self._quiet_ms)
        return None
