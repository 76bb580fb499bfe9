"""The media path: the selected candidate pair's type (host, srflx, relay), the STUN/TURN server
it goes through, the codec and the bitrate both ways."""

from __future__ import annotations

from textual.content import Content

from sandra_tui.call.events import MediaPath
from sandra_tui.ui.toasts import clean
from sandra_tui.ui.widgets.line import Line

KIND = {"host": "direct (host)", "srflx": "via NAT (srflx)", "prflx": "via NAT (prflx)", "relay": "relayed (TURN)"}


def kbps(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class MediaLine(Line):
    def on_mount(self) -> None:
        self.show(None)

    def show(self, m: MediaPath | None) -> None:
        if m is None:
            self.update(Content.styled("path: -", "$text-muted"))
            return
        parts: list = [("path ", "$text-muted"), (KIND.get(m.local_type, m.local_type or "?"),
                                                   "$warning" if m.local_type == "relay" else "")]
        if m.server:
            parts += [("  via ", "$text-muted"), clean(m.server)]
        if m.codec:
            parts += [("  ", ""), m.codec]
        parts += [("  ↓", "$text-muted"), kbps(m.rx_kbps), (" ↑", "$text-muted"), kbps(m.tx_kbps), (" kbps", "$text-muted")]
        parts += [("  ", ""), ("GPT-Live" if m.api == "live" else "Realtime API", "$text-muted")]  # the dialect
        self.update(Content.assemble(*parts))
