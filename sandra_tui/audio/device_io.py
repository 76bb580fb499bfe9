"""PortAudio streams (sounddevice) for the microphone and the speaker.

The callbacks run on PortAudio's thread: they only copy, resample (soxr, stateful) and hand
over through lock-protected buffers; nothing in them blocks on the event loop. At the device's
own 48 kHz they allocate no sample arrays (preallocated blocks and a ring of frames): a
callback that makes garbage is one that a busy machine's collector pauses.

Health, read by DeviceAudio's check: `gone()` is a stream PortAudio stopped (an error, the
device unplugged); `stalled()` is no callback for a second, which a starved CPU can cause as
well as a dead device; `take_lateness()` is how late the callbacks ran since it was last read
(the longest gap between two, and PortAudio's xrun count).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import soxr

from sandra_tui.audio.devices import AudioUnavailable, Device, _sounddevice
from sandra_tui.audio.playout import FRAME, FrameQueue, PlayoutBuffer
from sandra_tui.media.constants import SAMPLE_RATE

log = logging.getLogger(__name__)

RATE = SAMPLE_RATE
BLOCK_MS = 10  # default PortAudio block: 10 ms keeps device latency low and matches the echo canceller
# Frames waiting for the call's loop. Under CPU contention the loop is late by 100-300 ms now
# and then (stress-ng --cpu 2); with 3 frames (60 ms) the microphone lost 12% of the
# operator's speech there (5.5 s of 52 s: WER 14% -> 47%). Late frames leave in a burst with
# their own RTP timestamps, and the far end's jitter buffer absorbs it; only a stall longer than
# this drops audio, oldest first.
MIC_QUEUE_FRAMES = 15
LATENCY_S = 0.02  # asked of PortAudio; its "low" (8.7 ms) is below what ALSA's pulse plugin keeps up with


def pick_rate(sd, device: Device, kind: str, wanted: int = 0) -> int:
    """48 kHz when the device takes it (no resampling), else its own default rate."""
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    for rate in ([wanted] if wanted else []) + [RATE, int(device.default_samplerate)]:
        try:
            check(device=device.index, samplerate=rate, channels=1, dtype="int16")
            return rate
        except Exception:  # noqa: BLE001 - PortAudio says "invalid sample rate" in many ways
            continue
    raise AudioUnavailable(f"{device.name}: no usable sample rate for {kind}")


class _Stream:
    kind = ""

    def __init__(self, device: Device, rate: int, block_ms: int = BLOCK_MS) -> None:
        self.device = device
        self.rate = rate
        self.block_ms = block_ms
        self.last_callback = time.monotonic()
        self.opened_at = self.last_callback
        self.callbacks = 0
        self.xruns = 0  # PortAudio's own over/underflow flags
        self.max_gap = 0.0  # the longest time between two callbacks since take_lateness()
        self._xruns_seen = 0
        self.error: str | None = None
        self.trace = None  # an EdgeTrace when a benchmark asks
        self._stream = None

    def _start(self, stream_class, label: str) -> None:
        try:
            self._stream = stream_class(device=self.device.index, samplerate=self.rate, channels=1, dtype="int16",
                                        blocksize=self.rate * self.block_ms // 1000, latency=LATENCY_S,
                                        callback=self._callback, finished_callback=self._finished)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio reports every failure its own way
            self.close()
            raise AudioUnavailable(f"cannot open {label} {self.device.name!r}: {exc}") from None

    @property
    def latency_ms(self) -> float:
        return float(self._stream.latency) * 1000 if self._stream is not None else 0.0

    def stalled(self, after_s: float = 1.0) -> bool:
        if self.error:
            return True
        return self._stream is not None and time.monotonic() - self.last_callback > after_s

    def gone(self) -> bool:
        """PortAudio itself says the stream is over (an error, or it stopped running)."""
        if self.error:
            return True
        stream = self._stream
        try:
            return stream is None or not stream.active
        except Exception:  # noqa: BLE001 - a stream on a vanished device can fail to answer
            return True

    def take_lateness(self) -> tuple[float, int]:
        """(longest gap between callbacks in s, new xruns) since the last call."""
        gap = max(self.max_gap, time.monotonic() - self.last_callback)
        self.max_gap = 0.0
        xruns, self._xruns_seen = self.xruns - self._xruns_seen, self.xruns
        return gap, xruns

    def _tick(self) -> None:
        now = time.monotonic()
        gap = now - self.last_callback
        if gap > self.max_gap:
            self.max_gap = gap
        self.last_callback = now
        self.callbacks += 1

    def abort(self) -> None:
        """Stop at once (what a vanished device looks like to us); for tests and fallback."""
        if self._stream is not None:
            self._stream.abort(ignore_errors=True)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception:  # noqa: BLE001 - closing a dead device can fail in many ways
                log.debug("closing %s stream failed", self.kind, exc_info=True)

    def _finished(self) -> None:
        if self._stream is not None and self.error is None:
            self.error = "stream stopped"


class MicStream(_Stream):
    """Microphone -> 20 ms mono int16 frames at 48 kHz in a bounded queue (newest kept)."""

    kind = "input"

    def __init__(self, device: Device, rate: int = 0, on_capture=None, max_frames: int = MIC_QUEUE_FRAMES,
                 block_ms: int = BLOCK_MS) -> None:
        sd = _sounddevice()
        super().__init__(device, pick_rate(sd, device, "input", rate), block_ms)
        self.frames = FrameQueue(max_frames)
        self.on_capture = on_capture  # called on PortAudio's thread with each block (echo canceller)
        self._resampler = soxr.ResampleStream(self.rate, RATE, 1, dtype="int16") if self.rate != RATE else None
        # Frames are filled in place in a ring; the queue holds at most max_frames of them and
        # the reader copies one out at once, so a slot is rewritten long after it was read.
        ring = np.zeros((max_frames + 4, FRAME), dtype=np.int16)
        self._ring = [ring[i] for i in range(len(ring))]  # views made once, not per frame
        self._slot = 0
        self._fill = 0
        self._block = np.zeros(self.rate * block_ms // 1000, dtype=np.int16)
        self._start(sd.InputStream, "microphone")

    def _callback(self, indata, frames, time_info, status) -> None:
        self._tick()
        if status.input_overflow:
            self.xruns += 1
        if frames == len(self._block):
            block = self._block
            np.copyto(block, indata[:, 0])
        else:  # PortAudio gave an odd-sized block: rare, allowed to allocate
            block = indata[:, 0].copy()
        if self.trace is not None:
            lag = max(0.0, time_info.currentTime - time_info.inputBufferAdcTime)
            self.trace.mark("adc", block, -lag)
        if self._resampler is not None:
            block = self._resampler.resample_chunk(block)
        if self.on_capture is not None:
            block = self.on_capture(block)
        if self.trace is not None:
            self.trace.mark("captured", block)
        self._append(block)

    def _append(self, block: np.ndarray) -> None:
        done = 0
        while done < len(block):
            frame = self._ring[self._slot]
            take = min(FRAME - self._fill, len(block) - done)
            frame[self._fill : self._fill + take] = block[done : done + take]
            self._fill += take
            done += take
            if self._fill == FRAME:
                self.frames.put(frame)
                self._slot = (self._slot + 1) % len(self._ring)
                self._fill = 0


class SpeakerStream(_Stream):
    """PlayoutBuffer -> speaker, resampled to the device rate when it differs."""

    kind = "output"

    def __init__(self, device: Device, playout: PlayoutBuffer, rate: int = 0, on_render=None,
                 block_ms: int = BLOCK_MS) -> None:
        sd = _sounddevice()
        super().__init__(device, pick_rate(sd, device, "output", rate), block_ms)
        self.playout = playout
        self.on_render = on_render  # called on PortAudio's thread with each 48 kHz block played
        self._resampler = soxr.ResampleStream(RATE, self.rate, 1, dtype="int16") if self.rate != RATE else None
        self._fifo = np.zeros(0, dtype=np.int16)  # device-rate samples resampled ahead
        self._start(sd.OutputStream, "speaker")

    def _callback(self, outdata, frames, time_info, status) -> None:
        self._tick()
        if status.output_underflow:
            self.xruns += 1
        if self._resampler is None:
            block = outdata[:, 0]  # a view: the playout buffer fills the device's own buffer
            self.playout.pull_into(block)
            self._rendered(block, time_info)
            return
        while len(self._fifo) < frames:
            block = self.playout.pull(RATE * self.block_ms // 1000)
            self._rendered(block, time_info)
            self._fifo = np.concatenate([self._fifo, self._resampler.resample_chunk(block)])
        outdata[:, 0] = self._fifo[:frames]
        self._fifo = self._fifo[frames:]

    def _rendered(self, block: np.ndarray, time_info) -> None:
        if self.on_render is not None:
            self.on_render(block)
        if self.trace is not None:
            self.trace.mark("played", block)
            ahead = max(0.0, time_info.outputBufferDacTime - time_info.currentTime) + len(self._fifo) / self.rate
            self.trace.mark("dac", block, ahead)
