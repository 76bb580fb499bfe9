"""Speech for the local agent: espeak-ng when installed, resampled to 48 kHz mono int16."""

from __future__ import annotations

import asyncio
import io
import shutil
import wave

import numpy as np
import soxr  # imported here, not in the worker thread: concurrent imports race in CPython 3.11's compiler

from sandra_tui.media.constants import SAMPLE_RATE


def available() -> bool:
    return shutil.which("espeak-ng") is not None


async def speak(text: str, voice: str = "en", words_per_minute: int = 260) -> np.ndarray | None:
    """int16 mono at 48 kHz, or None when espeak-ng is missing or fails.

    The text goes in on stdin, never on the command line, so no text can be taken for an option.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    words_per_minute = max(80, min(450, int(words_per_minute)))
    proc = await asyncio.create_subprocess_exec(
        exe, "-v", voice, "-s", str(words_per_minute), "--stdout", "--stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        data, _ = await proc.communicate(text.encode("utf-8", errors="replace"))
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0 or not data:
        return None
    return await asyncio.to_thread(_decode_wav, data)


def _decode_wav(data: bytes) -> np.ndarray:
    # espeak-ng writes a streaming WAV whose size fields may be 0/garbage: read frames leniently.
    with wave.open(io.BytesIO(data)) as wav:
        rate = wav.getframerate()
        raw = wav.readframes(wav.getnframes() or 10**9)
    if not raw:
        raw = data[44:]
    samples = np.frombuffer(raw[: len(raw) // 2 * 2], dtype=np.int16)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.int16)
    return samples
