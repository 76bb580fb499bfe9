"""The TUI end to end against the real controller and agent app on loopback."""


from textual.widgets import Input

from sandra_tui.call.call_thread import CallThread
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState
from sandra_tui.call.thread_port import ControllerPort
from sandra_tui.config.model import Config
from sandra_tui.ui.app import SandraApp
from sandra_tui.ui.widgets.call_pane import CallPane
from sandra_tui.ui.widgets.transcript import Transcript


def controller_for(url: str) -> CallController:
    return CallController(Config(backend={"url": url}, ice={"stun": []}, telemetry={"enabled": False}))


async def wait_until(predicate, pilot, timeout=15.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


async def test_connect_type_and_hang_up(agent_server):
    controller = controller_for(agent_server.url)
    app = SandraApp(ControllerPort(controller))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(lambda: controller.state == CallState.CONNECTED, pilot)
        app.query_one(Input).value = "hello from the pilot"
        await pilot.press("enter")
        await wait_until(lambda: len(controller.history) == 2 and controller.history.messages()[1].final, pilot,
                         timeout=20)
        await pilot.pause(0.3)
        transcript = app.query_one(Transcript)
        assert transcript.message_count() == 2
        assert "connected" in app.query_one(CallPane).text()
        await pilot.press("f3")
        assert controller.audio.muted
        await pilot.press("f2")
        await wait_until(lambda: controller.state == CallState.ENDED, pilot)
        # The call's summary line joins the transcript at hang-up.
        await wait_until(lambda: len(controller.history) == 3, pilot)
        assert controller.history.messages()[-1].role == "summary"
        assert controller.history.messages()[-1].content.startswith("Call 00:")
        await pilot.press("f7")  # asks first
        assert len(controller.history) == 3
        await pilot.press("enter")
        await wait_until(lambda: len(controller.history) == 0, pilot)
        await pilot.press("ctrl+q")
    assert agent_server.calls == {}


async def test_the_app_drives_a_controller_on_its_own_thread(agent_server):
    """As `sandra-tui` runs it: the call on its own thread and loop, the app through its port."""
    call = CallThread()
    try:
        controller = call.run(controller_for, agent_server.url)
        app = SandraApp(ControllerPort(controller, call))
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(lambda: controller.state == CallState.CONNECTED, pilot)
            assert controller.supervisor_task.get_loop() is call.loop  # not the app's loop
            app.query_one(Input).value = "hello across threads"
            await pilot.press("enter")
            await wait_until(lambda: len(controller.history) == 2 and controller.history.messages()[1].final,
                             pilot, timeout=20)
            await wait_until(lambda: app.query_one(Transcript).message_count() == 2, pilot)
            assert "connected" in app.query_one(CallPane).text()  # events hopped to the app's loop
            await pilot.press("f3")
            assert controller.audio.muted
            await pilot.press("ctrl+q")
        assert controller.state == CallState.ENDED
    finally:
        call.stop()
    assert agent_server.calls == {}


async def test_transcript_never_shows_more_than_fifty(agent_server):
    controller = controller_for(agent_server.url)
    app = SandraApp(ControllerPort(controller), autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        transcript = app.query_one(Transcript)
        for i in range(500):
            controller.history.add("user", f"question {i}")
            controller.history.add("assistant", f"answer {i}")
            if i % 50 == 0:
                controller._emit_history()  # the port sends a snapshot at its next flush
                await pilot.pause(0.15)
                transcript.sync()
        controller._emit_history()
        await wait_until(lambda: app.port.history_snapshot().revision == controller.history.revision, pilot)
        transcript.sync()
        await pilot.pause(0.2)
        assert transcript.message_count() == 50
        assert "answer 499" in str(transcript.query("Static").last().render())
        await controller.close()


async def test_failed_state_shows_reason_and_retry_hint():
    controller = CallController(Config(backend={"url": "http://127.0.0.1:9"}, ice={"stun": []},
                                       reconnect={"max_attempts": 0}, telemetry={"enabled": False}))
    app = SandraApp(ControllerPort(controller))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(lambda: controller.state == CallState.FAILED, pilot)
        await pilot.pause(0.3)
        text = app.query_one(CallPane).text()
        assert "backend_unreachable" in text and "F2" in text
        await controller.close()


async def test_event_loop_lag_during_a_call_with_the_ui(agent_server, capsys):
    """How late the UI's loop wakes up in a call (here the controller shares it, as in tests)."""
    controller = controller_for(agent_server.url)
    app = SandraApp(ControllerPort(controller))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(lambda: controller.state == CallState.CONNECTED, pilot)
        app.lag.samples.clear()
        for i in range(3):
            app.query_one(Input).value = f"message {i}"
            await pilot.press("enter")
            await pilot.pause(1.0)
        stats = app.loop_lag_stats()
        await controller.close()
    with capsys.disabled():
        print(f"\nevent-loop lag in a call with the TUI: {stats}")
    assert stats["samples"] >= 30
    # Under `stress-ng --cpu 2` the scheduler alone makes single wake-ups 100-200 ms late (p99 203 ms
    # seen), so the tail is checked as a share, not as a p99 of ~60 samples (that is the max): a UI
    # that stalled on its own work would be late on most wake-ups, not on a few.
    late = sum(1 for ms in app.lag.samples if ms > 100)
    assert stats["p50_ms"] < 20 and late <= max(2, stats["samples"] // 20), (stats, late)
