"""Event-loop lag: how late a 50 ms sleep wakes up, i.e. how long the UI stalls. In `sandra-tui`
the call has its own thread and loop (call/call_thread.py), so a stall is felt in the keys, not
heard; benchmarks read the figures from `SandraApp.loop_lag_stats()`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from sandra_tui.telemetry.percentile import percentile


class LoopLagMonitor:
    def __init__(self, interval_s: float = 0.05, window: int = 1200) -> None:
        self.interval_s = interval_s
        self.samples: deque[float] = deque(maxlen=window)  # ms late, the newest `window` wake-ups
        self.worst_ms = 0.0  # over the whole run, not just the window
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            late = max(0.0, (time.perf_counter() - before - self.interval_s) * 1000)
            self.samples.append(late)
            self.worst_ms = max(self.worst_ms, late)

    def stats(self) -> dict[str, float]:
        """p50 / p99 / max in ms over the window (max_run over the whole run), and the sample count."""
        samples = list(self.samples)
        if not samples:
            return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "max_run_ms": 0.0, "samples": 0}
        return {"p50_ms": round(percentile(samples, 0.5), 2), "p99_ms": round(percentile(samples, 0.99), 2),
                "max_ms": round(max(samples), 2), "max_run_ms": round(self.worst_ms, 2),
                "samples": len(samples)}
