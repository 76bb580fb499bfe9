"""What a frame costs while Sandra speaks and while nothing happens: only the widget whose data
changed is touched, and a layout only when a size changed (issue #21: the TUI's own CPU was
mostly layouts, py-spy in BENCHMARKS.md)."""

from sandra_tui.call.events import AudioLevels, CallState, StateChanged
from sandra_tui.ui.screens.main import MainScreen
from sandra_tui.ui.widgets.call_status import CallStatus
from sandra_tui.ui.widgets.message_view import MessageView
from sandra_tui.ui.widgets.mic_status import MicStatus
from sandra_tui.ui.widgets.transcript import Transcript
from tests.ui.fake_controller import FakeController
from tests.ui.helpers import wait_until
from tests.ui.scenes import make_app

DELTAS = 300


async def test_a_streaming_reply_updates_its_own_view_and_lays_out_only_when_it_grows_a_line():
    c = FakeController()
    app = make_app(c)
    async with app.run_test(size=(80, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, MainScreen)
        for i in range(24):
            c.say("user", f"question {i}")
            c.say("assistant", f"answer {i}")
        screen.repaint()
        await pilot.pause()
        transcript = app.query_one(Transcript)
        old = list(transcript.query(MessageView))
        assert len(old) == 48
        before = [v.layouts for v in old]
        c.stream("assistant", "item_reply", "Sure")
        screen.repaint()
        await pilot.pause()
        streaming = transcript.query(MessageView).last()
        start = streaming.layouts
        for i in range(DELTAS):
            c.stream("assistant", "item_reply", f" w{i}")
            screen.repaint()  # a frame after every delta: the worst case
        await pilot.pause()
        grown = streaming.layouts - start
        lines = streaming.size.height
        print(f"\n{DELTAS} deltas: {grown} layouts of the streaming view, {lines} lines; "
              f"the 48 others: {sum(v.layouts for v in old) - sum(before)} layouts")
        assert [v.layouts for v in old] == before  # the other 48 messages: untouched
        assert streaming.message.content.endswith(f" w{DELTAS - 1}")
        assert grown <= lines + 1 < DELTAS / 4  # about one layout per line it grew, not per delta


async def test_an_idle_call_sets_no_text_between_the_timer_seconds():
    c = FakeController()
    app = make_app(c)
    async with app.run_test(size=(80, 30)) as pilot:
        c.emit(StateChanged(CallState.CONNECTED))
        screen = app.screen
        status, mic = app.query_one(CallStatus), app.query_one(MicStatus)
        screen.repaint()
        await pilot.pause()
        shown = (status._shown, mic._shown)
        updates = []
        original = CallStatus.update

        def counting(self, *args, **kwargs):
            updates.append(args)
            return original(self, *args, **kwargs)

        status.update = counting.__get__(status)
        for _ in range(40):  # 5 s of frames; the FrozenClock does not move
            c.emit(AudioLevels(-120.0, -120.0))  # silence: the meters stay as they are
            screen.repaint()
        await pilot.pause()
        assert updates == [] and (status._shown, mic._shown) == shown
        app.clock.now += 1.0
        screen.repaint()
        assert len(updates) == 1  # the timer's next second
        await wait_until(lambda: "00:01" in str(status.render()), pilot)
