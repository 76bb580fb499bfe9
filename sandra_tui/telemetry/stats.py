"""Rolling latency statistics per metric name (numpy percentiles over a bounded window)."""

from __future__ import annotations

from collections import deque

import numpy as np

from sandra_tui.telemetry.percentile import percentile  # noqa: F401  (re-exported)


def summarize(values) -> dict:
    """count/avg/min/max/p95/p99 in ms, the guide's shape."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {"count": 0, "avg": 0.0, "min": 0.0, "max": 0.0, "p95": 0.0, "p99": 0.0}
    p95, p99 = np.percentile(data, [95, 99])
    return {
        "count": int(data.size),
        "avg": round(float(data.mean()), 1),
        "min": round(float(data.min()), 1),
        "max": round(float(data.max()), 1),
        "p95": round(float(p95), 1),
        "p99": round(float(p99), 1),
    }


class RollingStats:
    def __init__(self, window: int = 100) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._all: deque[float] = deque(maxlen=window)
        self._by_name: dict[str, deque[float]] = {}
        self.total = 0  # samples ever added

    def add(self, name: str, ms: float) -> None:
        if not np.isfinite(ms) or ms < 0:
            raise ValueError(f"latency must be a finite, non-negative number of ms, not {ms!r}")
        self._all.append(float(ms))
        self._by_name.setdefault(name, deque(maxlen=self.window)).append(float(ms))
        self.total += 1

    def summary(self, name: str | None = None) -> dict:
        if name is None:
            return summarize(self._all)
        return summarize(self._by_name.get(name, ()))

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def values(self, name: str) -> list[float]:
        return list(self._by_name.get(name, ()))
