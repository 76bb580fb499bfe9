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


def test_gathering_reads_the_module_global_the_shim_replaces():
    import aioice.ice

    assert callable(getattr(aioice.ice, "get_host_addresses", None)), f"{WHO}: aioice.ice.get_host_addresses is gone"
    assert list(inspect.signature(shim._host_addresses).parameters) == ["use_ipv4", "use_ipv6"], \
        f"{WHO}: get_host_addresses takes other arguments"
    assert "get_host_addresses" in Connection.gather_candidates.__code__.co_names, \
        f"{WHO}: Connection.gather_candidates no longer calls get_host_addresses"


async def test_loopback_candidates_only_inside_the_block_and_only_for_its_task(monkeypatch):
    import aioice.ice

    monkeypatch.undo()  # conftest pins every test to 127.0.0.1 process-wide: see the real scoping
    own = shim._host_addresses(use_ipv4=True, use_ipv6=False)
    assert "127.0.0.1" not in own  # what makes the shim needed: aioice skips loopback

    async def hosts(pinned: bool, wait: asyncio.Event | None = None) -> set[str]:
        conn = Connection(ice_controlling=True, components=1, use_ipv6=False)
        try:
            with shim.loopback_host_candidates(pinned):
                if wait is not None:
                    await wait.wait()  # the other task gathers while this one is inside the block
                await conn.gather_candidates()
            return {c.host for c in conn.local_candidates if c.type == "host"}
        finally:
            await conn.close()

    started = asyncio.Event()
    inside = asyncio.ensure_future(hosts(True, started))
    await asyncio.sleep(0)
    outside = await hosts(False)
    started.set()
    assert await inside == {"127.0.0.1"}
    assert outside == set(own)
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == own  # after the block: aioice's answer


def test_a_script_pins_loopback_for_what_asyncio_run_starts(monkeypatch):
    """bench/: loopback_from_here() before asyncio.run covers the run's own connections."""
    import contextvars

    monkeypatch.undo()  # without conftest's process-wide pin
    assert "127.0.0.1" not in shim._host_addresses(use_ipv4=True, use_ipv6=False)

    def script() -> set[str]:
        shim.loopback_from_here()

        async def gather() -> set[str]:
            conn = Connection(ice_controlling=True, components=1, use_ipv6=False)
            try:
                await conn.gather_candidates()
                return {c.host for c in conn.local_candidates if c.type == "host"}
            finally:
                await conn.close()

        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(gather())
        finally:
            loop.close()

    assert contextvars.copy_context().run(script) == {"127.0.0.1"}  # a context of its own: nothing leaks
    assert shim._loopback_only.get() is False
