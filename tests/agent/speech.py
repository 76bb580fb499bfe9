"""Speech for the agent tests: espeak-ng's US English voice at 48 kHz mono int16, the way the
operator's microphone would carry it (the recogniser's model is US English)."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import soxr

from tests.conftest import require

RATE = 48000


def spoken(text: str, voice: str = "en-us", words_per_minute: int = 150, peak_dbfs: float = -6.0) -> np.ndarray:
    require(shutil.which("espeak-ng") is not None, "espeak-ng (apt install espeak-ng)")
    data = subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", "--stdin"],
                          input=text.encode(), capture_output=True, check=True, timeout=30).stdout
    with wave.open(io.BytesIO(data)) as w:
        rate = w.getframerate()
        raw = w.readframes(w.getnframes() or 10**9)
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype=np.int16).astype(np.float32)
    samples = soxr.resample(samples, rate, RATE)
    loud = np.flatnonzero(np.abs(samples) > 30)  # espeak-ng pads with silence: trim it
    samples = samples[loud[0] : loud[-1] + 1] if len(loud) else samples
    peak = float(np.abs(samples).max()) or 1.0
    return (samples / peak * 32767 * 10 ** (peak_dbfs / 20)).astype(np.int16)


def rms_dbfs(samples: np.ndarray) -> float:
    x = samples.astype(np.float64) / 32768
    return float(20 * np.log10(np.sqrt(np.mean(x * x)) + 1e-12))


def wer(refs: list[str], hyps: list[str]) -> float:
    """Word error rate over all phrases: (substitutions + deletions + insertions) / words."""
    errors = words = 0
    for ref, hyp in zip(refs, hyps):
        r, h = ref.split(), hyp.split()
        row = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            diag, row[0] = row[0], i
            for j, hw in enumerate(h, 1):
                diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (rw != hw))
        errors += row[-1]
        words += len(r)
    return errors / max(1, words)
