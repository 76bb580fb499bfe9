"""Adaptive playout buffer between the network (asyncio side) and the speaker (PortAudio thread).

Why our own: aiortc's receive jitter buffer holds 4 packets and, after one lost packet, keeps
~300 ms of extra delay for the rest of the call. Here frames go in keyed by their RTP
timestamp as soon as they are decoded; the speaker pulls at its own pace:

- before playing, wait until `target` ms are queued (prebuffer);
- a missing frame with later ones queued is concealed (last frame, faded) instead of stalling;
- an empty buffer while playing is an underrun: conceal, and raise the target by one frame
  (not in the first 2 s of a stream, whose bursts say nothing about the path);
- the target decays back towards its floor, a frame at a time, after 20 s with no underrun: what
  emptied the buffer once (a collector pause, a burst of jitter) tends to come back, so the
  margin is kept a while, as WebRTC's NetEq keeps its delay peaks; a buffer that stays well
  above target drops its quietest frames to bring the delay back down.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

import numpy as np

FRAME = 960  # 20 ms at 48 kHz
FRAME_MS = 20
FADE = 0.5  # each concealed repeat is this much quieter
REANCHOR_FRAMES = 50  # a jump of more than 1 s in timestamps is a new stream (reconnect, reset)


class PlayoutBuffer:
    def __init__(self, target_ms: int = 60, min_ms: int = 40, max_ms: int = 300, capacity_ms: int = 1000,
                 shrink_after_s: float = 20.0, settle_s: float = 2.0, clock=time.monotonic) -> None:
        self.min_frames = max(1, min_ms // FRAME_MS)
        self.max_frames = max(self.min_frames, max_ms // FRAME_MS)
        self.base_frames = min(max(self.min_frames, target_ms // FRAME_MS), self.max_frames)
        self.target_frames = self.base_frames
        self.capacity = max(self.max_frames + 2, capacity_ms // FRAME_MS)
        self.shrink_after_s = shrink_after_s
        self.settle_s = settle_s  # the first seconds of a stream are bursty (handshakes, warm-up)
        self._started_at: float | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._frames: dict[int, np.ndarray] = {}
        self._next: int | None = None  # index of the next frame to play
        self._playing = False
        self._last: np.ndarray | None = None
        self._concealing = 0  # consecutive concealed frames
        self._tail = np.zeros(0, dtype=np.int16)  # part of a frame left over from the last pull
        self._last_underrun = clock()
        self._over_since: float | None = None
        # counters (read from any thread; ints are updated under the lock)
        self.underruns = 0
        self.concealed = 0
        self.late = 0
        self.dropped = 0
        self.frames_played = 0
        self.frames_in = 0

    # -- network side ------------------------------------------------------------------------
    def push(self, samples: np.ndarray, pts: int | None = None) -> None:
        """One decoded 20 ms frame (mono int16) with its RTP timestamp (48 kHz units)."""
        with self._lock:
            self.frames_in += 1
            if pts is None:  # no timestamp: append after the newest
                index = (max(self._frames) + 1) if self._frames else (self._next if self._next is not None else 0)
            else:
                index = pts // FRAME
            if self._next is not None and abs(index - self._next) > REANCHOR_FRAMES + self.capacity:
                self._reset_locked()
                self._started_at = None  # a new stream settles again
            if self._next is None:
                self._next = index
            if index < self._next:
                if self._playing or self._last is not None:
                    self.late += 1  # already concealed or played: too late to use
                    return
                self._next = index  # still prebuffering the first frames: take it

            self._frames[index] = np.asarray(samples, dtype=np.int16)
            while len(self._frames) > self.capacity:
                self._frames.pop(min(self._frames))
                self.dropped += 1
                self._next = min(self._frames)

    def flush(self) -> int:
        """Drop everything queued (barge-in); returns the ms dropped. Prebuffers again after."""
        with self._lock:
            dropped = len(self._frames) * FRAME_MS + len(self._tail) * 1000 // 48000
            next_index = max(self._frames) + 1 if self._frames else self._next
            self._reset_locked()
            self._next = next_index
            return dropped

    def _reset_locked(self) -> None:
        self._frames.clear()
        self._next = None
        self._playing = False
        self._tail = np.zeros(0, dtype=np.int16)
        self._last = None
        self._concealing = 0

    # -- speaker side ------------------------------------------------------------------------
    def pull(self, count: int) -> np.ndarray:
        """`count` samples at 48 kHz for the speaker; never blocks, never returns short."""
        out = np.empty(count, dtype=np.int16)
        filled = 0
        with self._lock:
            while filled < count:
                if not len(self._tail):
                    self._tail = self._next_frame_locked()
                take = min(count - filled, len(self._tail))
                out[filled : filled + take] = self._tail[:take]
                self._tail = self._tail[take:]
                filled += take
        return out

    def _next_frame_locked(self) -> np.ndarray:
        now = self._clock()
        if not self._playing:
            if self._next is None or len(self._frames) < self.target_frames:
                return np.zeros(FRAME, dtype=np.int16)  # prebuffering
            self._playing = True
            self._next = min(self._frames)
            if self._started_at is None:
                self._started_at = now
        frame = self._frames.pop(self._next, None)
        if frame is not None:
            self._next += 1
            self._last = frame
            self._concealing = 0
            self.frames_played += 1
            self._adapt_locked(now)
            return frame
        if not self._frames:  # nothing at all: underrun, wait for the target again
            self.underruns += 1
            self._last_underrun = now
            if self._started_at is not None and now - self._started_at >= self.settle_s:
                self.target_frames = min(self.max_frames, self.target_frames + 1)
            self._playing = False
            return self._conceal_locked()
        self._next += 1  # a hole with later frames queued: a lost packet
        return self._conceal_locked()

    def _conceal_locked(self) -> np.ndarray:
        self.concealed += 1
        self._concealing += 1
        if self._last is None or self._concealing > 3:
            return np.zeros(FRAME, dtype=np.int16)
        self._last = (self._last.astype(np.float32) * FADE).astype(np.int16)
        return self._last

    def _adapt_locked(self, now: float) -> None:
        if self.target_frames > self.base_frames and now - self._last_underrun > self.shrink_after_s:
            self.target_frames -= 1
            self._last_underrun = now  # one step per quiet period
        depth = len(self._frames)
        if depth > self.target_frames + 2:
            if self._over_since is None:
                self._over_since = now
            elif now - self._over_since > 0.2:
                self._drop_quietest_locked()
                self._over_since = now
        else:
            self._over_since = None

    def _drop_quietest_locked(self) -> None:
        # Skipping a near-silent frame is inaudible; skipping speech is not.
        # Frames before it move up one slot so later arrivals keep their places.
        keys = sorted(self._frames)[:4]
        quietest = min(keys, key=lambda k: int(np.abs(self._frames[k]).max()))
        del self._frames[quietest]
        for k in sorted((k for k in keys if k < quietest), reverse=True):
            self._frames[k + 1] = self._frames.pop(k)
        self._next += 1
        self.dropped += 1

    # -- observation -------------------------------------------------------------------------
    @property
    def depth_ms(self) -> float:
        with self._lock:
            return len(self._frames) * FRAME_MS + len(self._tail) / 48.0

    @property
    def target_ms(self) -> int:
        return self.target_frames * FRAME_MS

    @property
    def playing(self) -> bool:
        return self._playing

    def stats(self) -> dict:
        return {"depth_ms": round(self.depth_ms, 1), "target_ms": self.target_ms, "underruns": self.underruns,
                "concealed": self.concealed, "late": self.late, "dropped": self.dropped,
                "frames_played": self.frames_played}


class FrameQueue:
    """Bounded hand-off of 20 ms frames from a PortAudio thread to the asyncio side.

    Keeps at most `max_frames`; older ones are dropped (and counted) so capture delay stays low.
    """

    def __init__(self, max_frames: int = 3) -> None:
        self._frames: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self.max_frames = max_frames
        self.dropped = 0
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future] | None = None

    def put(self, frame: np.ndarray) -> None:
        with self._lock:
            self._frames.append(frame)
            while len(self._frames) > self.max_frames:
                self._frames.popleft()
                self.dropped += 1
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_wake, future)

    async def wait(self, timeout: float) -> bool:
        """Until a frame is queued (True) or `timeout` passes (False); one waiter at a time."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._frames:
                return True
            self._waiter = (loop, future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            with self._lock:
                self._waiter = None
            return bool(self._frames)

    def get(self) -> np.ndarray | None:
        with self._lock:
            return self._frames.popleft() if self._frames else None

    def __len__(self) -> int:
        return len(self._frames)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
