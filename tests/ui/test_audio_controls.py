"""Issue #20 item 8 in the Audio dialog (F8), driven by keys: volume and mic gain applied as
typed, saved with Use and put back by Cancel; the microphone test (Ctrl+T); rescan; and no
"Use" or "Test mic" with nothing to use."""

import asyncio

from textual.widgets import Input

from sandra_tui.ui.screens.devices import DevicePicker
from sandra_tui.ui.screens.mic_test import MicTestScreen
from tests.ui.fake_controller import FakeController
from tests.ui.helpers import wait_until
from tests.ui.scenes import make_app, ready


def text(app, selector) -> str:
    return str(app.screen.query_one(selector).render())


async def _type_into(pilot, selector: str, value: str) -> None:
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    await pilot.pause()
    await pilot.press("end", *["backspace"] * len(field.value), *value)
    await pilot.pause()


async def test_volume_and_gain_apply_as_typed_and_use_saves_them(tmp_path):
    c = FakeController()
    app = make_app(c)
    app.config_path = tmp_path / "config.toml"
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f8")
        assert isinstance(app.screen, DevicePicker)
        await _type_into(pilot, "#devices-volume", "70")
        await _type_into(pilot, "#devices-gain", "250")
        assert c.config.audio.output_volume == 0.7 and c.config.audio.mic_gain == 2.5  # at once
        assert "levels:0.7,None" in c.commands and "levels:None,2.5" in c.commands
        await pilot.press("ctrl+s")
        await wait_until(lambda: not isinstance(app.screen, DevicePicker), pilot)
    saved = (tmp_path / "config.toml").read_text()
    assert "output_volume = 0.7" in saved and "mic_gain = 2.5" in saved
    assert not any(cmd.startswith("set_devices") for cmd in c.commands)  # only the levels changed


async def test_an_out_of_range_level_is_refused_and_cancel_puts_the_levels_back():
    c = FakeController()
    app = make_app(c)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f8")
        await _type_into(pilot, "#devices-volume", "900")
        assert "0-200" in text(app, "#devices-levels-note")
        assert c.config.audio.output_volume == 0.9  # 900 not applied: the last valid value typed ("90") holds
        await _type_into(pilot, "#devices-gain", "40")
        assert c.config.audio.mic_gain == 0.4
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DevicePicker)
        assert c.config.audio.mic_gain == 1.0 and c.commands[-1] == "levels:1.0,1.0"


async def test_ctrl_t_runs_the_mic_test_and_shows_the_level_and_verdict():
    c = FakeController()
    c.mic_gate = asyncio.Event()
    app = make_app(c)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f8")
        await pilot.press("ctrl+t")
        await wait_until(lambda: isinstance(app.screen, MicTestScreen), pilot)
        await wait_until(lambda: "Recording 3 s" in text(app, "#mic-test-phase"), pilot)
        assert app.screen.query_one("#mic-test-again").disabled  # one test at a time
        c.mic_gate.set()
        await wait_until(lambda: "Recorded 3.0 s" in text(app, "#mic-test-result"), pilot)
        assert "peak -12 dBFS" in text(app, "#mic-test-result") and "Level is fine." in text(app, "#mic-test-result")
        c.mic_peak_dbfs = -55.0
        await pilot.press("ctrl+t")  # again, now with a quiet microphone
        await wait_until(lambda: "Very quiet" in text(app, "#mic-test-result"), pilot)
        assert c.commands.count("mic_test:3.0") == 2
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DevicePicker)  # back in the Audio dialog


async def test_a_mic_test_that_cannot_run_says_why():
    c = FakeController()
    c.mic_error = "hang up first: the test needs the microphone and speaker to itself"
    app = make_app(c)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f8", "ctrl+t")
        await wait_until(lambda: isinstance(app.screen, MicTestScreen), pilot)
        await wait_until(lambda: "Cannot test" in text(app, "#mic-test-result"), pilot)
        assert "hang up first" in text(app, "#mic-test-result")


async def test_nothing_to_use_offers_no_use_no_test_and_says_why():
    c = FakeController(devices=[])
    app = make_app(c)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f8")
        picker = app.screen
        for selector in ("#devices-use", "#devices-test", "#devices-levels"):
            assert not picker.query_one(selector).display, selector
        said = text(app, "#devices-error")
        assert "No audio devices found: PulseAudio is " in said and "To fix: " in said
        await pilot.press("ctrl+t", "ctrl+s")  # neither does anything
        await pilot.pause()
        assert app.screen is picker and not any(cmd.startswith(("mic_test", "set_devices")) for cmd in c.commands)
        await pilot.press("ctrl+r")  # rescan: still nothing
        await pilot.pause()
        assert c.rescans == 1 and not picker.query_one("#devices-use").display
