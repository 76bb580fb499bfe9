"""Closing the SQLite store while a query still runs in its worker thread (its awaiting task was
cancelled: the health check's timeout, a client that went away) waits for that query instead of
closing the connection under it (a SIGSEGV in sqlite3, seen once in CI under stress-ng)."""

import asyncio

import pytest

from sandra_tui.server.metrics.storage import SqliteStorage, StorageError


async def test_close_waits_for_a_query_in_flight_then_queries_are_a_storage_error(tmp_path):
    storage = SqliteStorage(tmp_path / "m.db")
    await storage.start()
    assert await storage.schema_version() >= 1
    storage._lock.acquire()  # stands for a query running in a worker thread right now
    try:
        pending = asyncio.create_task(storage.schema_version())
        await asyncio.sleep(0.05)
        pending.cancel()  # its task is gone; its thread is still waiting to run
        closing = asyncio.create_task(storage.close())
        await asyncio.sleep(0.3)
        assert not closing.done() and storage._conn is not None  # close waits for the query
    finally:
        storage._lock.release()
    await asyncio.wait_for(closing, 10)
    assert storage._conn is None
    with pytest.raises(StorageError, match="closed"):
        await storage.schema_version()
