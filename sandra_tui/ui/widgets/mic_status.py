"""Microphone state: open, muted, push-to-talk (talking or not); idle with no call; none in
text-only mode (saying "mic open" there would be a lie)."""

from __future__ import annotations

from textual.content import Content

from sandra_tui.ui.widgets.line import Line


class MicStatus(Line):
    def on_mount(self) -> None:
        self.show(False, False, False)

    def show(self, muted: bool, push_to_talk: bool, talking: bool, *, in_call: bool = False,
             text_only: bool = False, recording: bool = False) -> None:
        rec = (("REC ", "bold $error"),) if recording else ()
        if text_only:
            text = Content.assemble(*rec, ("no microphone (text only)", "$text-muted"))
        elif muted:
            text = Content.assemble(*rec, ("mic muted", "bold $error"), ("  F3", "$text-muted"))
        elif not in_call:
            text = Content.assemble(*rec, ("mic idle (no call)", "$text-muted"))
        elif push_to_talk and talking:
            text = Content.assemble(*rec, ("push-to-talk: talking", "bold $success"), ("  F5", "$text-muted"))
        elif push_to_talk:
            text = Content.assemble(*rec, ("push-to-talk: quiet", "$warning"), ("  F5 to talk", "$text-muted"))
        else:
            text = Content.assemble(*rec, ("mic open", "$success"))
        self.update(text)
