"""Every key, read from the same table as the bindings and the command palette."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from sandra_tui.ui.keys import ALL_KEYS, DEVICE_KEYS, ICE_EDITOR_KEYS


def key_table(title: str, rows) -> Content:
    width = max(len(key) for key, _ in rows) + 2
    lines = [Content.styled(title, "bold $accent")]
    for key, text in rows:
        lines.append(Content.assemble((f"  {key:<{width}}", "bold"), text))
    return Content("\n").join(lines)


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q", "dismiss", "Close", priority=True)]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog") as dialog:
            dialog.border_title = "Keys"
            dialog.border_subtitle = "Esc close"
            with VerticalScroll():
                yield Static(key_table("Main screen (also while typing)", [(k.display, k.help) for k in ALL_KEYS]))
                yield Static(key_table("ICE server editor", ICE_EDITOR_KEYS))
                yield Static(key_table("Audio devices", DEVICE_KEYS))
