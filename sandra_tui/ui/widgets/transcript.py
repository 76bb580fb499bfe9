"""The conversation, drawn from the port's history snapshots (the call's history, capped at 50).

It polls the latest snapshot from the screen's repaint timer instead of reacting to every
streaming delta, so a fast reply costs a few repaints a second, not one per delta. A snapshot
keeps the object of every message that did not change, so only the views whose message changed
are updated (while Sandra speaks: the last one), and only those whose height changed ask for a
layout.
"""

from __future__ import annotations

from typing import Callable

from textual.containers import VerticalScroll
from textual.widgets import Static

from sandra_tui.call.port import HistorySnapshot
from sandra_tui.ui.widgets.message_view import MessageView

EMPTY = "Nothing said yet. Talk, or type below and press Enter."


def size(snapshot: HistorySnapshot) -> str:
    """What the history holds against its memory cap, e.g. "3.1 KB of 100 MB"."""
    mb = snapshot.memory_mb
    held = f"{mb * 1024:.1f} KB" if mb < 1 else f"{mb:.1f} MB"
    return f"{held} of {snapshot.max_bytes / 1024 / 1024:g} MB"


class Transcript(VerticalScroll):
    def __init__(self, source: Callable[[], HistorySnapshot], **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = source  # the port's history_snapshot
        self._snapshot: HistorySnapshot | None = None
        self._views: dict[int, MessageView] = {}  # message key -> its view, in history order
        self.border_title = "Transcript"
        # Following the newest message until the operator scrolls up. Kept as a flag, not read
        # from the position at each sync: after the window shrinks the old position is no
        # longer the end, and new messages would land off screen.
        self.following = True

    def compose(self):
        yield Static(EMPTY, id="transcript-empty")

    def on_mount(self) -> None:
        self.sync()

    def sync(self, force: bool = False) -> None:
        snapshot = self.source()
        if not force and snapshot is self._snapshot:
            return
        self._snapshot = snapshot
        follow = self.following
        messages = snapshot.messages
        alive = {m.key for m in messages}
        views: dict[int, MessageView] = {}
        for key, view in self._views.items():
            if key in alive:
                views[key] = view
            else:
                view.remove()  # trimmed from the history (cap, memory, clear)
        new = []
        grew = False
        for message in messages:  # the history only appends, so new messages go at the end
            view = views.get(message.key)
            if view is None:
                views[message.key] = view = MessageView(message)
                new.append(view)
            elif view.message is not message:  # unchanged messages keep their snapshot object
                layouts = view.layouts
                view.show(message)
                grew = grew or view.layouts != layouts
        self._views = views
        mounted = self.mount_all(new) if new else None
        if follow and (new or grew):
            self.call_later(self._follow, mounted)
        empty = self.query_one("#transcript-empty")
        if empty.display == bool(messages):
            empty.display = not messages
        subtitle = f"{len(messages)}/{snapshot.max_messages} messages · {size(snapshot)}"
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle

    async def _follow(self, mounted) -> None:
        if mounted is not None:
            await mounted  # scroll once the new messages are laid out, or the end is the old end
        self.scroll_end(animate=False, immediate=True)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new < old and new < self.max_scroll_y - 1:
            self.following = False  # the operator scrolled up: stay put
        elif new >= self.max_scroll_y - 1:
            self.following = True  # back at the end: follow again

    def on_resize(self) -> None:
        if self.following:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)

    def mark_interrupted(self) -> None:
        """Sandra's reply was stopped: the newest reply still streaming shows "(interrupted)"
        and loses its cursor, even when the server never says which item it cut."""
        for view in reversed(list(self._views.values())):
            if view.message.role == "assistant":
                if not view.message.final or view.message.status == "interrupted":
                    view.interrupted = True
                    view.sync()
                return

    def message_count(self) -> int:
        return len(self._views)
