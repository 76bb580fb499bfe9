"""Microphone-side sources: the outgoing track and what feeds it (device, file, silence)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from sandra_tui.audio.frames import FRAME_SAMPLES, SAMPLE_RATE
from sandra_tui.media.opus import OpusTrack
from sandra_tui.media.pacing import FramePacer


class Source:
    """Gives 20 ms of mono int16 audio at a time; never blocks."""

    def read(self) -> np.ndarray:
        return np.zeros(FRAME_SAMPLES, dtype=np.int16)

    def close(self) -> None:
        pass


class SilenceSource(Source):
    pass


class WavFileSource(Source):
    """A WAV file played once, then silence. Resampled to 48 kHz mono with soxr."""

    def __init__(self, path: str | Path, loop: bool = False) -> None:
        import soxr

        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2:
                raise ValueError(f"{path}: only 16-bit PCM WAV files are supported")
            rate, channels = wav.getframerate(), wav.getnchannels()
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        if channels > 1:
            data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
        if rate != SAMPLE_RATE:
            data = soxr.resample(data, rate, SAMPLE_RATE)
        self._data = np.asarray(data, dtype=np.int16)
        self._pos = 0
        self.loop = loop

    @property
    def finished(self) -> bool:
        return not self.loop and self._pos >= len(self._data)

    def read(self) -> np.ndarray:
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        if len(self._data) == 0:
            return out
        if self.loop and self._pos >= len(self._data):
            self._pos = 0
        chunk = self._data[self._pos : self._pos + FRAME_SAMPLES]
        out[: len(chunk)] = chunk
        self._pos += FRAME_SAMPLES
        return out


class MicTrack(OpusTrack):
    """The outgoing audio track; sends silence while muted.

    Paced by the device when the source has one (`wait_frame`: each frame leaves as soon as
    it is captured, no queueing delay), otherwise by the wall clock. Frames leave as mono Opus
    packets (`OpusTrack` in media/opus.py), which aiortc sends without re-encoding.

    A new one is made for every connection attempt (a track whose sender stopped is ended);
    the source behind it lives across attempts.
    """

    def __init__(self, source: Source, gate=None, on_frame=None, live=None) -> None:
        super().__init__()
        self._source = source
        self._gate = gate  # callable -> True when audio may go out (mute / push-to-talk)
        self._live = live  # callable -> False while another track owns the microphone (renewal)
        self._on_frame = on_frame
        self._pacer = FramePacer()

    async def next_frame(self) -> tuple[np.ndarray, int]:
        if self._live is not None and not self._live():
            return np.zeros(FRAME_SAMPLES, dtype=np.int16), await self._pacer.next()
        wait_frame = getattr(self._source, "wait_frame", None)
        if wait_frame is not None and await wait_frame(DEVICE_TIMEOUT_S):
            pts = self._pacer.advance()
        else:  # no device, or it stalled: keep time with silence so the call stays up
            pts = await self._pacer.next()
        samples = self._source.read()
        if self._gate is not None and not self._gate():
            samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        if self._on_frame is not None:
            self._on_frame(samples)
        return samples, pts


# A device silent this long is paced by the clock (silence) until it returns. Not shorter: under
# CPU contention capture callbacks come 100-300 ms late, and each silent frame sent in the
# meantime was a 20 ms hole cut into the operator's speech once the real frames arrived.
DEVICE_TIMEOUT_S = 0.5
