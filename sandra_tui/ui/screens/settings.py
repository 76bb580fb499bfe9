"""Session settings (F10): voice, turn detection, noise reduction, transcription language.

Ctrl+S saves them in the config's [session] and applies them to the call at once with
`session.update`. The voice can change only before Sandra's first reply: the API locks it
after, so the field is read-only then and says why.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from sandra_tui.config.model import SessionConfig
from sandra_tui.ui.toasts import clean

log = logging.getLogger(__name__)
VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse")
TURN = (("server VAD (silence)", "server_vad"), ("semantic VAD (meaning)", "semantic_vad"))
EAGERNESS = tuple((e, e) for e in ("auto", "low", "medium", "high"))
NOISE = (("off", "off"), ("near field (headset)", "near_field"), ("far field (laptop, room)", "far_field"))


class SessionSettings(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", priority=True), Binding("ctrl+s", "save", "Save", priority=True)]

    def __init__(self, port, save) -> None:
        super().__init__(id="settings")
        self.port = port  # a CallPort
        self.session = port.settings().session  # a copy: the form starts from what is in effect
        self.save = save  # async (SessionConfig) -> str (what the call took)

    @property
    def voice_locked(self) -> bool:
        return self.port.voice_locked

    def compose(self) -> ComposeResult:
        s = self.session
        with Vertical(id="settings-dialog", classes="dialog") as dialog:
            dialog.border_title = "Session settings"
            dialog.border_subtitle = "Ctrl+S save and apply · Esc cancel"
            with VerticalScroll():
                yield self._row("Voice", Select([(v, v) for v in sorted({*VOICES, s.voice})], value=s.voice,
                                                allow_blank=False, compact=True, id="set-voice",
                                                disabled=self.voice_locked))
                yield self._row("Turn detection", Select(TURN, value=s.turn_detection, allow_blank=False,
                                                         compact=True, id="set-turn"))
                yield self._row("VAD threshold (0-1)", Input(f"{s.vad_threshold:g}", compact=True, id="set-threshold"))
                yield self._row("Silence (ms)", Input(str(s.vad_silence_duration_ms), compact=True, id="set-silence"))
                yield self._row("Prefix padding (ms)", Input(str(s.vad_prefix_padding_ms), compact=True,
                                                             id="set-prefix"))
                yield self._row("Eagerness (semantic)", Select(EAGERNESS, value=s.eagerness, allow_blank=False,
                                                               compact=True, id="set-eagerness"))
                yield self._row("Noise reduction", Select(NOISE, value=s.noise_reduction, allow_blank=False,
                                                          compact=True, id="set-noise"))
                yield self._row("Transcription language", Input(s.transcription_language, placeholder="detect (e.g. en)",
                                                                compact=True, id="set-language"))
                yield Static(id="settings-note")
            with Horizontal(classes="buttons"):
                yield Static(classes="spacer")
                yield Button("Save", variant="primary", compact=True, id="settings-save")
                yield Button("Cancel", compact=True, id="settings-cancel")

    @staticmethod
    def _row(label: str, field) -> Horizontal:
        return Horizontal(Label(label), field, classes="form-row")

    def on_mount(self) -> None:
        self._show_turn(self.query_one("#set-turn", Select).value)
        if self.voice_locked:
            self._note("The voice is fixed once Sandra has replied (the API locks it); it applies to the next call.")

    def _note(self, text: str, style: str = "$text-muted") -> None:
        self.query_one("#settings-note", Static).update(Content.styled(text, style))

    def _show_turn(self, kind) -> None:
        semantic = kind == "semantic_vad"
        for selector in ("#set-threshold", "#set-silence", "#set-prefix"):
            self.query_one(selector).disabled = semantic
        self.query_one("#set-eagerness").disabled = not semantic

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "set-turn":
            self._show_turn(event.value)

    def collect(self) -> SessionConfig:
        """The form as a SessionConfig; raises ValidationError (or ValueError) with the field."""
        current = self.session

        def number(selector: str, kind):
            text = self.query_one(selector, Input).value.strip()
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a number") from None

        values = current.model_dump()
        values.update(
            voice=self.query_one("#set-voice", Select).value,
            turn_detection=self.query_one("#set-turn", Select).value,
            vad_threshold=number("#set-threshold", float),
            vad_silence_duration_ms=number("#set-silence", int),
            vad_prefix_padding_ms=number("#set-prefix", int),
            eagerness=self.query_one("#set-eagerness", Select).value,
            noise_reduction=self.query_one("#set-noise", Select).value,
            transcription_language=self.query_one("#set-language", Input).value,
        )
        return SessionConfig.model_validate(values)

    async def action_save(self) -> None:
        try:
            session = self.collect()
        except ValidationError as exc:
            err = exc.errors()[0]
            self._note(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}",
                       "$error")
            return
        except ValueError as exc:
            self._note(str(exc), "$error")
            return
        try:
            applied = await self.save(session)
        except Exception as exc:  # noqa: BLE001 - not saved: the dialog stays, with the reason
            log.exception("saving the session settings failed")
            self._note(clean(f"Not saved: {exc}"), "$error")
            return
        self.notify("Saved." + (f" {applied}" if applied else " Used from the next call."),
                    title="Session settings", timeout=6)
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "settings-save":
            await self.action_save()
        else:
            self.action_cancel()
