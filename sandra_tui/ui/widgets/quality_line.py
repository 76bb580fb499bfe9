"""Connection quality from the controller's Quality event: RTT, jitter, loss, MOS."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from sandra_tui.call.events import Quality


class QualityLine(Static):
    def on_mount(self) -> None:
        self.show(None)

    def show(self, q: Quality | None) -> None:
        if q is None:
            self.update(Content.styled("quality: no stats yet", "$text-muted"))
            return
        rtt = "-" if q.rtt_ms is None else f"{q.rtt_ms:.0f}"
        jitter = "-" if q.jitter_ms is None else f"{q.jitter_ms:.0f}"
        mos = "-" if q.mos is None else f"{q.mos:.1f}"
        mos_style = "" if q.mos is None else "$success" if q.mos >= 4 else "$warning" if q.mos >= 3.6 else "$error"
        loss_style = "$error" if q.loss_pct >= 5 else "$warning" if q.loss_pct >= 1 else ""
        self.update(Content.assemble(f"RTT {rtt} ms  jitter {jitter} ms  ", (f"loss {q.loss_pct:.1f}%", loss_style),
                                     "  ", (f"MOS {mos}", mos_style)))
