"""Where a click is along the audio path: the first loud frame at each stage after a quiet
spell, stamped with time.monotonic() (the same clock in every process on Linux, so the
agent's stamps line up). Off unless a benchmark or test turns it on."""

from __future__ import annotations

import threading
import time

import numpy as np

EDGE_PEAK = 1000  # about -30 dBFS
QUIET_S = 0.3  # quiet this long before a loud frame counts as a new edge

STAGES = ("adc", "captured", "sent", "received", "played", "dac")


class EdgeTrace:
    def __init__(self, peak: int = EDGE_PEAK, quiet_s: float = QUIET_S, on_edge=None) -> None:
        self.peak = peak
        self.quiet_s = quiet_s
        self.on_edge = on_edge  # called with (stage, t) from whatever thread saw it
        self.edges: dict[str, list[float]] = {s: [] for s in STAGES}
        self._last_loud: dict[str, float] = {}
        self._lock = threading.Lock()

    def mark(self, stage: str, samples: np.ndarray, offset_s: float = 0.0) -> None:
        """`offset_s` moves the stamp (e.g. minus the ADC-to-callback lag) off the present."""
        if not len(samples) or int(np.abs(samples.astype(np.int32)).max()) <= self.peak:
            return
        now = time.monotonic()
        with self._lock:
            last = self._last_loud.get(stage)
            self._last_loud[stage] = now
            if last is not None and now - last < self.quiet_s:
                return
            self.edges[stage].append(now + offset_s)
        if self.on_edge is not None:
            self.on_edge(stage, now + offset_s)


# -- putting a round trip together ------------------------------------------------------------
BREAKDOWN = {"capture": ("adc", "sent"), "uplink": ("sent", "agent_in"), "agent": ("agent_in", "agent_out"),
             "downlink": ("agent_out", "received"), "playout_buffer": ("received", "played"),
             "device_output": ("played", "dac"), "total": ("adc", "dac")}


def round_trips(edges: dict[str, list[float]], mirror: list[dict], limit_s: float = 1.0) -> list[dict]:
    """One dict of stage -> time per click that made it all the way: client edges (adc ...
    dac) plus the agent's mirror trace entries ({"in", "out"}).

    Clicks go through every stage in order, so a click's stage is looked for only in its own
    window: after its previous stage, and before the next click reached that previous stage
    (anything later may be the next click's). A click dropped, missed or late at one stage then
    has no trip, instead of taking the next click's stage and making a trip of two halves. When
    the click before it reached the previous stage but not this one in its window, it may be
    late into this window: its edge would come first, so the window's last edge is taken."""
    trips = [{"adc": t} for t in sorted(edges.get("adc", []))]
    chain = [("captured", "adc"), ("sent", "captured"), ("agent_in", "sent"), ("received", "agent_out"),
             ("played", "received"), ("dac", "played")]
    agent = sorted((m["in"], m["out"]) for m in mirror)
    for stage, prev in chain:
        times = sorted(edges.get(stage, [])) if stage != "agent_in" else [i for i, _ in agent]
        for n, trip in enumerate(trips):
            start = trip.get(prev)
            if start is None:
                continue  # the click was lost before this stage
            end = _reached(trips[n + 1 :], prev)
            window = [k for k, t in enumerate(times) if start <= t < end]
            if not window:
                continue
            before = trips[n - 1] if n else {}
            late_before = prev in before and stage not in before
            found = window[-1] if late_before else window[0]
            if stage == "agent_in":
                trip["agent_in"], trip["agent_out"] = agent[found]
            else:
                trip[stage] = times[found]
    return [t for t in trips if len(t) == 8 and t["dac"] - t["adc"] < limit_s]


def _reached(later: list[dict], stage: str) -> float:
    """When the next click reached `stage` (or, not seen there, the last stage before it where it
    was seen): no event before that time can be the next click's, or any later one's."""
    if not later:
        return float("inf")
    order = ["adc", "captured", "sent", "agent_in", "agent_out", "received", "played", "dac"]
    known = [later[0][s] for s in order[: order.index(stage) + 1] if s in later[0]]
    return max(known)


def breakdown(trips: list[dict]) -> dict[str, float]:
    """Median ms per stage."""
    if not trips:
        return {}
    return {name: round(float(np.median([(t[b] - t[a]) * 1000 for t in trips])), 1)
            for name, (a, b) in BREAKDOWN.items()}
