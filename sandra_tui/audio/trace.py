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
    dac) plus the agent's mirror trace entries ({"in", "out"}), matched by order in time."""
    trips = []
    for adc in edges.get("adc", []):
        trip = {"adc": adc}
        for name in ("captured", "sent", "received", "played", "dac"):
            later = [t for t in edges.get(name, []) if t >= adc]
            if later:
                trip[name] = later[0]
        agent = [m for m in mirror if m["in"] >= adc]
        if agent:
            trip["agent_in"], trip["agent_out"] = agent[0]["in"], agent[0]["out"]
        if len(trip) == 8 and trip["dac"] - adc < limit_s:
            trips.append(trip)
    return trips


def breakdown(trips: list[dict]) -> dict[str, float]:
    """Median ms per stage."""
    if not trips:
        return {}
    return {name: round(float(np.median([(t[b] - t[a]) * 1000 for t in trips])), 1)
            for name, (a, b) in BREAKDOWN.items()}
