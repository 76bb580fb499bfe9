"""One toast per distinct message: a repeat within the window updates a count ("... x7")
instead of stacking another toast (a device that keeps failing must not bury the screen).
Replacing a toast in the same tick needs Textual's internals: sandra_tui/shims/textual.py."""

from __future__ import annotations

import re
import time

from textual.notifications import Notification

from sandra_tui.config.urls import mask_url_credentials
from sandra_tui.secrets import redact
from sandra_tui.shims import textual as textual_shim

WINDOW_S = 30.0
_COUNTED = re.compile(r" x\d+$")


def clean(text: str) -> str:
    """Every text the UI shows from elsewhere: registered secrets and ICE URL credentials masked."""
    return mask_url_credentials(redact(str(text)))


class Toasts:
    def __init__(self, app, window_s: float = WINDOW_S, clock=time.monotonic) -> None:
        self.app = app
        self.window_s = window_s
        self.clock = clock
        self._shown: dict[tuple[str, str, str], tuple[Notification, int, float]] = {}

    def show(self, message: str, *, title: str = "", severity: str = "information", timeout: float = 8) -> int:
        """Show `message` (masked); returns how many times it was shown within the window."""
        message = clean(message)
        # The audio engine coalesces too and sends "... x31": same condition, same toast.
        base = _COUNTED.sub("", message)
        key = (title, severity, base)
        now = self.clock()
        old = self._shown.get(key)
        count, replaced = 1, None
        if old is not None and now - old[2] <= self.window_s:
            count, replaced = old[1] + 1, old[0]
        for stale in [k for k, (_, _, at) in self._shown.items() if now - at > self.window_s]:
            del self._shown[stale]
        text = message if message != base or count == 1 else f"{base} x{count}"
        notification = Notification(text, title, severity, timeout, markup=False)
        self._shown[key] = (notification, count, now)
        # Added at once, not posted: a burst of identical notices in one tick must find the
        # toast it replaces already there.
        textual_shim.replace(self.app, replaced, notification)
        return count
