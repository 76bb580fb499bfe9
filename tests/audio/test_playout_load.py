"""The playout depth bound under CPU contention, on a fake clock: a speaker that falls behind
(pulls at 70% of real time, or stalls and then pulls 10 frames at once) and a network that
delivers in bursts of 10 frames. Whatever the pattern, once the stream has settled the depth
(queued plus the rest of the frame in play) never exceeds target + 60 ms, shedding stops at
that bound (never more than needed), and no cut in voiced audio clicks."""

from __future__ import annotations

import numpy as np
import pytest

from sandra_tui.audio.playout import BOUND_MS, FRAME, FRAME_MS, PlayoutBuffer
from tests.audio.test_playout import Clock, sine_frames

BLOCK = FRAME // 2  # the speaker pulls 10 ms blocks, as PortAudio does here
TICKS = 1500  # 30 s of 20 ms
SETTLE_TICKS = 150  # the buffer's own 2 s settle time, plus margin


class Run:
    """Drives a buffer tick by tick and checks the bound after every push and every pull."""

    def __init__(self, target_ms: int = 60) -> None:
        self.clock = Clock()
        self.buf = PlayoutBuffer(target_ms=target_ms, clock=self.clock)
        self.frames = sine_frames(175, TICKS)  # voiced all through: every cut is in speech
        self.out: list[np.ndarray] = []
        self.worst_excess = -1e9  # the largest depth - target seen once settled (ms)
        self.lowest_after_shed = 1e9  # the smallest depth - target right after a shed (ms)
        self.tick = 0

    def check(self, shed_before: int) -> None:
        if self.tick < SETTLE_TICKS:
            return
        excess = self.buf.depth_ms - self.buf.target_ms
        self.worst_excess = max(self.worst_excess, excess)
        if self.buf.accelerated > shed_before:
            self.lowest_after_shed = min(self.lowest_after_shed, excess)

    def push(self, index: int) -> None:
        before = self.buf.accelerated
        self.buf.push(self.frames[index], index * FRAME)
        self.check(before)

    def pull(self, frames: int) -> None:
        for _ in range(frames * 2):
            before = self.buf.accelerated
            self.out.append(self.buf.pull(BLOCK))
            self.check(before)

    def assert_bounded_and_smooth(self) -> None:
        assert self.worst_excess <= BOUND_MS, (self.worst_excess, self.buf.stats())
        # Shedding goes down to the bound, not below it: at most one frame under it.
        assert self.lowest_after_shed > BOUND_MS - FRAME_MS, (self.lowest_after_shed, self.buf.stats())
        played = np.concatenate(self.out).astype(np.int32)
        steepest = int(np.abs(np.diff(np.concatenate(self.frames).astype(np.int32))).max())
        assert int(np.abs(np.diff(played)).max()) <= steepest * 1.2  # crossfaded: no click
        b = self.buf
        assert b.frames_in == b.frames_played + b.dropped + b.late + len(b._frames)


def test_a_speaker_pulling_at_70_percent_sheds_30_percent_and_holds_the_bound():
    run = Run()
    credit = 0.0
    for run.tick in range(TICKS):
        run.clock.t = run.tick * 0.02
        run.push(run.tick)
        credit += 0.7
        if credit >= 1:
            credit -= 1
            run.pull(1)
    run.assert_bounded_and_smooth()
    b = run.buf
    # What falls behind is shed, no more: 30% of the frames (less the bound's own 60 ms).
    assert 0.27 * TICKS <= b.accelerated <= 0.31 * TICKS, b.stats()
    assert b.underruns == 0 and b.cuts > 0


@pytest.mark.parametrize("late_pull", [0.7, 1.0])
def test_a_speaker_that_stalls_then_pulls_10_frames_at_once_holds_the_bound(late_pull):
    """Pulls in bursts of 10 frames (200 ms), at 70% or 100% of real time on average: the target
    grows (underruns) until it covers a burst, and the depth never goes past its bound."""
    run = Run()
    credit = 0.0
    for run.tick in range(TICKS):
        run.clock.t = run.tick * 0.02
        run.push(run.tick)
        credit += late_pull
        if credit >= 10:
            credit -= 10
            run.pull(10)
    run.assert_bounded_and_smooth()
    b = run.buf
    # The target grows an underrun at a time until target + 60 ms covers a burst of pulls.
    assert b.target_ms + BOUND_MS >= 200 and b.underruns <= 8, b.stats()
    if late_pull == 1.0:  # keeping up on average: once the target covers a burst, nothing to shed
        assert b.accelerated <= 0.05 * TICKS, b.stats()


def test_network_bursts_of_10_frames_hold_the_bound_and_stop_shedding_once_the_target_covers_them():
    run = Run()
    for run.tick in range(TICKS):
        run.clock.t = run.tick * 0.02
        if run.tick % 10 == 9:  # the sender's packets held back, then 10 at once
            for index in range(run.tick - 9, run.tick + 1):
                run.push(index)
        run.pull(1)
    run.assert_bounded_and_smooth()
    b = run.buf
    assert b.target_ms >= 200  # the jitter (180 ms of lateness) asks for it
    shed_early = b.accelerated
    for run.tick in range(TICKS, TICKS + 250):  # 5 s more of the same
        run.clock.t = run.tick * 0.02
        if run.tick % 10 == 9:
            for index in range(run.tick - 9, run.tick + 1):
                run.push(index % TICKS)
        run.pull(1)
    assert b.accelerated == shed_early, b.stats()  # the target covers the bursts: nothing shed


def test_shedding_on_the_speaker_thread_allocates_no_sample_arrays():
    """Each pull measured on its own (pushes, on the asyncio side, in between): the first after
    the settle time sheds 50 voiced frames at once, later ones play crossfades after the cuts
    pushes make. A frame is 1920 bytes: anything frame-sized made per pull would show."""
    import tracemalloc

    clock = Clock()
    buf = PlayoutBuffer(target_ms=40, capacity_ms=3000, settle_s=1.0, clock=clock)
    frames = sine_frames(175, 600)
    out = np.zeros(BLOCK, dtype=np.int16)
    for i in range(60):  # queued before playing starts: nothing shed while the stream settles
        buf.push(frames[i], i * FRAME)
    buf.pull_into(out)
    clock.t = 2.0
    worst = 0
    tracemalloc.start()
    try:
        for n in range(600):
            if n % 20 == 10:  # a burst of 15 every 10 frames played: pushes shed, pulls crossfade
                for i in range(60 + n // 20 * 15, 75 + n // 20 * 15):
                    buf.push(frames[i], i * FRAME)
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            buf.pull_into(out)
            _, peak = tracemalloc.get_traced_memory()
            worst = max(worst, peak - before)
    finally:
        tracemalloc.stop()
    assert buf.accelerated > 50 and buf.cuts > 10, buf.stats()
    assert worst < FRAME * 2, worst
