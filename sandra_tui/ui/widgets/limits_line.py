"""What the API says of the account's budget (`rate_limits.updated`): requests and tokens left
against their limits and when the window resets, counted down here. Hidden until the first
report (our local agent and OpenAI send one at the start of each response); a budget under a
tenth of its limit is shown as a warning, since the next replies may be refused."""

from __future__ import annotations

import time

from textual.content import Content

from sandra_tui.call.events import RateLimits
from sandra_tui.ui.widgets.line import Line

LOW = 0.1


def amount(value) -> str:
    if not isinstance(value, (int, float)):
        return "?"
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.0f}"


class LimitsLine(Line):
    def __init__(self, clock=time.monotonic, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self._limits: tuple = ()
        self._at = 0.0

    def on_mount(self) -> None:
        self.display = False
        self.set_interval(1.0, self._tick)

    def show(self, event: RateLimits | None) -> None:
        """Latest report, or None: hide (no call; the figures belong to a connection that is gone)."""
        self._limits = tuple(event.limits) if event is not None else ()
        self._at = self.clock()
        self.display = bool(self._limits)
        self._paint()

    def _tick(self) -> None:
        if self._limits:
            self._paint()

    def _paint(self) -> None:
        if not self._limits:
            return
        parts: list = [("limits", "$text-muted")]
        reset = None
        for name, remaining, limit, reset_s in self._limits:
            low = isinstance(remaining, (int, float)) and isinstance(limit, (int, float)) and limit > 0 \
                and remaining < LOW * limit
            parts += [("  ", ""), (f"{name or '?'} ", "$text-muted"),
                      (f"{amount(remaining)}/{amount(limit)}", "$warning" if low else "")]
            if isinstance(reset_s, (int, float)):
                reset = reset_s if reset is None else min(reset, reset_s)
        if reset is not None:
            left = max(0.0, reset - (self.clock() - self._at))
            parts += [("  resets in ", "$text-muted"), f"{left:.0f} s"]
        self.update(Content.assemble(*parts))
