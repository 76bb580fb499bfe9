"""Recent per-turn latencies as bars scaled from 0 (a 164 ms turn is a low bar, not nothing),
one column per turn, the latest coloured by class; the latest turn split into server time
(end of your speech to Sandra's first audio leaving the server) and client time (network,
decoding, playout), and p95 beside it."""

from __future__ import annotations

from collections import deque

from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Label, Static

from sandra_tui.telemetry.percentile import percentile

CLASS_STYLE = {"GOOD": "$success", "MEDIUM": "$warning", "HIGH": "$error"}
TRACKED = ("response_latency", "text_response_latency")
SPLIT = ("turn_server", "turn_client")
BARS = " ▁▂▃▄▅▆▇█"


def p95(values) -> float:
    return percentile(values, 0.95)


def bars(values, top: float | None = None) -> str:
    """One character per value, height proportional to value / max (from 0, never from the min)."""
    values = list(values)
    if not values:
        return ""
    top = top or max(values) or 1.0
    out = []
    for v in values:
        level = round(max(0.0, v) / top * (len(BARS) - 1))
        out.append(BARS[max(1, min(len(BARS) - 1, level))])  # a sample is never drawn as nothing
    return "".join(out)


class LatencySpark(Horizontal):
    def __init__(self, size: int = 40, **kwargs) -> None:
        super().__init__(**kwargs)
        self.samples: deque[float] = deque(maxlen=size)
        self.classes_seen: deque[str] = deque(maxlen=size)
        self.last: tuple[float, str] | None = None
        self.split: dict[str, float] = {}
        self.dirty = False
        self.border_title = "Turn latency"

    def compose(self):
        yield Static("", id="spark")
        yield Label(Content.styled("no turns yet", "$text-muted"))

    def add(self, name: str, ms: float, cls: str) -> None:
        """Store only; `flush` (on the screen's timer) repaints."""
        if name in TRACKED:
            self.samples.append(ms)
            self.classes_seen.append(cls)
            self.last = (ms, cls)
            self.split = {}
            self.dirty = True
        elif name in SPLIT:
            self.split[name] = ms
            self.dirty = True

    def flush(self) -> None:
        if not self.dirty or self.last is None:
            return
        self.dirty = False
        spark = self.query_one("#spark", Static)
        width = spark.size.width or len(self.samples)
        drawn = bars(self.samples)  # scaled over every kept turn, then the newest that fit
        pairs = list(zip(drawn, self.classes_seen, strict=True))[-width:]
        spark.update(Content.assemble(*[(ch, CLASS_STYLE.get(cls, "")) for ch, cls in pairs]))
        ms, cls = self.last
        parts = [(f"{ms:.0f} ms {cls}", f"bold {CLASS_STYLE.get(cls, '')}")]
        if "turn_server" in self.split:
            client = self.split.get("turn_client", max(0.0, ms - self.split["turn_server"]))
            parts.append((f"  server {self.split['turn_server']:.0f} · client {client:.0f}", "$text-muted"))
        parts.append(f"  p95 {p95(self.samples):.0f} ms")
        self.query_one(Label).update(Content.assemble(*parts))

    def text(self) -> str:
        return str(self.query_one("#spark", Static).render())
