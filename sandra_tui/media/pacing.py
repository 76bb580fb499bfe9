"""Wall-clock pacing of 20 ms audio frames for outgoing tracks (aiortc's sender pulls as fast
as recv() returns, so recv() must wait for real time)."""

from __future__ import annotations

import asyncio
import time

from sandra_tui.media.constants import FRAME_SAMPLES, SAMPLE_RATE


class FramePacer:
    def __init__(self) -> None:
        self._start: float | None = None
        self.pts = 0

    def advance(self) -> int:
        """Next pts without waiting (the caller is paced by something else, e.g. a device);
        keeps the wall-clock origin in step so `next()` can take over seamlessly."""
        now = time.monotonic()
        if self._start is None:
            self._start = now
            return self.pts
        self.pts += FRAME_SAMPLES
        self._start = now - self.pts / SAMPLE_RATE
        return self.pts

    async def next(self) -> int:
        """Wait until the next frame is due; return its pts (in 1/48000 s)."""
        if self._start is None:
            self._start = time.monotonic()
            return self.pts
        self.pts += FRAME_SAMPLES
        wait = self._start + self.pts / SAMPLE_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.2:  # far behind (a suspended loop): restart the clock rather than burst
            self._start = time.monotonic() - self.pts / SAMPLE_RATE
        return self.pts
