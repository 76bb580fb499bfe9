"""Microphone state: open, muted, or push-to-talk (talking or not)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class MicStatus(Static):
    def on_mount(self) -> None:
        self.show(False, False, False)

    def show(self, muted: bool, push_to_talk: bool, talking: bool) -> None:
        if muted:
            text = Content.assemble(("mic muted", "bold $error"), ("  F3", "$text-muted"))
        elif push_to_talk and talking:
            text = Content.assemble(("push-to-talk: talking", "bold $success"), ("  F5", "$text-muted"))
        elif push_to_talk:
            text = Content.assemble(("push-to-talk: quiet", "$warning"), ("  F5 to talk", "$text-muted"))
        else:
            text = Content.assemble(("mic open", "$success"))
        self.update(text)
