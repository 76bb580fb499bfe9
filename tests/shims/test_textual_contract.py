"""The Textual internals sandra_tui/shims/textual.py relies on. A failure here names the
version: the shim must be revisited before Textual is upgraded."""

import inspect
from importlib.metadata import version

from textual.app import App
from textual.notifications import Notification, Notifications

from sandra_tui.shims import textual as shim
from sandra_tui.ui.toasts import Toasts

WHO = f"textual {version('textual')} (shim written for {shim.WRITTEN_FOR})"


async def toasts_shown(app, pilot) -> int:
    """How many toasts the rack shows once it has mounted them (a few ticks)."""
    for _ in range(50):
        await pilot.pause(0.02)
        if app.screen.query("Toast"):
            break
    await pilot.pause(0.05)
    return len(app.screen.query("Toast"))


def test_the_internals_are_there_with_the_signatures_the_shim_calls():
    app = App()
    assert isinstance(getattr(app, "_notifications", None), Notifications), f"{WHO}: App._notifications changed"
    assert "refresh" in inspect.signature(App._unnotify).parameters, f"{WHO}: App._unnotify(refresh=) changed"
    assert not inspect.signature(App._refresh_notifications).parameters.keys() - {"self"}, \
        f"{WHO}: App._refresh_notifications() takes arguments now"


async def test_a_toast_is_replaced_in_the_same_tick():
    app = App()
    async with app.run_test(notifications=True) as pilot:
        first = Notification("disk full", "Sandra", "warning", 30)
        shim.replace(app, None, first)
        assert shim.notifications(app) == [first], f"{WHO}: a notification added is not shown at once"
        second = Notification("disk full x2", "Sandra", "warning", 30)
        shim.replace(app, first, second)  # no pause between: the same tick
        assert shim.notifications(app) == [second], f"{WHO}: the replaced toast is still there"
        shown = await toasts_shown(app, pilot)
        assert shown == 1, f"{WHO}: the toast rack shows {shown} toasts"


async def test_a_burst_of_one_notice_is_one_toast_with_a_count():
    app = App()
    async with app.run_test(notifications=True) as pilot:
        toasts = Toasts(app)
        counts = [toasts.show("the microphone vanished", title="Audio") for _ in range(7)]
        assert counts == [1, 2, 3, 4, 5, 6, 7]
        assert [n.message for n in shim.notifications(app)] == ["the microphone vanished x7"]
        assert await toasts_shown(app, pilot) == 1
