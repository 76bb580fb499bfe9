"""Pick the microphone and speaker from the machine's devices; the choice is saved in the config.
Also here: rescan (a headset plugged in since start), the microphone test, and the output volume
and microphone gain (applied as they are typed, saved with Use, put back by Cancel).

No audio at all (no PortAudio, no device) is a message on this screen, not a crash. A switch that
fails (device busy, gone) is a notification with the reason, and the dialog stays open.
"""

from __future__ import annotations

import logging

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.validation import Number
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from sandra_tui.audio.devices import AudioUnavailable, find_device, why_no_devices
from sandra_tui.audio.gain import GAIN_RANGE, VOLUME_RANGE
from sandra_tui.call.port import DeviceInfo

log = logging.getLogger(__name__)
DEFAULT_ID = "default"


def choice_value(device: DeviceInfo, devices: list[DeviceInfo], kind: str) -> str:
    """What goes in the config: the name, or the index when the name is not unique."""
    channels = "max_input_channels" if kind == "input" else "max_output_channels"
    same = [d for d in devices if getattr(d, channels) > 0 and d.name.lower() == device.name.lower()]
    return device.name if len(same) == 1 else str(device.index)


class DevicePicker(ModalScreen[bool]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "apply", "Use"),
                Binding("ctrl+r", "rescan", "Rescan"), Binding("ctrl+t", "mic_test", "Test mic")]

    def __init__(self, port, save) -> None:
        super().__init__(id="device-picker")
        self.port = port  # a CallPort: the device list comes over as frozen rows
        self.save_config = save  # async () -> None; writes the port's settings
        self.devices: list[DeviceInfo] = []
        self.values: dict[str, str] = {}  # option id -> config value ("" = system default)
        audio = port.settings().audio
        self.levels_at_open = (audio.output_volume, audio.mic_gain)  # what Cancel puts back

    def compose(self) -> ComposeResult:
        with Vertical(id="devices-dialog", classes="dialog") as dialog:
            dialog.border_title = "Audio devices"
            dialog.border_subtitle = "Tab switches · Ctrl+S use · Ctrl+R rescan · Ctrl+T test mic · Esc cancel"
            yield Static(id="devices-error")
            with Horizontal(id="devices-lists"):
                with Vertical():
                    yield Label("Microphone", classes="list-title")
                    yield OptionList(id="devices-in")
                with Vertical():
                    yield Label("Speaker", classes="list-title")
                    yield OptionList(id="devices-out")
            with Horizontal(id="devices-levels"):
                volume, gain = self.levels_at_open
                yield Label("Volume %")
                yield Input(f"{volume * 100:.0f}", type="integer", max_length=3, compact=True, id="devices-volume",
                            validators=[Number(VOLUME_RANGE[0] * 100, VOLUME_RANGE[1] * 100)])
                yield Label("Mic gain %")
                yield Input(f"{gain * 100:.0f}", type="integer", max_length=3, compact=True, id="devices-gain",
                            validators=[Number(GAIN_RANGE[0] * 100, GAIN_RANGE[1] * 100)])
                yield Static(id="devices-levels-note")
            yield Static(id="devices-current")
            with Horizontal(classes="buttons"):
                yield Static(classes="spacer")
                yield Button("Rescan", compact=True, id="devices-rescan")
                yield Button("Test mic", compact=True, id="devices-test")
                yield Button("Use", variant="primary", compact=True, id="devices-use")
                yield Button("Cancel", compact=True, id="devices-cancel")

    async def on_mount(self) -> None:
        await self.load()

    async def action_rescan(self) -> None:
        """Ask the machine again (a headset plugged in after start): the engine's rescan when it
        has one (PortAudio keeps the list it read at start), else a fresh list."""
        try:
            await self.port.rescan_devices()
        except Exception as exc:  # noqa: BLE001 - said in the dialog below, by load()
            log.warning("rescanning audio devices failed: %s", exc)
        await self.load()
        self.notify(f"{len(self.devices)} device(s) found", title="Audio devices", timeout=4)

    def action_mic_test(self) -> None:
        if not self.devices:
            return  # nothing to test with: the button is not offered either
        from sandra_tui.ui.screens.mic_test import MicTestScreen

        self.app.push_screen(MicTestScreen(self.port))

    async def on_input_changed(self, event: Input.Changed) -> None:
        """A valid level is applied at once (the operator hears it); saved with Use."""
        if event.input.id not in ("devices-volume", "devices-gain"):
            return
        event.stop()
        note = self.query_one("#devices-levels-note", Static)
        if event.validation_result is not None and not event.validation_result.is_valid or not event.value:
            low, high = VOLUME_RANGE if event.input.id == "devices-volume" else GAIN_RANGE
            note.update(Content.styled(f"{low * 100:.0f}-{high * 100:.0f}", "$error"))
            return
        note.update("")
        value = int(event.value) / 100
        try:
            if event.input.id == "devices-volume":
                await self.port.set_audio_levels(output_volume=value)
            else:
                await self.port.set_audio_levels(mic_gain=value)
        except Exception as exc:  # noqa: BLE001 - a level that cannot be set is said, never a crash
            log.warning("setting the audio level failed: %s", exc)
            note.update(Content.styled(str(exc), "$error"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # Enter in a level field moves on, as on the lists
        self.focus_next()

    def _levels_changed(self) -> bool:
        audio = self.port.settings().audio
        return (audio.output_volume, audio.mic_gain) != self.levels_at_open

    async def load(self) -> None:
        description = self.port.audio_status().description
        self.query_one("#devices-current", Static).update(Content.assemble(("In use: ", "bold"), description))
        self.values.clear()
        for selector in ("#devices-in", "#devices-out"):
            self.query_one(selector, OptionList).clear_options()
        self.query_one("#devices-error", Static).update("")
        self.query_one("#devices-lists").display = True
        self.query_one("#devices-use", Button).display = True
        self.query_one("#devices-test", Button).display = True
        self.query_one("#devices-levels").display = True
        try:
            self.devices = list(await self.port.list_devices())
        except AudioUnavailable as exc:
            self._unavailable(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - PortAudio has more ways to fail than it documents
            log.exception("listing audio devices failed")
            self._unavailable(f"cannot list audio devices: {exc}")
            return
        if not self.devices:
            self._unavailable(f"No audio devices found: {why_no_devices()} (Ctrl+R).")
            return
        audio = self.port.settings().audio
        self._fill("input", "#devices-in", audio.input_device)
        self._fill("output", "#devices-out", audio.output_device)
        self.query_one("#devices-in", OptionList).focus()

    def _unavailable(self, message: str) -> None:
        self.query_one("#devices-error", Static).update(Content.assemble(
            ("No audio: ", "bold $error"), message, ("\nCalls still work as text only.", "$text-muted")))
        self.devices = []
        self.query_one("#devices-lists").display = False
        self.query_one("#devices-use", Button).display = False  # nothing to use: not offered
        self.query_one("#devices-test", Button).display = False
        self.query_one("#devices-levels").display = False
        self.query_one("#devices-rescan", Button).focus()

    def _fill(self, kind: str, selector: str, wanted: str) -> None:
        channels = "max_input_channels" if kind == "input" else "max_output_channels"
        usable = [d for d in self.devices if getattr(d, channels) > 0]
        options = [Option(Content.styled("System default", "italic"), id=f"{kind}-{DEFAULT_ID}")]
        self.values[f"{kind}-{DEFAULT_ID}"] = ""
        for d in usable:
            is_default = d.default_input if kind == "input" else d.default_output
            label = Content.assemble(d.name, (f"  {d.hostapi}", "$text-muted"),
                                     ("  · default" if is_default else "", "$text-muted"))
            option_id = f"{kind}-{d.index}"
            options.append(Option(label, id=option_id))
            self.values[option_id] = choice_value(d, self.devices, kind)
        option_list = self.query_one(selector, OptionList)
        option_list.add_options(options)
        chosen = find_device(self.devices, wanted, kind) if wanted else None
        option_list.highlighted = 0 if chosen is None else option_list.get_option_index(f"{kind}-{chosen.index}")

    def _picked(self, selector: str) -> str | None:
        option_list = self.query_one(selector, OptionList)
        if option_list.highlighted is None:
            return None
        return self.values[option_list.get_option_at_index(option_list.highlighted).id]

    async def action_apply(self) -> None:
        if not self.devices:
            return
        audio = self.port.settings().audio
        wanted_in, wanted_out = self._picked("#devices-in"), self._picked("#devices-out")
        new_in = wanted_in if wanted_in is not None and wanted_in != audio.input_device else None
        new_out = wanted_out if wanted_out is not None and wanted_out != audio.output_device else None
        if new_in is None and new_out is None and not self._levels_changed():
            self.dismiss(False)
            return
        try:
            if new_in is not None or new_out is not None:
                await self.port.set_devices(input_device=new_in, output_device=new_out)
        except Exception as exc:  # noqa: BLE001 - AudioUnavailable by contract; anything else is said the same way
            if not isinstance(exc, AudioUnavailable):
                log.exception("switching audio devices failed")
            self.notify(str(exc) or type(exc).__name__, title="Audio devices", severity="error", timeout=10)
            return
        try:
            await self.save_config()
        except Exception as exc:  # noqa: BLE001 - the switch worked; only remembering it failed
            log.warning("saving the device choice failed: %s", exc)
            self.notify(f"Switched, but not saved: {exc}", title="Audio devices", severity="warning", timeout=10)
        self.dismiss(True)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()  # Enter on a list moves on to the next list, then to "Use"
        self.focus_next()

    async def action_cancel(self) -> None:
        if self._levels_changed():
            volume, gain = self.levels_at_open
            try:
                await self.port.set_audio_levels(output_volume=volume, mic_gain=gain)
            except Exception as exc:  # noqa: BLE001 - closing goes on
                log.warning("putting the audio levels back failed: %s", exc)
        self.dismiss(False)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "devices-use":
            await self.action_apply()
        elif event.button.id == "devices-rescan":
            await self.action_rescan()
        elif event.button.id == "devices-test":
            self.action_mic_test()
        else:
            await self.action_cancel()
