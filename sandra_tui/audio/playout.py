"""Adaptive playout buffer between the network (asyncio side) and the speaker (PortAudio thread).

Why our own: aiortc's receive jitter buffer holds 4 packets and, after one lost packet, keeps
~300 ms of extra delay for the rest of the call. Here frames go in keyed by their RTP
timestamp as soon as they are decoded; the speaker pulls at its own pace:

- before playing, wait until `target` ms are queued (prebuffer);
- a missing frame with later ones queued is concealed (last frame, faded) instead of stalling;
- the target grows on jitter: each frame's lateness against the earliest arrivals of the last
  2 s says how much margin the path needs, and the target covers it. The extra frames are made
  by playing a frame of silence while the audio is quiet, so nobody hears the delay change;
- an empty buffer while playing is an underrun: conceal, and raise the target by one frame
  (neither rule in the first 2 s of a stream, whose bursts say nothing about the path);
- the target decays back towards its floor, a frame at a time, after 20 s in which nothing
  asked for it: what emptied the buffer once (a collector pause, a burst of jitter) tends to
  come back, so the margin is kept a while, as WebRTC's NetEq keeps its delay peaks. A buffer
  that holds more than its target drops its quietest frames to bring the delay back down;
- a flush (barge-in) also drops the cancelled reply's frames still on their way: they were sent
  before the server heard the caller and, on a busy machine, the media path runs behind the data
  channel (seen: 1-2 voiced frames 9-24 ms after the flush, played 100 ms later). Dropped until
  a quiet frame (the reply's end), `resume()` (a new reply) or TAIL_S, which is shorter than any
  turn: the next reply follows the caller's turn, so no reply is ever clipped by it;
- more than `target + 60 ms` queued (the speaker stalled on a busy CPU, a burst after a gap) is
  delay nobody should hear: it is shed, speech or not, as NetEq's accelerate does, checked on
  every frame pushed and every frame played. Exactly the excess goes, so a speaker that falls
  behind by 30% loses 30% and one stalled for 300 ms loses those 300 ms at once, rather than a
  frame per frame played while the delay keeps growing. Quiet frames among the next few go
  first; then the oldest voiced ones, and the frame played after the cut is crossfaded from the
  start of the first one cut (the audio that would have come next), so the cut makes no click.

The speaker side (`pull_into`) runs in PortAudio's callback: it copies into the caller's
buffer and allocates no sample arrays (silence and concealment use preallocated frames).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque

import numpy as np

from sandra_tui.media.constants import FRAME_MS
from sandra_tui.media.constants import FRAME_SAMPLES as FRAME
from sandra_tui.media.constants import SAMPLE_RATE

FADE = 0.5  # each concealed repeat is this much quieter
REANCHOR_FRAMES = 50  # a jump of more than 1 s in timestamps is a new stream (reconnect, reset)
JITTER_WINDOW = 100  # frames (2 s): lateness is measured against the earliest arrival among these
JITTER_MARGIN_MS = 10  # on top of the worst lateness: the speaker pulls in blocks, not instantly
QUIET_PEAK = 300  # about -40 dBFS: a frame this quiet can be stretched or skipped unheard
OVER_HOLD_S = 1.0  # one frame more than the target for this long is dropped (quietly)
BOUND_MS = 60  # depth (queued + the rest of the frame in play) beyond target + this is shed at once
SHED_LOOKAHEAD = 4  # quiet frames are looked for among the frames to shed and this many more
TAIL_S = 0.25  # after a flush, the cancelled reply's frames still in flight are dropped this long at most
XFADE = 240  # 5 ms: the crossfade over a cut in voiced audio
_SILENCE = np.zeros(FRAME, dtype=np.int16)
_SILENCE.flags.writeable = False
_RAMP = (np.arange(XFADE, dtype=np.float32) + 0.5) / XFADE
_RAMP_DOWN = 1.0 - _RAMP


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
        self._cur: np.ndarray = _SILENCE  # the frame being played and how much of it is played
        self._pos = FRAME
        self._fade = np.zeros(FRAME, dtype=np.int16)  # concealment and crossfade output, reused
        self._cut_head = np.zeros(XFADE, dtype=np.int16)  # the start of the first frame of a voiced cut
        self._cut_pending = False  # the next frame played is crossfaded from _cut_head
        self._mix = np.zeros(XFADE, dtype=np.float32)
        self._mix2 = np.zeros(XFADE, dtype=np.float32)
        self._raised_at = clock()  # when the target last went up, or was last needed as it is
        self._over_since: float | None = None
        self._arrivals: deque[float] = deque(maxlen=JITTER_WINDOW)  # arrival time minus media time
        self._grow = 0  # frames of silence still to insert to reach a raised target
        # counters (read from any thread; ints are updated under the lock)
        self.underruns = 0
        self.concealed = 0
        self.late = 0
        self.dropped = 0
        self.frames_played = 0
        self.frames_in = 0
        self.discarded = 0  # voiced frames of a flushed reply that arrived after the flush
        self._tail_until: float | None = None  # while set, see flush()
        self.stretched = 0  # silent frames inserted to grow the buffer
        self.accelerated = 0  # frames shed because more than target + 60 ms was queued
        self.cuts = 0  # voiced cuts among those (each crossfaded)
        self.jitter_peak_ms = 0.0  # the largest lateness seen (what the target had to cover)
        self.jitter_ms = 0.0  # the lateness of the latest frame (ms)

    # -- network side ------------------------------------------------------------------------
    def push(self, samples: np.ndarray, pts: int | None = None) -> None:
        """One decoded 20 ms frame (mono int16) with its RTP timestamp (48 kHz units)."""
        with self._lock:
            self.frames_in += 1
            if self._tail_until is not None and self._tail_locked(samples, pts):
                return
            if pts is None:  # no timestamp: append after the newest
                index = (max(self._frames) + 1) if self._frames else (self._next if self._next is not None else 0)
            else:
                index = pts // FRAME
            if self._next is not None and abs(index - self._next) > REANCHOR_FRAMES + self.capacity:
                self._reset_locked()
                self._started_at = None  # a new stream settles again
            if self._next is None:
                self._next = index
            self._note_arrival_locked(index)
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
            # A burst, or a speaker that stopped pulling: shed now, not when it pulls again (it
            # may not for a while, and the delay is there meanwhile).
            excess = self._excess_locked((len(self._cur) - self._pos) / 48.0)
            if excess > 0 and self._settled_locked(self._clock()):
                self._shed_locked(excess)

    def flush(self, tail: bool = False) -> int:
        """Drop everything queued; returns the ms dropped. Prebuffers again after. `tail`
        (barge-in): the flushed reply's frames still in flight are dropped too."""
        with self._lock:
            dropped = len(self._frames) * FRAME_MS + (FRAME - self._pos) * 1000 // SAMPLE_RATE
            next_index = max(self._frames) + 1 if self._frames else self._next
            self._reset_locked()
            self._next = next_index
            self._tail_until = self._clock() + TAIL_S if tail else None
            return dropped

    def resume(self) -> None:
        """A new reply is on its way: take every frame again (ends a flush's tail)."""
        with self._lock:
            self._tail_until = None

    def _tail_locked(self, samples, pts: int | None) -> bool:
        """True when this frame is the flushed reply's tail (dropped)."""
        if self._clock() < self._tail_until and _peak(np.asarray(samples, dtype=np.int16)) > QUIET_PEAK:
            self.discarded += 1
            if pts is not None and self._next is not None:
                self._next = max(self._next, pts // FRAME + 1)  # skipped on purpose, not missing
            return True
        self._tail_until = None
        return False

    def _note_arrival_locked(self, index: int) -> None:
        now = self._clock()
        offset = now - index * FRAME_MS / 1000
        self._arrivals.append(offset)
        if self._started_at is None or now - self._started_at < self.settle_s:
            return
        late_ms = (offset - min(self._arrivals)) * 1000
        if late_ms > self.max_frames * FRAME_MS:  # the sender paused: a new timeline, not jitter
            self._arrivals.clear()
            self._arrivals.append(offset)
            return
        self.jitter_ms = late_ms
        self.jitter_peak_ms = max(self.jitter_peak_ms, late_ms)
        wanted = math.ceil((late_ms + JITTER_MARGIN_MS) / FRAME_MS)
        if wanted > self.base_frames and wanted >= self.target_frames:  # the margin is (still) needed
            self._raised_at = now
            wanted = min(self.max_frames, wanted)
            if wanted > self.target_frames:
                if self._playing:
                    self._grow += wanted - self.target_frames
                self.target_frames = wanted

    def _reset_locked(self) -> None:
        self._arrivals.clear()
        self._grow = 0
        self._frames.clear()
        self._next = None
        self._playing = False
        self._cur, self._pos = _SILENCE, FRAME
        self._last = None
        self._concealing = 0
        self._cut_pending = False

    # -- speaker side ------------------------------------------------------------------------
    def pull(self, count: int) -> np.ndarray:
        """`count` samples at 48 kHz for the speaker; never blocks, never returns short."""
        out = np.empty(count, dtype=np.int16)
        self.pull_into(out)
        return out

    def pull_into(self, out: np.ndarray) -> None:
        """Fill `out` (int16, 48 kHz) for the speaker without allocating sample arrays."""
        count = len(out)
        filled = 0
        with self._lock:
            while filled < count:
                if self._pos >= len(self._cur):
                    self._cur, self._pos = self._next_frame_locked(), 0
                take = min(count - filled, len(self._cur) - self._pos)
                out[filled : filled + take] = self._cur[self._pos : self._pos + take]
                self._pos += take
                filled += take

    def _next_frame_locked(self) -> np.ndarray:
        now = self._clock()
        if not self._playing:
            if self._next is None or len(self._frames) < self.target_frames:
                return _SILENCE  # prebuffering
            self._playing = True
            self._next = min(self._frames)
            if self._started_at is None:
                self._started_at = now
        if self._grow and len(self._frames) < self.target_frames and self._last is not None \
                and _peak(self._last) <= QUIET_PEAK:
            self._grow -= 1  # a raised target: one frame of silence in a quiet moment makes room
            self.stretched += 1
            self._last = _SILENCE
            return self._last
        frame = self._frames.pop(self._next, None)
        if frame is not None:
            self._next += 1
            if self._cut_pending:
                frame = self._crossfade_locked(frame)
            self._last = frame
            self._concealing = 0
            self.frames_played += 1
            return self._adapt_locked(now, frame)
        self._cut_pending = False  # concealment follows the played audio: nothing to fade from
        if not self._frames:  # nothing at all: underrun, wait for the target again
            self.underruns += 1
            self._raised_at = now
            if self._started_at is not None and now - self._started_at >= self.settle_s:
                self.target_frames = min(self.max_frames, self.target_frames + 1)
            self._playing = False
            self._grow = 0  # prebuffering again fills to the new target
            return self._conceal_locked()
        self._next += 1  # a hole with later frames queued: a lost packet
        return self._conceal_locked()

    def _conceal_locked(self) -> np.ndarray:
        self.concealed += 1
        self._concealing += 1
        if self._last is None or self._concealing > 3:
            return _SILENCE
        # Each repeat half as loud (FADE): a shift, into the reused buffer, allocates nothing.
        np.right_shift(self._last, 1, out=self._fade)
        self._last = self._fade
        return self._last

    def _adapt_locked(self, now: float, frame: np.ndarray) -> np.ndarray:
        """The frame to play (`frame`, or a crossfade over a dropped one); adapts the depth."""
        if self.target_frames > self.base_frames and now - self._raised_at > self.shrink_after_s:
            self.target_frames -= 1
            self._grow = max(0, self._grow - 1)
            self._raised_at = now  # one step per quiet period
        # Right after a frame is taken, a steady buffer holds target - 1 frames (one arrives per
        # frame played). More than that, for long enough, is delay nobody needs.
        excess = self._excess_locked(FRAME_MS)  # `frame` is about to play whole
        if excess > 0 and self._settled_locked(now):
            # Far too much queued: catch up now. Not while the stream settles: its first bursts
            # are handshakes, not delay.
            self._shed_locked(excess)
            self._over_since = now
            return frame
        depth = len(self._frames)
        if depth >= self.target_frames:
            if self._over_since is None:
                self._over_since = now
            elif depth > self.target_frames + 2 and now - self._over_since > 0.2:
                self._drop_quietest_locked()  # a burst: catch up soon, quietest frame first
                self._over_since = now
            elif now - self._over_since > OVER_HOLD_S and self._drop_quietest_locked(only_quiet=True):
                self._over_since = now  # one frame too many: wait for a quiet one to drop
        else:
            self._over_since = None
        return frame

    def _settled_locked(self, now: float) -> bool:
        return self._started_at is not None and now - self._started_at >= self.settle_s

    def _excess_locked(self, in_play_ms: float) -> int:
        """Frames queued beyond target + BOUND_MS, counting `in_play_ms` of the frame in play."""
        over = len(self._frames) * FRAME_MS + in_play_ms - self.target_frames * FRAME_MS - BOUND_MS
        return math.ceil(over / FRAME_MS) if over > 0 else 0

    def _shed_locked(self, count: int) -> None:
        """Drop `count` queued frames: quiet ones among the next `count + SHED_LOOKAHEAD` first
        (unheard), then the oldest voiced ones as one cut. Frames before a dropped one move up a
        slot, so later arrivals keep their places. No lists or arrays are made."""
        if self._next is None:
            return
        shed = 0
        end = self._next + count + SHED_LOOKAHEAD
        write = end - 1  # compacting from the back: kept frames go to the highest free slot
        for index in range(end - 1, self._next - 1, -1):
            frame = self._frames.get(index)
            if frame is not None and shed < count and _peak(frame) <= QUIET_PEAK:
                del self._frames[index]
                shed += 1
                continue
            if frame is not None and write != index:  # slots above are empty: moved or dropped
                self._frames[write] = self._frames.pop(index)
            write -= 1
        self._next = write + 1
        last = max(self._frames) if self._frames else self._next
        while shed < count and self._next <= last:
            if self._next not in self._frames:  # a lost packet ahead of the cut: skipped
                self._next += 1
                continue
            frame = self._frames.pop(self._next)
            self._next += 1
            shed += 1
            if not self._cut_pending and _peak(frame) > QUIET_PEAK:
                # What would have played next: the frame after the cut fades in over its start.
                np.copyto(self._cut_head, frame[:XFADE])
                self._cut_pending = True
                self.cuts += 1
        self.accelerated += shed
        self.dropped += shed

    def _crossfade_locked(self, frame: np.ndarray) -> np.ndarray:
        """`frame` comes right after a voiced cut: its start is crossfaded from the start of the
        first frame cut, which is what the audio played so far runs on into."""
        self._cut_pending = False
        if _peak(frame) <= QUIET_PEAK:
            return frame  # a cut into quiet: the voice simply stops, as it would have
        out = self._fade
        self._mix[:] = self._cut_head  # to float32 first: a mixed-type multiply makes a cast buffer
        np.multiply(self._mix, _RAMP_DOWN, out=self._mix)
        self._mix2[:] = frame[:XFADE]
        np.multiply(self._mix2, _RAMP, out=self._mix2)
        np.add(self._mix, self._mix2, out=self._mix)
        np.copyto(out[:XFADE], self._mix, casting="unsafe")
        np.copyto(out[XFADE:], frame[XFADE:])
        return out

    def _drop_quietest_locked(self, only_quiet: bool = False) -> bool:
        # Skipping a near-silent frame is inaudible; skipping speech is not.
        # Frames before it move up one slot so later arrivals keep their places.
        keys = sorted(self._frames)[:4]
        peaks = {k: _peak(self._frames[k]) for k in keys}
        quietest = min(keys, key=peaks.__getitem__)
        if only_quiet and peaks[quietest] > QUIET_PEAK:
            return False
        del self._frames[quietest]
        for k in sorted((k for k in keys if k < quietest), reverse=True):
            self._frames[k + 1] = self._frames.pop(k)
        self._next += 1
        self.dropped += 1
        return True

    # -- observation -------------------------------------------------------------------------
    @property
    def depth_ms(self) -> float:
        with self._lock:
            return len(self._frames) * FRAME_MS + (len(self._cur) - self._pos) / 48.0

    @property
    def target_ms(self) -> int:
        return self.target_frames * FRAME_MS

    @property
    def playing(self) -> bool:
        return self._playing

    def stats(self) -> dict:
        return {"depth_ms": round(self.depth_ms, 1), "target_ms": self.target_ms, "underruns": self.underruns,
                "concealed": self.concealed, "late": self.late, "dropped": self.dropped,
                "accelerated": self.accelerated, "discarded": self.discarded, "cuts": self.cuts, "frames_played": self.frames_played}


def _peak(frame: np.ndarray) -> int:
    # max and -min: np.abs would allocate a frame-sized array on the speaker's thread
    return max(int(frame.max()), -int(frame.min()))


class FrameQueue:
    """Bounded hand-off of 20 ms frames from a PortAudio thread to the asyncio side.

    Keeps at most `max_frames`; older ones are dropped (and counted) so capture delay stays low.
    A fixed ring of references, not a deque: putting allocates nothing on the audio thread.
    """

    def __init__(self, max_frames: int = 3) -> None:
        self._slots: list[np.ndarray | None] = [None] * max_frames
        self._head = 0  # the oldest frame
        self._count = 0
        self._lock = threading.Lock()
        self.max_frames = max_frames
        self.dropped = 0
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future] | None = None

    def put(self, frame: np.ndarray) -> None:
        with self._lock:
            if self._count == self.max_frames:  # full: the oldest goes
                self._head = (self._head + 1) % self.max_frames
                self._count -= 1
                self.dropped += 1
            self._slots[(self._head + self._count) % self.max_frames] = frame
            self._count += 1
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_wake, future)

    async def wait(self, timeout: float) -> bool:
        """Until a frame is queued (True) or `timeout` passes (False); one waiter at a time."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._count:
                return True
            self._waiter = (loop, future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except asyncio.TimeoutError:
            with self._lock:
                self._waiter = None
            return bool(self._count)

    def get(self) -> np.ndarray | None:
        with self._lock:
            if not self._count:
                return None
            frame, self._slots[self._head] = self._slots[self._head], None
            self._head = (self._head + 1) % self.max_frames
            self._count -= 1
            return frame

    def __len__(self) -> int:
        return self._count


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
