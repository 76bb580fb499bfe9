"""A call-ending error: what happened and what to do about it, never a traceback."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

WHAT_TO_DO = {
    "credentials_rejected": "The backend refused this client's key. Check the backend URL (--backend or "
                            "[backend] url) and the backend's OPENAI_API_KEY, then press F2.",
    "embedded_agent": "The local agent did not start; its log is named above. Fix that, then press F2.",
    "rate_limited": "The backend asks us to slow down. Wait a minute, then press F2.",
    "server_error": "The backend failed. Check that it is running and healthy, then press F2.",
    "backend_unreachable": "Check that the backend is running and the URL is right, then press F2.",
    "internal_error": "This is a bug in sandra-tui; the log file has the details. Press F2 to try again.",
}
DEFAULT = "Press F2 to try again. The log file (sandra-tui.log) has the details."


class ErrorScreen(ModalScreen):
    BINDINGS = [Binding("escape,enter", "dismiss", "Close", priority=True)]

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__()
        self.message, self.code = message, code

    def compose(self) -> ComposeResult:
        with Vertical(id="error-dialog", classes="dialog") as dialog:
            dialog.border_title = "The call stopped"
            yield Static(Content(self.message), id="error-message")
            yield Static(Content.assemble(("What to do: ", "bold"), WHAT_TO_DO.get(self.code, DEFAULT)),
                         id="error-hint")
            yield Button("OK", id="error-ok", variant="primary", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss()
