"""Output volume and microphone gain: int16 frames scaled in place, saturating, without
allocating (one float32 scratch per direction, made once)."""

from __future__ import annotations

import numpy as np

from sandra_tui.audio.frames import FRAME_SAMPLES

VOLUME_RANGE = (0.0, 2.0)  # as AudioConfig.output_volume
GAIN_RANGE = (0.0, 4.0)  # as AudioConfig.mic_gain
_LOW, _HIGH = np.float32(-32768.0), np.float32(32767.0)


class Gain:
    """`apply(block)` multiplies by `value` in place and clips to int16 (no wrap-around: a
    loud frame at gain 4 saturates, it does not turn into noise)."""

    def __init__(self, value: float = 1.0, limits: tuple[float, float] = GAIN_RANGE,
                 size: int = FRAME_SAMPLES) -> None:
        self.limits = limits
        self._scratch = np.zeros(size, dtype=np.float32)
        self.value = 1.0
        self.set(value)

    def set(self, value: float) -> float:
        low, high = self.limits
        self.value = float(min(high, max(low, value)))
        self._factor = np.float32(self.value)  # float32 scalar: the float32 loop, no float64 temporaries
        return self.value

    def apply(self, block: np.ndarray) -> np.ndarray:
        if self.value == 1.0 or len(block) == 0:
            return block
        n = len(block)
        scratch = self._scratch[:n] if n <= len(self._scratch) else np.empty(n, dtype=np.float32)
        np.copyto(scratch, block, casting="unsafe")  # the cast here: a mixed-type ufunc would buffer
        np.multiply(scratch, self._factor, out=scratch)
        np.rint(scratch, out=scratch)
        np.minimum(scratch, _HIGH, out=scratch)  # not np.clip: it allocates (5 KB a call, measured)
        np.maximum(scratch, _LOW, out=scratch)
        np.copyto(block, scratch, casting="unsafe")
        return block
