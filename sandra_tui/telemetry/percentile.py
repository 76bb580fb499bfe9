"""Nearest-rank percentile without numpy: the UI imports it before the first paint (#23), where
numpy would cost its import time for a sort of a few hundred floats."""

from __future__ import annotations


def percentile(values, q: float) -> float | None:
    """Nearest-rank percentile (q from 0 to 1) of what was seen, or None for nothing: a value
    that occurred, for the call summary and the UI's p50/p95/p99 (the guide's payload uses
    summarize's interpolated numpy figures)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
