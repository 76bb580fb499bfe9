"""The microphone test: 3 s recorded, then played back, then the level and a verdict.

The port does the work (on the call thread when there is one); its phase callbacks come
from that thread, so they hop to this screen's loop before touching a widget.
"""

from __future__ import annotations

import asyncio
import logging

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

log = logging.getLogger(__name__)
SECONDS = 3.0
PHASES = {
    "recording": ("● Recording 3 s: speak now", "bold $error"),
    "playing": ("▶ Playing back what the microphone heard", "bold $accent"),
}


class MicTestScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close"), Binding("ctrl+t", "run_test", "Test again")]

    def __init__(self, port, seconds: float = SECONDS) -> None:
        super().__init__(id="mic-test")
        self.port = port
        self.seconds = seconds
        self.running = False
        self.result = None  # the last MicTestResult
        self.error = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="mic-test-dialog", classes="dialog") as dialog:
            dialog.border_title = "Microphone test"
            dialog.border_subtitle = "Ctrl+T test again · Esc close"
            yield Static(id="mic-test-phase")
            yield Static(id="mic-test-result")
            yield Static(id="mic-test-levels")
            with Horizontal(classes="buttons"):
                yield Static(classes="spacer")
                yield Button("Test again", compact=True, id="mic-test-again")
                yield Button("Close", variant="primary", compact=True, id="mic-test-close")

    def on_mount(self) -> None:
        audio = self.port.settings().audio
        self.query_one("#mic-test-levels", Static).update(Content.styled(
            f"Mic gain {audio.mic_gain * 100:.0f} % · volume {audio.output_volume * 100:.0f} % "
            "(change them in the Audio dialog)", "$text-muted"))
        self.action_run_test()

    def action_run_test(self) -> None:
        if not self.running:
            self.running = True
            self.run_worker(self._run(), exclusive=True, group="mic-test")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        result_line = self.query_one("#mic-test-result", Static)
        result_line.update("")
        self.query_one("#mic-test-again", Button).disabled = True

        def on_phase(phase: str) -> None:  # may be called on the call thread
            loop.call_soon_threadsafe(self._phase_told, phase)

        try:
            self.result = await self.port.mic_test(self.seconds, on_phase)
            self.error = ""
            good = self.result.verdict == "Level is fine."
            self._show_phase("done")
            result_line.update(Content.assemble(
                ("✓ " if good else "! ", "bold $success" if good else "bold $warning"), self.result.summary()))
        except Exception as exc:  # noqa: BLE001 - AudioUnavailable by contract; anything else said the same way
            if type(exc).__name__ != "AudioUnavailable":
                log.exception("the microphone test failed")
            self.error = str(exc) or type(exc).__name__
            self._show_phase("failed")
            result_line.update(Content.assemble(("Cannot test: ", "bold $error"), self.error))
        finally:
            self.running = False
            self.query_one("#mic-test-again", Button).disabled = False

    def _phase_told(self, phase: str) -> None:
        if self.running:  # a phase that hops over after the end is old news
            self._show_phase(phase)

    def _show_phase(self, phase: str) -> None:
        text, style = PHASES.get(phase, ("Done: recorded, then played back" if phase == "done" else "Not tested",
                                         "$text-muted"))
        self.query_one("#mic-test-phase", Static).update(Content.styled(text, style))

    def action_close(self) -> None:
        self.workers.cancel_group(self, "mic-test")
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "mic-test-again":
            self.action_run_test()
        else:
            self.action_close()
