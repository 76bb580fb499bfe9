"""aioice internals, used here only (tests/shims/test_aioice_contract.py checks them).

The consent-task race: aioice starts its consent-freshness task at the end of
`Connection.connect()`, once the check list completed. If the connection is closed between the
check list completing and `connect()` resuming (a hang-up in the last milliseconds of ICE:
`connect()` may sit in a 20 ms sleep), the task is created after `close()` and then loops
forever on an empty pair list: one task leaked per such hang-up, on both ends. Measured here:
15 of 15 hang-ups 8-30 ms after the call started leaked one task on each side.
`install()` makes a consent task that starts on a closed connection end at once.

Host candidates on loopback: see `loopback_host_candidates()` below.
"""

from __future__ import annotations

import contextlib
import contextvars

import aioice
import aioice.ice
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


# -- host candidates on loopback ------------------------------------------------------------------
# aioice gathers host candidates on every interface except 127.0.0.1 (`get_host_addresses`, a
# module global read by `Connection.gather_candidates`), so two peers on this machine would
# talk over the LAN address. The global is replaced, on first use, by a function that answers
# 127.0.0.1 only inside `loopback_host_candidates()` (a context variable: the task that gathers,
# and the tasks it starts, see it) and otherwise asks whatever was there before: every other
# connection of the process gathers as it did.
_host_addresses = aioice.ice.get_host_addresses  # aioice's own, taken at import (before any patch)
_previous = _host_addresses
_loopback_only: contextvars.ContextVar[bool] = contextvars.ContextVar("sandra_loopback_only", default=False)


def _scoped_host_addresses(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
    if _loopback_only.get():
        return ["127.0.0.1"] if use_ipv4 else ["::1"]
    return _previous(use_ipv4=use_ipv4, use_ipv6=use_ipv6)


@contextlib.contextmanager
def loopback_host_candidates(enabled: bool = True):
    """Connections that gather inside this block offer only 127.0.0.1 (or ::1) as host
    candidate. Wrap the setLocalDescription that gathers (aiortc gathers there)."""
    if not enabled:
        yield
        return
    _install_scoped()
    token = _loopback_only.set(True)
    try:
        yield
    finally:
        _loopback_only.reset(token)


def loopback_from_here() -> None:
    """For scripts (bench): every connection gathered from the current context on, and from the
    tasks it starts (asyncio.run's included), offers loopback only."""
    _install_scoped()
    _loopback_only.set(True)


def _install_scoped() -> None:
    global _previous
    current = aioice.ice.get_host_addresses
    if current is not _scoped_host_addresses:
        _previous = current
        aioice.ice.get_host_addresses = _scoped_host_addresses


# -- reading a connection -------------------------------------------------------------------------
def nominated_pair(connection, component: int = 1):
    """The nominated CandidatePair of a component (1: RTP and RTCP are muxed), or None."""
    return getattr(connection, "_nominated", {}).get(component)


def stun_protocols(connection) -> list:
    """The connection's StunProtocol objects (one per local candidate socket)."""
    return list(getattr(connection, "_protocols", []))
