"""The main screen with the fake controller: every key path, events in, errors out."""

import time

import pytest
from textual.widgets import Input

from sandra_tui.call.events import (
    AudioLevels,
    CallState,
    DevicesChanged,
    ErrorEvent,
    Notice,
    Quality,
    Speech,
    StateChanged,
)
from sandra_tui.ui.screens.error import ErrorScreen
from sandra_tui.ui.screens.help import HelpScreen
from sandra_tui.ui.screens.main import MainScreen
from sandra_tui.ui.widgets.call_pane import CallPane
from sandra_tui.ui.widgets.call_status import CallStatus
from sandra_tui.ui.widgets.level_meter import LevelMeter
from sandra_tui.ui.widgets.message_view import MessageView
from sandra_tui.ui.widgets.mic_status import MicStatus
from sandra_tui.ui.widgets.quality_line import QualityLine
from sandra_tui.ui.widgets.transcript import Transcript
from tests.ui.fake_controller import FakeController
from tests.ui.helpers import notes, text, wait_until
from tests.ui.scenes import START, FrozenClock, make_app


async def test_every_call_key_works_while_typing():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        field = app.query_one("#message", Input)
        assert field.has_focus
        await pilot.press("h", "i")
        await pilot.press("f2")
        assert c.state == CallState.CONNECTED and "retry" in c.commands
        await pilot.press("f3")
        assert c.audio.muted
        assert "muted" in text(app.query_one(MicStatus))
        await pilot.press("f3", "f4")
        assert c.audio.push_to_talk and not c.audio.muted
        await pilot.press("f5")
        assert c.audio.talking
        assert "talking" in text(app.query_one(MicStatus))
        await pilot.press("escape")
        assert c.commands[-1] == "cancel_response"
        await pilot.press("f2")
        assert c.state == CallState.ENDED and c.commands[-1] == "hangup"
        assert field.value == "hi" and field.has_focus  # the keys never landed in the input
        await pilot.press("ctrl+q")
    assert c.commands[-2:] == ["hangup", "close"] and c.closed


async def test_enter_sends_and_the_transcript_shows_it():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        await pilot.press(*"hello Sandra", "enter")
        assert c.commands[-1] == "send:hello Sandra"
        assert app.query_one("#message", Input).value == ""
        transcript = app.query_one(Transcript)
        assert transcript.message_count() == 1
        await pilot.press("f7")
        await pilot.press("enter")  # F7 asks first
        await pilot.pause()
        assert len(c.history) == 0 and transcript.message_count() == 0


async def test_a_failed_send_keeps_the_text_and_says_why():
    c = FakeController(send_error="the data channel is closed")
    app = make_app(c)
    async with app.run_test(notifications=True) as pilot:
        await pilot.press(*"keep me", "enter")
        assert app.query_one("#message", Input).value == "keep me"
        assert any("the data channel is closed" in n for n in notes(app))


async def test_streaming_deltas_grow_one_message():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        item = c.next_id()
        for word in ("Hello ", "there, ", "operator"):
            c.stream("assistant", item, word)
        app.main.repaint()
        await pilot.pause()
        views = list(app.query(MessageView))
        assert len(views) == 1 and "Hello there, operator ▍" in text(views[0])
        c.finish("assistant", item, "Hello there, operator.")
        app.main.repaint()
        assert text(views[0]) == "Sandra  Hello there, operator."
        assert "You" not in text(views[0])


async def test_five_hundred_exchanges_never_show_more_than_fifty():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        transcript = app.query_one(Transcript)
        for i in range(500):
            c.say("user", f"question {i}")
            c.say("assistant", f"answer {i}")
            if i % 25 == 0:
                app.main.repaint()
                await pilot.pause()
                assert transcript.message_count() <= 50
        app.main.repaint()
        await pilot.pause(0.1)
        assert transcript.message_count() == 50 == len(c.history)
        assert len(app.query(MessageView)) == 50
        assert "answer 499" in text(app.query(MessageView).last())
        assert "question 475" in text(app.query(MessageView).first())
        assert transcript.border_subtitle.startswith("50/50 messages")


async def test_the_transcript_follows_unless_scrolled_up():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        transcript = app.query_one(Transcript)
        for i in range(20):
            c.say("user", f"line {i}")
        app.main.repaint()
        # Waits for what it checks rather than a fixed pause: on a loaded machine the layout after
        # the mount can take longer than 0.1 s.
        await wait_until(lambda: transcript.max_scroll_y > 0 and transcript.scroll_y == transcript.max_scroll_y, pilot)
        transcript.focus()
        await pilot.press("home")  # the operator scrolls up to read
        await wait_until(lambda: transcript.scroll_y == 0, pilot)
        c.say("assistant", "a new answer")
        app.main.repaint()
        await wait_until(lambda: transcript.message_count() == 21, pilot)
        await pilot.pause(0.2)  # a follow would have been scheduled by now
        assert transcript.scroll_y == 0  # the operator is reading: stay put
        await pilot.press("end")
        await wait_until(lambda: transcript.scroll_y == transcript.max_scroll_y, pilot)
        c.say("assistant", "and another one")
        app.main.repaint()
        await wait_until(lambda: transcript.message_count() == 22, pilot)
        # back at the end: follow again
        await wait_until(lambda: transcript.scroll_y == transcript.max_scroll_y > 0, pilot)


async def test_reconnecting_counts_down_and_the_timer_runs():
    clock = FrozenClock()
    c = FakeController()
    app = make_app(c, clock)
    async with app.run_test() as pilot:
        c.emit(StateChanged(CallState.CONNECTED))
        clock.now = START + 65
        app.main.repaint()
        status = app.query_one(CallStatus)
        assert "connected" in text(status) and "01:05" in text(status)
        c.emit(StateChanged(CallState.RECONNECTING, reason="ice_failed", attempt=2, max_attempts=5, delay_ms=2000))
        assert "attempt 2/5 in 2.0 s (ice_failed)" in text(status)
        clock.now += 1.5
        app.main.repaint()
        assert "attempt 2/5 in 0.5 s (ice_failed)" in text(status)
        clock.now += 5
        app.main.repaint()
        assert "in 0.0 s" in text(status)
        c.emit(StateChanged(CallState.FAILED, reason="ice_failed"))
        assert "failed: ice_failed" in text(status) and "F2" in text(status)
        assert "01:" not in text(status)
        c.emit(StateChanged(CallState.FAILED, reason="credentials_rejected", retryable=False))
        assert "credentials" in text(status)
        await pilot.pause()


async def test_heavy_streams_wait_for_the_repaint_timer():
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        c.emit(StateChanged(CallState.CONNECTED))
        meter = app.query_one("#level-in", LevelMeter)
        for level in range(-60, -10):
            c.emit(AudioLevels(float(level), -40.0))
        c.emit(Quality(30.0, 2.0, 0, 100, 0.0, 4.4))
        assert meter.dbfs == -120.0  # stored, not painted: one repaint per frame, not per event
        await wait_until(lambda: meter.dbfs == -11.0, pilot, timeout=2)
        assert "MOS 4.4" in text(app.query_one(QualityLine))
        assert "-11 dBFS" in text(meter)


async def test_speech_devices_and_notices():
    c = FakeController()
    app = make_app(c)
    async with app.run_test(notifications=True) as pilot:
        c.emit(StateChanged(CallState.CONNECTED))
        c.emit(Speech("reply_started"))
        assert "Sandra is speaking" in text(app.query_one(CallStatus))
        c.emit(DevicesChanged("Built-in Microphone", "HDMI Output", "USB Headset was unplugged"))
        c.emit(Notice("config moved aside"))
        await pilot.pause()
        pane = app.query_one(CallPane).text()
        assert "HDMI Output" in pane and "unplugged" in pane
        assert any("unplugged" in n for n in notes(app)) and any("config moved aside" in n for n in notes(app))


async def test_errors_are_notifications_or_a_dialog_never_a_traceback():
    c = FakeController()
    app = make_app(c)
    async with app.run_test(notifications=True) as pilot:
        c.emit(ErrorEvent("Sandra: the response was cut short", "response_failed"))
        await pilot.pause()
        assert any("cut short" in n for n in notes(app))
        assert isinstance(app.screen, MainScreen)
        c.emit(ErrorEvent("the backend refused our key (401)", "credentials_rejected", fatal=True))
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)
        dialog = app.screen.query_one("#error-hint")
        assert "OPENAI_API_KEY" in text(dialog)
        await pilot.press("escape")  # closes the dialog; does not reach "stop Sandra"
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and "cancel_response" not in c.commands


async def test_a_display_bug_does_not_break_the_controller(monkeypatch):
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        def broken(event):
            raise RuntimeError("boom")

        monkeypatch.setattr(app.main, "take", broken)
        c.emit(StateChanged(CallState.CONNECTED))  # must not raise into the controller
        await pilot.pause()


async def test_a_failing_command_is_a_notification(monkeypatch):
    c = FakeController()
    app = make_app(c)

    async def refuse():
        raise OSError("no route to the backend")

    monkeypatch.setattr(c, "retry", refuse)
    async with app.run_test(notifications=True) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        assert any("Calling failed: no route to the backend" in n for n in notes(app))


async def test_help_lists_every_key_and_esc_closes_it():
    from sandra_tui.ui.keys import ALL_KEYS

    c = FakeController()
    app = make_app(c)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        shown = "\n".join(text(s) for s in app.screen.query("Static"))
        for key in ALL_KEYS:
            assert key.display in shown and key.help in shown
        await pilot.press("f1")  # F1 again closes it too
        assert isinstance(app.screen, MainScreen)
        await pilot.press("f1", "escape")
        assert isinstance(app.screen, MainScreen) and "cancel_response" not in c.commands


@pytest.mark.parametrize("query, then, check", [
    ("mute", (), lambda c: c.audio.muted),
    ("clear the transcript", ("enter",), lambda c: "clear_history" in c.commands),  # confirmed
    ("push-to-talk", (), lambda c: c.audio.push_to_talk),
])
async def test_command_palette_runs_actions(query, then, check):
    c = FakeController()
    app = make_app(c)
    async with app.run_test() as pilot:
        c.say("user", "something to clear")
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*query)
        await wait_until(lambda: app.screen.query("CommandList").first().option_count > 0, pilot)
        await pilot.press("enter")
        await pilot.pause()
        if then:
            await pilot.press(*then)
        await wait_until(lambda: check(c), pilot)
        assert isinstance(app.screen, MainScreen)


async def test_command_palette_has_every_action():
    from sandra_tui.ui.commands import SandraCommands
    from sandra_tui.ui.keys import ALL_KEYS

    app = make_app()
    async with app.run_test():
        provider = SandraCommands(app.screen)
        hits = [hit async for hit in provider.discover()]
        # Idle, push-to-talk off: what does not apply now is not offered.
        not_now = {"hang_up", "talk", "cancel_reply", "record", "command_palette"}
        assert {h.text for h in hits} == {k.help for k in ALL_KEYS if k.action not in not_now}
        for key in ALL_KEYS:
            assert key.action == "command_palette" or hasattr(app, f"action_{key.action}")


async def test_works_at_80x24_and_120x40():
    for size in ((80, 24), (120, 40)):
        c = FakeController()
        app = make_app(c)
        async with app.run_test(size=size) as pilot:
            c.emit(StateChanged(CallState.RECONNECTING, reason="ice_failed", attempt=2, max_attempts=5,
                                delay_ms=2000))
            app.main.repaint()
            await pilot.pause()
            for widget in ("#call", "#transcript", "#latency", "#message"):
                region = app.query_one(widget).region
                assert region.height > 0 and region.right <= size[0] and region.bottom <= size[1]
            assert app.query_one("#transcript").region.height >= (6 if size == (80, 24) else 20)
            assert "(ice_failed)" in text(app.query_one(CallStatus))


async def test_loop_lag_monitor_reports():
    c = FakeController()
    from sandra_tui.ui.app import SandraApp

    app = SandraApp(c, autostart=True)
    async with app.run_test() as pilot:
        # Samples come every 50 ms once the app is up; how soon it is up depends on the machine
        # (stress-ng beside it delayed the first paint past a fixed 0.4 s wait), so wait for them.
        deadline = time.monotonic() + 10
        while app.loop_lag_stats()["samples"] < 3 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        stats = app.loop_lag_stats()
        assert stats["samples"] >= 3
        assert 0 <= stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"]
        assert c.state == CallState.CONNECTED  # autostart ran once the screen was up
