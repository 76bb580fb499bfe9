"""The device picker: lists from controller.list_devices(), switch, save, and no audio at all."""

import tomllib

from textual.widgets import OptionList

from sandra_tui.audio.devices import Device
from sandra_tui.ui.screens.devices import DevicePicker, choice_value
from sandra_tui.ui.screens.main import MainScreen
from sandra_tui.ui.widgets.devices_line import DevicesLine
from tests.ui.fake_controller import FAKE_DEVICES, FakeController
from tests.ui.helpers import notes, wait_until
from tests.ui.scenes import make_app


async def open_picker(pilot) -> DevicePicker:
    await pilot.press("f8")
    await pilot.pause()
    assert isinstance(pilot.app.screen, DevicePicker)
    return pilot.app.screen


def prompts(picker: DevicePicker, selector: str) -> list[str]:
    option_list = picker.query_one(selector, OptionList)
    return [str(option_list.get_option_at_index(i).prompt) for i in range(option_list.option_count)]


async def test_lists_inputs_and_outputs_and_saves_the_choice(tmp_path):
    path = tmp_path / "config.toml"
    c = FakeController()
    app = make_app(c, config_path=path)
    async with app.run_test(notifications=True) as pilot:
        picker = await open_picker(pilot)
        assert prompts(picker, "#devices-in") == ["System default", "Built-in Microphone  ALSA  · default",
                                                  "USB Headset  ALSA"]
        assert prompts(picker, "#devices-out") == ["System default", "Built-in Speakers  ALSA  · default",
                                                   "USB Headset  ALSA", "HDMI Output  ALSA"]
        assert picker.query_one("#devices-in", OptionList).has_focus
        await pilot.press("down", "down", "enter")  # USB Headset; Enter moves on to the speaker list
        assert picker.query_one("#devices-out", OptionList).has_focus
        await pilot.press("down", "down", "down", "ctrl+s")  # HDMI Output
        await wait_until(lambda: isinstance(app.screen, MainScreen), pilot)
        assert c.commands[-1] == "set_devices:'USB Headset','HDMI Output'"
        assert tomllib.loads(path.read_text())["audio"] == {**tomllib.loads(path.read_text())["audio"],
                                                            "input_device": "USB Headset",
                                                            "output_device": "HDMI Output"}
        await pilot.pause()
        assert "HDMI Output" in str(app.query_one(DevicesLine).render())
        assert any("HDMI Output" in n for n in notes(app))


async def test_opens_on_the_configured_device_and_default_is_empty(tmp_path):
    path = tmp_path / "config.toml"
    c = FakeController()
    c.config.audio.input_device = "usb headset"
    app = make_app(c, config_path=path)
    async with app.run_test() as pilot:
        picker = await open_picker(pilot)
        assert picker.query_one("#devices-in", OptionList).highlighted == 2
        assert picker.query_one("#devices-out", OptionList).highlighted == 0
        await pilot.press("up", "up")  # system default
        await pilot.click("#devices-use")
        await wait_until(lambda: isinstance(app.screen, MainScreen), pilot)
        assert c.commands[-1] == "set_devices:'',None"  # only what changed
        assert tomllib.loads(path.read_text())["audio"]["input_device"] == ""


async def test_nothing_changed_switches_nothing(tmp_path):
    c = FakeController()
    app = make_app(c, config_path=tmp_path / "config.toml")
    async with app.run_test() as pilot:
        await open_picker(pilot)
        await pilot.press("ctrl+s")
        await wait_until(lambda: isinstance(app.screen, MainScreen), pilot)
        assert not any(cmd.startswith("set_devices") for cmd in c.commands)
        assert not (tmp_path / "config.toml").exists()


async def test_no_audio_is_a_message_not_a_crash():
    c = FakeController(audio_error="PortAudio is not installed; install libportaudio2")
    app = make_app(c)
    async with app.run_test() as pilot:
        picker = await open_picker(pilot)
        message = str(picker.query_one("#devices-error").render())
        assert "PortAudio is not installed; install libportaudio2" in message and "text only" in message
        assert not picker.query_one("#devices-use").display  # nothing to use: not offered
        await pilot.press("ctrl+s")  # nothing to apply
        assert isinstance(app.screen, DevicePicker)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_a_failed_switch_is_a_notification_and_the_dialog_stays(tmp_path):
    c = FakeController(switch_error="USB Headset is busy (another program holds it)")
    app = make_app(c, config_path=tmp_path / "config.toml")
    async with app.run_test(notifications=True) as pilot:
        await open_picker(pilot)
        await pilot.press("down", "down", "ctrl+s")
        await wait_until(lambda: any("is busy" in n for n in notes(app)), pilot)
        assert isinstance(app.screen, DevicePicker)
        assert c.config.audio.input_device == "" and not (tmp_path / "config.toml").exists()
        await pilot.press("escape")  # (a click on Cancel would land on the toast above it)
        assert isinstance(app.screen, MainScreen)


def test_duplicate_names_are_saved_as_an_index():
    twins = FAKE_DEVICES + [Device(7, "USB Headset", "JACK", 2, 2, 48000.0)]
    assert choice_value(twins[2], twins, "output") == "2"
    assert choice_value(twins[0], twins, "input") == "Built-in Microphone"
