"""Call recording: a stereo 48 kHz 16-bit WAV, the operator on the left, Sandra on the right.

The audio path only hands frames to a bounded queue (put_nowait: a full queue drops the frame
and counts it, it never blocks); one writer thread turns them into the file. Both channels
follow the wall clock: a channel that delivered nothing for a while (muted microphone, Sandra
silent between replies when the server sends no packets) is filled with silence, so the two
stay aligned for the whole call.

The frames are taken through the engine's trace hook ("sent" = the microphone frame that
left, "received" = Sandra's decoded frame), chained to any trace already set.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import wave
from pathlib import Path

import numpy as np
import platformdirs

from sandra_tui.audio.frames import SAMPLE_RATE

log = logging.getLogger("sandra_tui.audio")
QUEUE_FRAMES = 1000  # 20 s of both channels at 20 ms: a stalled disk loses frames, not the call
SLACK_SAMPLES = SAMPLE_RATE // 25  # 40 ms behind the clock before silence is inserted (jitter)
LEFT, RIGHT = 0, 1


def recordings_dir(call_config=None, override=None) -> Path:
    if override:
        return Path(override)
    if call_config is not None and call_config.recordings_dir:
        return Path(call_config.recordings_dir).expanduser()
    return Path(platformdirs.user_data_dir("sandra-tui")) / "recordings"


class _Tap:
    """Stands in the engine's trace slot: records two stages, forwards everything."""

    def __init__(self, recorder: "CallRecorder", previous) -> None:
        self.recorder, self.previous = recorder, previous

    def mark(self, stage: str, samples, *args, **kwargs):
        if stage == "sent":
            self.recorder.push(LEFT, samples)
        elif stage == "received":
            self.recorder.push(RIGHT, samples)
        if self.previous is not None:
            return self.previous.mark(stage, samples, *args, **kwargs)
        return None

    def __getattr__(self, name):  # anything else a trace offers goes to the real one
        if self.previous is None:
            raise AttributeError(name)
        return getattr(self.previous, name)


class CallRecorder:
    def __init__(self, path: Path, clock=time.monotonic) -> None:
        self.path = Path(path)
        self.clock = clock
        self.dropped = 0
        self.unsubscribe = lambda: None
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self._t0: float | None = None
        self._tap: _Tap | None = None
        self._wav = wave.open(str(self.path), "wb")
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._pending: list[list[np.ndarray]] = [[], []]
        self._written = [0, 0]  # samples per channel handed to the interleaver (silence included)
        self.frames_written = 0
        self._thread = threading.Thread(target=self._run, name="sandra-recorder", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, directory: Path) -> "CallRecorder":
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = directory / f"call-{stamp}.wav"
        n = 1
        while path.exists():
            path = directory / f"call-{stamp}-{n}.wav"
            n += 1
        return cls(path)

    # -- audio path side (cheap, never blocks) ------------------------------------------------
    def push(self, channel: int, samples) -> None:
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
        try:
            self._queue.put_nowait((channel, now - self._t0, np.array(samples, dtype=np.int16).reshape(-1)))
        except queue.Full:
            self.dropped += 1

    def attach(self, engine) -> None:
        self._tap = _Tap(self, getattr(engine, "trace", None))
        engine.set_trace(self._tap)

    def detach(self, engine) -> None:
        if self._tap is not None and getattr(engine, "trace", None) is self._tap:
            engine.set_trace(self._tap.previous)
        self._tap = None

    # -- writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            channel, at_s, samples = item
            try:
                self._add(channel, at_s, samples)
            except (OSError, ValueError):
                log.exception("writing the recording failed; it stops here")
                break
        self._finish()

    def _add(self, channel: int, at_s: float, samples: np.ndarray) -> None:
        expected = int(at_s * SAMPLE_RATE) - len(samples)  # where this frame should start
        behind = expected - self._written[channel]
        if behind > SLACK_SAMPLES:
            self._append(channel, np.zeros(behind, dtype=np.int16))
        self._append(channel, samples)
        self._interleave()

    def _append(self, channel: int, samples: np.ndarray) -> None:
        self._pending[channel].append(samples)
        self._written[channel] += len(samples)

    def _interleave(self, flush: bool = False) -> None:
        left = np.concatenate(self._pending[LEFT]) if self._pending[LEFT] else np.zeros(0, np.int16)
        right = np.concatenate(self._pending[RIGHT]) if self._pending[RIGHT] else np.zeros(0, np.int16)
        n = max(len(left), len(right)) if flush else min(len(left), len(right))
        if n == 0:
            return
        if flush:
            left = np.pad(left, (0, n - len(left)))
            right = np.pad(right, (0, n - len(right)))
        frame = np.empty(n * 2, dtype="<i2")
        frame[0::2], frame[1::2] = left[:n], right[:n]
        self._wav.writeframes(frame.tobytes())
        self.frames_written += n
        self._pending = [[left[n:]] if len(left) > n else [], [right[n:]] if len(right) > n else []]

    def _finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._interleave(flush=True)
        with contextlib.suppress(OSError, ValueError):
            self._wav.close()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued and close the file (a full queue waits, bounded)."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        if self.dropped:
            log.warning("recording %s: %d frames dropped (the disk was too slow)", self.path, self.dropped)
