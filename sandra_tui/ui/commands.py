"""Command palette (Ctrl+P) entries: one per action in the key table, only those that apply now
(no "Talk" with push-to-talk off, no "Hang up" with no call)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from sandra_tui.ui.keys import ALL_KEYS


def _entries(app):
    applies = getattr(app, "applies", lambda action: True)
    return [k for k in ALL_KEYS if k.action != "command_palette" and applies(k.action)]


class SandraCommands(Provider):
    async def discover(self) -> Hits:
        for key in _entries(self.app):
            yield DiscoveryHit(key.help, partial(self.app.run_action, key.action), help=key.display)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for key in _entries(self.app):
            score = matcher.match(key.help)
            if score > 0:
                yield Hit(score, matcher.highlight(key.help), partial(self.app.run_action, key.action),
                          text=key.help, help=key.display)
