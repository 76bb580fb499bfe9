"""The TUI's embedded agent, forked first thing in `main()` (issue #23).

`serve` takes about a second to its ready file; forked before Textual, aiortc and the config
model are imported, its start-up runs beside the TUI's instead of after the first paint. The
call layer then takes this agent (CallController(embedded=...)) instead of starting its own,
and starts another as before if it dies.

Whether the call will want it is decided without the config model (pydantic costs 0.1 s):
--backend, else `[backend] url` read straight from the TOML. A file the loader will reject
means defaults, and the default is the embedded agent. A guess that turns out wrong costs
an idle agent that is stopped with the rest (run.py; atexit; see call/embedded.py for SIGKILL).

This module is imported before anything heavy: the standard library, embedded.py, config/paths.py.
"""

from __future__ import annotations

import signal
import tomllib

from sandra_tui.call.embedded import EmbeddedAgent
from sandra_tui.config.paths import config_path

EMBEDDED = "embedded"


def wants_embedded(backend: str | None, config: str | None) -> bool:
    """Whether the TUI's call will use the embedded agent (a cheap guess, see above)."""
    if backend:
        return backend == EMBEDDED
    try:
        data = tomllib.loads(config_path(config).read_text(encoding="utf-8"))
        url = data.get("backend", {}).get("url", EMBEDDED)
    except (OSError, ValueError, AttributeError):  # missing or not TOML: defaults
        return True
    return not isinstance(url, str) or url == EMBEDDED


def _exit_on(signum, _frame) -> None:
    # Until run.py puts its own handlers in place: unwind, so atexit reaps the agent.
    raise SystemExit(128 + signum)


def spawn_early(backend: str | None, config: str | None) -> EmbeddedAgent | None:
    """Fork the embedded agent now if the TUI will want it; returns it (not waited for)."""
    if not wants_embedded(backend, config):
        return None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _exit_on)
    agent = EmbeddedAgent()
    try:
        agent.spawn()
    except OSError:  # the call layer tries again and reports it properly
        agent.kill()
        return None
    return agent
