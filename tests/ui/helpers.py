"""Small helpers for the pilot tests."""

from __future__ import annotations

from sandra_tui.shims import textual as textual_shim


def text(widget) -> str:
    """What a widget shows now, as plain text."""
    return str(widget.render())


def notes(app) -> list[str]:
    """Every notification shown so far (title: message)."""
    return [f"{n.title}: {n.message}" for n in textual_shim.notifications(app)]


async def wait_until(predicate, pilot, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not met in time")
