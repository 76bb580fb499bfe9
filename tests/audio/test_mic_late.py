"""The microphone under CPU contention: capture that reaches the call's loop in late bursts is
sent whole, in order, with its own timestamps; no silence is cut into it (a busy desktop
delivered frames 100-300 ms late and each 100 ms wait used to send a silent frame)."""

from __future__ import annotations

import asyncio

import numpy as np

from sandra_tui.audio.device_io import MIC_QUEUE_FRAMES
from sandra_tui.audio.playout import FRAME, FrameQueue
from sandra_tui.audio.sources import MicTrack, Source


class BurstySource(Source):
    """Frames numbered 1..n, arriving in bursts of `burst` every `burst` x 20 ms (a late loop)."""

    def __init__(self, frames: int, burst: int) -> None:
        self.queue = FrameQueue(MIC_QUEUE_FRAMES)
        self._frames, self._burst = frames, burst
        self.task = asyncio.create_task(self._deliver())

    async def _deliver(self) -> None:
        n = 0
        while n < self._frames:
            await asyncio.sleep(self._burst * 0.02)
            for _ in range(self._burst):
                n += 1
                self.queue.put(np.full(FRAME, n, dtype=np.int16))

    async def wait_frame(self, timeout: float) -> bool:
        return len(self.queue) > 0 or await self.queue.wait(timeout)

    def read(self) -> np.ndarray:
        frame = self.queue.get()
        return frame.copy() if frame is not None else np.zeros(FRAME, dtype=np.int16)


async def test_late_bursts_of_capture_leave_whole_and_in_order():
    source = BurstySource(frames=60, burst=12)  # 240 ms late each time
    track = MicTrack(source)
    try:
        sent = [await track.next_frame() for _ in range(60)]
    finally:
        source.task.cancel()
    numbers = [int(samples[0]) for samples, _ in sent]
    assert numbers == list(range(1, 61))  # no silent frame in between, none lost
    assert [pts for _, pts in sent] == [i * FRAME for i in range(60)]
    assert source.queue.dropped == 0


def test_the_capture_queue_rides_out_a_300_ms_stall():
    queue = FrameQueue(MIC_QUEUE_FRAMES)
    for n in range(15):  # 300 ms of capture while the loop is away
        queue.put(np.full(FRAME, n, dtype=np.int16))
    assert queue.dropped == 0 and len(queue) == 15
    queue.put(np.full(FRAME, 99, dtype=np.int16))  # beyond that the oldest goes, and is counted
    assert queue.dropped == 1 and int(queue.get()[0]) == 1
