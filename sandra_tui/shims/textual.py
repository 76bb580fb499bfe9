"""Textual internals (written against textual==8.2.8), used here only; tests/shims/
test_textual_contract.py fails, naming the version, when they change.

A toast replaced in place: Textual's public API posts a notification (App.notify sends a
Notify message, shown a tick later) and removes them all at once (clear_notifications). The
toast coalescing of sandra_tui/ui/toasts.py needs to remove one toast and add its successor
in the same tick: a burst of identical notices must find the toast it replaces already there,
or each one stacks a toast of its own. That is what App._on_notify and App._unnotify do.
"""

from __future__ import annotations

from textual.notifications import Notification

WRITTEN_FOR = "8.2.8"


def notifications(app) -> list[Notification]:
    """The toasts the app shows now (expired ones dropped)."""
    return list(app._notifications)


def replace(app, old: Notification | None, new: Notification) -> None:
    """Show `new` at once, instead of `old` if that is still shown; one refresh of the rack."""
    if old is not None and old in app._notifications:
        app._unnotify(old, refresh=False)
    app._notifications.add(new)
    app._refresh_notifications()
