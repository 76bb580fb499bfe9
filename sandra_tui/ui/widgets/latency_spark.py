"""Recent response latencies as a sparkline, the latest coloured by class, p95 beside it."""

from __future__ import annotations

from collections import deque

from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label, Sparkline

CLASS_STYLE = {"GOOD": "$success", "MEDIUM": "$warning", "HIGH": "$error"}
TRACKED = ("response_latency", "text_response_latency")


def p95(values) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class LatencySpark(Horizontal):
    def __init__(self, size: int = 40, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: deque[float] = deque(maxlen=size)
        self.last: tuple[float, str] | None = None
        self.dirty = False
        self.border_title = "Response latency"

    def compose(self):
        yield Sparkline([], summary_function=max)
        yield Label(Content.styled("no samples yet", "$text-muted"))

    def add(self, name: str, ms: float, cls: str) -> None:
        """Store only; `flush` (on the screen's timer) repaints."""
        if name in TRACKED:
            self.samples.append(ms)
            self.last = (ms, cls)
            self.dirty = True

    def flush(self) -> None:
        if not self.dirty or self.last is None:
            return
        self.dirty = False
        self.query_one(Sparkline).data = list(self.samples)  # a new list: in-place changes do not refresh
        ms, cls = self.last
        self.query_one(Label).update(Content.assemble((f"{ms:.0f} ms {cls}", f"bold {CLASS_STYLE.get(cls, '')}"),
                                                      f"  p95 {p95(self.samples):.0f} ms"))
