"""aioice internals, used here only (tests/shims/test_aioice_contract.py checks them).

The consent-task race: aioice starts its consent-freshness task at the end of
`Connection.connect()`, once the check list completed. If the connection is closed between the
check list completing and `connect()` resuming (a hang-up in the last milliseconds of ICE:
`connect()` may sit in a 20 ms sleep), the task is created after `close()` and then loops
forever on an empty pair list: one task leaked per such hang-up, on both ends. Measured here:
15 of 15 hang-ups 8-30 ms after the call started leaked one task on each side.
`install()` makes a consent task that starts on a closed connection end at once.
"""

from __future__ import annotations

import aioice
from aioice.ice import Connection

_original = None


def install() -> None:
    """Idempotent; process-wide (aioice creates the task itself, so there is no other hook)."""
    global _original
    if _original is not None:
        return
    _original = Connection.query_consent

    async def query_consent(self) -> None:
        if getattr(self, "_closing", False):
            self._query_consent_task = None
            return None
        return await _original(self)

    query_consent.__wrapped__ = _original
    Connection.query_consent = query_consent


def version() -> str:
    return aioice.__version__
