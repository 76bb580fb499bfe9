"""Speaker-side: drain the remote track continuously and hand frames to sinks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import wave
from pathlib import Path

import numpy as np
from aiortc.mediastreams import MediaStreamError

from sandra_tui.audio.frames import SAMPLE_RATE, frame_to_mono

log = logging.getLogger(__name__)


class Sink:
    def write(self, samples: np.ndarray) -> None:
        pass

    def flush(self) -> None:
        """Drop what is queued but not played yet (barge-in)."""

    def close(self) -> None:
        pass


class WavFileSink(Sink):
    """Writes what Sandra says to a 48 kHz mono WAV (the remote stream, in real time)."""

    def __init__(self, path: str | Path) -> None:
        self._wav = wave.open(str(path), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)

    def write(self, samples: np.ndarray) -> None:
        self._wav.writeframes(np.ascontiguousarray(samples, dtype=np.int16).tobytes())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._wav.close()


class RemoteDrain:
    """Reads the remote audio track as fast as it delivers (its queue is unbounded otherwise)."""

    def __init__(self, track, on_samples) -> None:
        self._track = track
        self._on_samples = on_samples
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            try:
                frame = await self._track.recv()
            except (MediaStreamError, asyncio.CancelledError):
                return
            try:
                self._on_samples(frame_to_mono(frame), frame.pts)
            except Exception:  # noqa: BLE001 - a sink error must not stop the drain
                log.exception("audio sink failed")

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
