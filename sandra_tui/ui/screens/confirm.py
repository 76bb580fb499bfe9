"""A yes/no question: Enter (or the button) says yes, Esc says no."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "answer(False)", "Keep", priority=True),
                Binding("enter,y", "answer(True)", "Yes", priority=True)]

    def __init__(self, question: str, yes: str = "Yes", **kwargs) -> None:
        super().__init__(**kwargs)
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm-dialog") as dialog:
            dialog.border_title = "Confirm"
            dialog.border_subtitle = f"Enter {self.yes.lower()} · Esc keep"
            yield Static(self.question, classes="confirm-question")
            with Horizontal(classes="buttons"):
                yield Static(classes="spacer")
                yield Button(self.yes, variant="error", compact=True, id="confirm-yes")
                yield Button("Keep", compact=True, id="confirm-no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")
