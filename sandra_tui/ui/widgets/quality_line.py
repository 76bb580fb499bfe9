"""Connection quality from the controller's Quality event: RTT, jitter, loss, MOS.

Figures are only shown while a call is up: after a hang-up or during an outage the last ones
would describe a path that no longer carries anything."""

from __future__ import annotations

from textual.content import Content

from sandra_tui.call.events import CallState, Quality
from sandra_tui.ui.widgets.line import Line

NO_FIGURES = {CallState.RECONNECTING: "quality: no path (reconnecting)",
              CallState.CONNECTING: "quality: connecting", CallState.ACQUIRING_TOKEN: "quality: connecting"}


class QualityLine(Line):
    def on_mount(self) -> None:
        self.show(None)

    def show(self, q: Quality | None, state: CallState | None = None) -> None:
        if q is None:
            text = NO_FIGURES.get(state, "quality: no stats yet" if state == CallState.CONNECTED else "quality: no call")
            self.update(Content.styled(text, "$text-muted"))
            return
        rtt = "-" if q.rtt_ms is None else f"{q.rtt_ms:.0f}"
        jitter = "-" if q.jitter_ms is None else f"{q.jitter_ms:.0f}"
        mos = "-" if q.mos is None else f"{q.mos:.1f}"
        mos_style = "" if q.mos is None else "$success" if q.mos >= 4 else "$warning" if q.mos >= 3.6 else "$error"
        loss_style = "$error" if q.loss_pct >= 5 else "$warning" if q.loss_pct >= 1 else ""
        self.update(Content.assemble(f"RTT {rtt} ms  jitter {jitter} ms  ", (f"loss {q.loss_pct:.1f}%", loss_style),
                                     "  ", (f"MOS {mos}", mos_style)))
