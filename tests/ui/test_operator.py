"""Issue #20 (operator workflow) and its defects, driven by keys with the fake controller.
Each defect test failed before its fix."""

import os
import subprocess
import sys

from textual.widgets import Input

from sandra_tui.call.call_log import CallStore
from sandra_tui.call.events import (
    CallState,
    DevicesChanged,
    LatencySample,
    MediaPath,
    Notice,
    Quality,
    RateLimits,
    Speech,
    StateChanged,
)
from sandra_tui.ui.screens.confirm import Confirm
from sandra_tui.ui.screens.history import HistoryScreen
from sandra_tui.ui.screens.main import MainScreen
from sandra_tui.ui.screens.settings import SessionSettings
from sandra_tui.ui.widgets.latency_spark import LatencySpark, bars
from sandra_tui.ui.widgets.limits_line import LimitsLine
from sandra_tui.ui.widgets.media_line import MediaLine
from sandra_tui.ui.widgets.message_view import MessageView
from sandra_tui.ui.widgets.mic_status import MicStatus
from sandra_tui.ui.widgets.quality_line import QualityLine
from sandra_tui.ui.widgets.transcript import Transcript
from tests.ui.fake_controller import FakeAudio, FakeController
from tests.ui.helpers import notes, text, wait_until
from tests.ui.scenes import make_app, ready


def footer_keys(app) -> dict[str, str]:
    return {key: b.binding.description for key, b in app.screen.active_bindings.items()
            if b.enabled and b.binding.show}


async def test_transcript_keeps_following_after_the_window_shrinks():
    c = FakeController()
    app = make_app(c)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        for i in range(8):
            c.say("user" if i % 2 else "assistant", f"message {i} " + "words " * 30)
        app.main.repaint()
        await pilot.pause(0.2)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        c.say("assistant", "the newest message")
        app.main.repaint()
        await pilot.pause(0.3)
        transcript = app.query_one(Transcript)
        last = list(transcript.query(MessageView))[-1]
        assert "the newest message" in text(last)
        assert transcript.scroll_y >= transcript.max_scroll_y - 1  # on screen: at the end
        assert last.region.bottom <= transcript.region.bottom


async def test_esc_marks_the_stopped_reply_interrupted():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        await ready(pilot)
        c.emit(StateChanged(CallState.CONNECTED))
        item = c.next_id()
        c.stream("assistant", item, "Let me tell you a long sto")
        app.main.repaint()
        await pilot.pause()
        await pilot.press("escape")
        app.main.repaint()
        await pilot.pause()
        shown = text(list(app.query(MessageView))[-1])
        assert "(interrupted)" in shown and "▍" not in shown


async def test_no_stale_quality_after_hang_up_or_during_an_outage_and_honest_mic_state():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        await ready(pilot)
        mic = app.query_one(MicStatus)
        assert "mic open" not in text(mic) and "no call" in text(mic)
        await pilot.press("f2")
        c.emit(Quality(4.0, 1.0, 0, 500, 0.0, 4.4))
        await wait_until(lambda: app.main.repaint() or "MOS 4.4" in text(app.query_one(QualityLine)), pilot)
        assert "mic open" in text(mic)
        c.emit(Quality(4.0, 1.0, 0, 600, 0.0, 4.3))  # held by the port's coalescing when the path drops
        c.emit(StateChanged(CallState.RECONNECTING, reason="ice_failed", attempt=1, max_attempts=5, delay_ms=1000))
        await pilot.pause(0.2)  # past the next 10 Hz slot: nothing held may land after the outage
        app.main.repaint()
        assert "MOS" not in text(app.query_one(QualityLine)) and "reconnecting" in text(app.query_one(QualityLine))
        c.emit(StateChanged(CallState.CONNECTED))
        await pilot.press("f2")
        app.main.repaint()
        assert "RTT" not in text(app.query_one(QualityLine)) and "no call" in text(app.query_one(QualityLine))
        assert "mic open" not in text(mic)


async def test_text_only_says_no_microphone():
    c = FakeController()
    c.audio = FakeAudio(devices=None, description="no audio device")
    app = make_app(c)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("f2")
        assert "text only" in text(app.query_one(MicStatus))


async def test_footer_says_hang_up_in_a_call_and_f7_asks_first():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        await ready(pilot)
        assert footer_keys(app)["f2"] == "Call"
        await pilot.press("f2")
        await pilot.pause()
        assert footer_keys(app)["f2"] == "Hang up"
        c.say("user", "keep me")
        await pilot.press("f7")
        assert isinstance(app.screen, Confirm) and len(c.history) == 1
        await pilot.press("escape")  # keep
        assert isinstance(app.screen, MainScreen) and len(c.history) == 1
        await pilot.press("f7", "enter")
        await wait_until(lambda: len(c.history) == 0, pilot)
        await pilot.press("f2")
        await pilot.pause()
        assert c.state == CallState.ENDED and footer_keys(app)["f2"] == "Call"


async def test_autostart_follows_the_config_and_the_flag():
    from sandra_tui.cli import build_parser
    from sandra_tui.ui.app import SandraApp

    assert build_parser().parse_args(["--no-autostart"]).no_autostart
    c = FakeController()
    app = SandraApp(c, autostart=False, monitor_loop_lag=False)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.pause(0.1)
        assert "start" not in c.commands and c.state == CallState.IDLE
        await pilot.press("f2")
        assert c.state == CallState.CONNECTED


async def test_sparkline_is_scaled_from_zero_one_column_per_turn():
    assert bars([164, 200]) == "▇█"  # from 0: 164 ms beside 200 ms is nearly as tall, not nothing
    assert bars([10, 1000])[0] == "▁"  # a sample is never drawn as blank
    assert len(bars([300])) == 1  # one sample does not fill the width
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        await ready(pilot)
        c.emit(LatencySample("response_latency", 164, "GOOD"))
        c.emit(LatencySample("turn_server", 120, "GOOD"))
        c.emit(LatencySample("turn_client", 44, "GOOD"))
        app.main.repaint()
        await pilot.pause()
        spark = app.query_one(LatencySpark)
        assert spark.text().strip() == "█"
        label = str(spark.query_one("Label").render())
        assert "164 ms GOOD" in label and "server 120 · client 44" in label


async def test_palette_offers_only_what_applies_and_none_of_textuals():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        await ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"talk")
        await pilot.pause(0.3)
        shown = " ".join(str(o.prompt) for o in app.screen.query_one("CommandList").options)
        assert "Talk on / off" not in shown
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"quit")
        await pilot.pause(0.3)
        prompts = [str(o.prompt).splitlines()[0] for o in app.screen.query_one("CommandList").options]
        assert prompts == ["Hang up and quit"]  # not Textual's "Quit" beside ours


async def test_identical_notices_become_one_toast_with_a_count():
    c = FakeController()
    app = make_app(c)
    async with app.run_test(notifications=True) as pilot:
        await ready(pilot)
        for _ in range(12):
            c.emit(DevicesChanged("default", "default", "Speaker 'default' stopped delivering audio"))
            c.emit(Notice("Sandra is rate limited; try again in a moment."))
        await pilot.pause(0.2)
        shown = notes(app)
        assert len(shown) == 2, shown
        assert any(n.endswith("x12") and "stopped delivering" in n for n in shown)


async def test_the_engines_counted_notices_replace_their_toast():
    """The audio engine coalesces too ("... x7"): a counted repeat is the same toast, not a new one."""
    c = FakeController()
    app = make_app(c)
    async with app.run_test(notifications=True) as pilot:
        await ready(pilot)
        c.emit(Notice("Audio is running late (CPU busy)"))
        for n in (3, 7, 31):
            c.emit(Notice(f"Audio is running late (CPU busy) x{n}"))
        await pilot.pause(0.2)
        shown = notes(app)
        assert len(shown) == 1 and shown[0].endswith("Audio is running late (CPU busy) x31"), shown


async def test_ice_url_credentials_never_reach_a_notification():
    c = FakeController()
    app = make_app(c)
    app.warnings = ["config: 'turn:alice:hunter22pw@relay.example.com' is bad"]
    async with app.run_test(notifications=True) as pilot:
        await ready(pilot)
        c.emit(Notice("cannot reach turn:bob:s3cretpass@turn.example.org:3478"))
        await pilot.pause(0.2)
        shown = " ".join(notes(app))
        assert "hunter22pw" not in shown and "s3cretpass" not in shown and "turn:****@" in shown


async def test_history_screen_lists_opens_exports_and_deletes(tmp_path):
    store = CallStore(tmp_path / "calls.sqlite3")
    c = FakeController()
    app = make_app(c)
    app.call_store = store
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("f2")
        c.emit(Quality(4.0, 1.0, 0, 500, 0.0, 4.2))
        c.emit(LatencySample("response_latency", 300, "MEDIUM"))
        c.say("user", "check booking 1234")
        c.tool_call("call_1", "check_booking", '{"number": "1234"}', '{"status": "confirmed"}', 42)
        c.say("assistant", "Booking 1234 is confirmed.")
        await pilot.press("f2")
        await wait_until(lambda: len(store.calls()) == 1, pilot)
        summary = c.history.messages()[-1]
        assert summary.role == "summary" and "MOS 4.2" in summary.content and "1 tool call" in summary.content
        await pilot.press("f9")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await wait_until(lambda: screen.calls, pilot)
        await pilot.press("enter")
        await wait_until(lambda: screen.opened is not None, pilot)
        shown = text(screen.query_one("#history-messages"))
        assert "check booking 1234" in shown and "check_booking" in shown and "confirmed" in shown
        screen.export_dir = tmp_path / "exports"
        await pilot.press("ctrl+e")
        await wait_until(lambda: (tmp_path / "exports").exists(), pilot)
        assert "Booking 1234 is confirmed." in next((tmp_path / "exports").iterdir()).read_text()
        await pilot.press("escape")  # back to the list
        await pilot.press("delete")
        assert isinstance(app.screen, Confirm)
        await pilot.press("enter")
        await wait_until(lambda: store.calls() == [], pilot)


async def test_tool_call_shows_in_the_transcript():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        await ready(pilot)
        c.tool_call("call_9", "check_booking", '{"number": "77"}', '{"status": "cancelled"}', 15)
        app.main.repaint()
        await pilot.pause()
        shown = text(list(app.query(MessageView))[-1])
        assert shown.startswith("Tool") and 'check_booking({"number": "77"})' in shown and "15 ms" in shown


async def test_session_settings_saved_and_applied(tmp_path):
    c = FakeController()
    path = tmp_path / "config.toml"
    app = make_app(c, config_path=path)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("f2")
        await pilot.press("f10")
        assert isinstance(app.screen, SessionSettings)
        app.screen.query_one("#set-noise").value = "far_field"
        app.screen.query_one("#set-language", Input).value = "de"
        await pilot.press("ctrl+s")
        await wait_until(lambda: "update_session" in c.commands, pilot)
        assert c.config.session.noise_reduction == "far_field" and 'transcription_language = "de"' in path.read_text()
        c.voice_locked = True
        await pilot.press("f10")
        assert app.screen.query_one("#set-voice").disabled  # locked after the first reply
        app.screen.query_one("#set-threshold", Input).value = "7"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SessionSettings)  # a bad value keeps the dialog, with the field
        assert "vad_threshold" in text(app.screen.query_one("#settings-note"))


async def test_media_path_and_rec_marker_in_the_call_pane():
    c = FakeController()
    c.media = MediaPath("relay", "host", "turn:turn.example.org:3478", "opus/48000/2", 31.5, 33.0)
    app = make_app(c)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("f2")
        await app.main.poll_media()
        shown = text(app.query_one(MediaLine))
        assert "relayed (TURN)" in shown and "turn:turn.example.org:3478" in shown and "opus/48000/2" in shown
        assert "Realtime API" in shown  # the dialect (#22)
        c.media = MediaPath("host", "host", "", "opus/48000/2", 31.5, 33.0, api="live")
        await app.main.poll_media()
        assert "GPT-Live" in text(app.query_one(MediaLine))
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert c.recording and text(app.query_one(MicStatus)).startswith("REC")
        await pilot.press("f2")
        await pilot.pause()
        assert "REC" not in text(app.query_one(MicStatus)) and "path: -" in text(app.query_one(MediaLine))


async def test_rate_limits_in_the_call_pane_count_down_and_clear():
    clock = [1000.0]
    c = FakeController()
    app = make_app(c)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        line = app.query_one(LimitsLine)
        assert not line.display  # nothing reported yet: no row
        await pilot.press("f2")
        await wait_until(lambda: c.state == CallState.CONNECTED, pilot)
        line.clock = lambda: clock[0]
        c.emit(RateLimits((("requests", 4999, 5000, 60.0), ("tokens", 3100, 40000, 42.0))))
        await wait_until(lambda: line.display, pilot)
        shown = text(line)
        assert "requests 4999/5000" in shown and "tokens 3100/40k" in shown and "resets in 42 s" in shown
        warned = [span for span in line.render().spans if "warning" in str(span.style)]
        assert len(warned) == 1  # tokens under a tenth of the limit; requests are not
        clock[0] += 30
        line._tick()
        assert "resets in 12 s" in text(line)
        await pilot.press("f2")  # hang up: the figures belonged to that call
        await wait_until(lambda: not line.display, pilot)


async def test_device_picker_rescan_finds_a_new_device():
    from tests.ui.fake_controller import FAKE_DEVICES

    c = FakeController(devices=[])
    c.rescanned = list(FAKE_DEVICES)
    app = make_app(c)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f8")
        picker = app.screen
        assert not picker.query_one("#devices-use").display  # nothing to use: no "Use"
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert c.rescans == 1 and picker.query_one("#devices-use").display
        assert picker.query_one("#devices-in").option_count >= 2


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "sandra_tui.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_config_show_moves_nothing_and_a_bad_setting_costs_only_itself(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[reconnect]\nmax_attempts = -3\n\n[[ice.turn]]\nurl = "turn:turn.example.org:3478"\n'
                    'username = "op"\ncredential = "verysecretpw"\n\n'
                    '[[ice.turn]]\nurl = "turn:alice:hunter22pw@relay.example.com"\n')
    env = {"SANDRA_CONFIG": str(path), "SANDRA_TURN_SERVER": "", "REACT_APP_TURN_SERVER": ""}
    r = _cli("config", "show", env=env)
    assert r.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # read-only: nothing moved
    assert "turn:turn.example.org:3478  username=op  credential=****" in r.stdout  # the rest still applies
    assert "ve****" not in r.stdout  # not even the first characters
    everything = r.stdout + r.stderr
    assert "hunter22pw" not in everything and "turn:****@relay.example.com" in r.stderr
    r = _cli("config", "check", env=env)
    assert r.returncode == 1 and "hunter22pw" not in r.stdout + r.stderr
