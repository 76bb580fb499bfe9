"""Audio frame helpers: 48 kHz mono s16 in 20 ms frames, levels in dBFS."""

from __future__ import annotations

import av
import numpy as np

from sandra_tui.media.constants import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, TIME_BASE  # noqa: F401 - re-exported

SILENCE_DBFS = -120.0


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Decoded frame (s16 packed, mono or stereo) -> mono int16."""
    # Opus decodes a mono stream to identical channels: the first one is the signal, and
    # taking it costs far less than averaging (this runs 50 times a second).
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        mono = data[0]
    else:
        mono = data.reshape(-1)[::channels] if channels > 1 else data.reshape(-1)
    return np.ascontiguousarray(mono, dtype=np.int16)


def rms_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return SILENCE_DBFS
    x = samples.astype(np.float32) / 32768.0
    rms = float(np.sqrt(np.mean(x * x)))
    return 20 * np.log10(rms) if rms > 1e-6 else SILENCE_DBFS


def peak_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return SILENCE_DBFS
    peak = float(np.max(np.abs(samples.astype(np.int32)))) / 32768.0
    return 20 * np.log10(peak) if peak > 1e-6 else SILENCE_DBFS
