"""The aioice internals sandra_tui/shims/aioice.py relies on. A failure here names the version:
the shim must be revisited before aioice is upgraded."""

import asyncio
import inspect

from aioice.ice import Connection

from sandra_tui.shims import aioice as shim

WHO = f"aioice {shim.version()}"


async def test_a_closed_connection_has_the_attributes_the_shim_reads():
    conn = Connection(ice_controlling=True, components=1)
    assert hasattr(conn, "_query_consent_task"), f"{WHO}: Connection._query_consent_task is gone"
    assert inspect.iscoroutinefunction(getattr(Connection.query_consent, "__wrapped__", Connection.query_consent)), \
        f"{WHO}: Connection.query_consent is no longer a coroutine"
    await conn.close()
    assert getattr(conn, "_closing", None) is True, f"{WHO}: close() no longer sets Connection._closing"


async def test_a_consent_task_started_after_close_ends_at_once():
    shim.install()
    shim.install()  # idempotent
    conn = Connection(ice_controlling=True, components=1)
    conn.remote_password = "x" * 22
    await conn.close()
    task = asyncio.ensure_future(conn.query_consent())  # what connect() does when it resumes late
    await asyncio.wait_for(task, 1.0)
    assert task.done() and conn._query_consent_task is None
