"""Client-side telemetry: rolling stats, batching, backoff, bounds, which thread does the file I/O,
payload limits over a 2-hour call, and how long close() takes; real HTTP on loopback."""

import asyncio
import json
import math
import socket
import threading
import time

import pytest
from aiohttp import web

from sandra_tui.server.metrics import validate
from sandra_tui.telemetry import limits
from sandra_tui.telemetry.spool import Row, SqliteSpool
from sandra_tui.telemetry.stats import RollingStats, summarize
from sandra_tui.telemetry.uploader import CLOSE_GRACE_S, TelemetryUploader
from tests.helpers import serve_routes


class Backend:
    """A metrics endpoint whose answer we choose; every request is kept."""

    def __init__(self):
        self.received: list[tuple[str, dict]] = []  # (Authorization, body)
        self.status = 202
        self.retry_after = None
        self.refuse_keys: set[str] = set()  # answered 401
        self.runner = None
        self.url = ""

    async def handler(self, request):
        auth = request.headers.get("Authorization", "")
        if auth[7:] in self.refuse_keys:
            return web.json_response({"error": {"message": "unknown key"}}, status=401)
        if self.status != 202:
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return web.json_response({"error": {"message": "no"}}, status=self.status, headers=headers)
        self.received.append((auth, await request.json()))
        return web.json_response({"stored": True, "duplicate": False}, status=202)

    async def __aenter__(self):
        self.runner, base = await serve_routes(("POST", "/api/sandra/metrics", self.handler))
        self.url = base + "/api/sandra/metrics"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_summary_shape_and_percentiles():
    s = summarize(range(1, 101))
    assert s == {"count": 100, "avg": 50.5, "min": 1.0, "max": 100.0, "p95": 95.0, "p99": 99.0}


def test_rolling_window_and_validation():
    r = RollingStats(window=100)
    for i in range(250):
        r.add("response_latency", i)
    assert r.summary()["count"] == 100 and r.summary()["min"] == 150
    assert r.total == 250
    for bad in (math.nan, math.inf, -1):
        with pytest.raises(ValueError):
            r.add("x", bad)


def test_client_limits_are_the_servers():
    assert limits.MAX_BODY_BYTES == validate.MAX_BODY_BYTES
    assert limits.MAX_MS == validate.MAX_MS and limits.MAX_NAMES == validate.MAX_NAMES
    assert limits.NAME.pattern == validate.NAME.pattern and limits.SESSION_ID.pattern == validate.SESSION_ID.pattern


async def test_batches_every_ten_with_the_key_of_the_moment(tmp_path):
    async with Backend() as backend:
        key = {"value": "key_one"}
        up = TelemetryUploader(backend.url, token=lambda: key["value"], session_id=lambda: "sess_1", batch_size=10,
                               spool_path=tmp_path / "spool.sqlite3")
        up.start()
        try:
            for i in range(20):
                up.record("response_latency", 100 + i)  # synchronous: returns at once
            key["value"] = "key_two"  # a reconnect renewed the key: later payloads carry the new one
            for i in range(15):
                up.record("response_latency", 100 + i)
            await until(lambda: len(backend.received) >= 3, what="three payloads")
        finally:
            await up.close(deadline_s=1)
        assert [auth for auth, _ in backend.received] == ["Bearer key_one"] * 2 + ["Bearer key_two"] * 2
        first = backend.received[0][1]
        assert first["type"] == "realtime_latency" and first["sessionId"] == "sess_1"
        assert first["metrics"]["count"] == 10 and first["timestamp"].endswith("Z")
        assert up.counts()["sent"] == 4  # the 5 pending samples went out at close


async def test_spool_file_io_never_runs_on_the_event_loop_thread(tmp_path):
    async with Backend() as backend:
        backend.status = 503  # everything is written, retried, kept
        up = TelemetryUploader(backend.url, token=lambda: "k", session_id=lambda: "s", batch_size=1,
                               spool_path=tmp_path / "spool.sqlite3")
        up.start()
        handoff = []
        for i in range(200):
            t = time.perf_counter()
            up.record("ice_connect", i)
            handoff.append(time.perf_counter() - t)
        await until(lambda: len(up.outbox) == 200, what="200 spooled")
        backend.status = 202
        await until(lambda: up.sent == 200, 20, "200 sent")
        await up.close(deadline_s=1)
    io = up.outbox.spool.io_threads
    assert io == {up.worker.thread.ident}, io
    assert threading.get_ident() not in io
    handoff.sort()
    print(f"record()+handoff median {handoff[100] * 1e6:.0f} us, max {handoff[-1] * 1e6:.0f} us")


async def test_401_for_one_key_does_not_hold_back_another(tmp_path):
    """A key the server forgot (a restart without signed keys) waits with backoff; others go on."""
    async with Backend() as backend:
        backend.refuse_keys = {"old_key"}
        spool = SqliteSpool(tmp_path / "spool.sqlite3", 1 << 20)
        spool.open()
        spool.add([Row(json.dumps({"old": i}), backend.url, "old_key", "sess_old", time.time()) for i in range(5)])
        spool.close()
        up = TelemetryUploader(backend.url, token=lambda: "new_key", session_id=lambda: "sess_new", batch_size=1,
                               spool_path=tmp_path / "spool.sqlite3")
        up.start()
        try:
            for i in range(3):
                up.record("token_acquisition", i)
            await until(lambda: up.sent == 3, what="the new call's payloads")
        finally:
            await up.close(deadline_s=0.5)
        assert [auth for auth, _ in backend.received] == ["Bearer new_key"] * 3
        assert up.worker.retries >= 1  # the old key was tried, refused with 401, backed off
    kept = SqliteSpool(tmp_path / "spool.sqlite3", 1 << 20)
    kept.open()
    assert kept.count == 5  # the old rows stay, for their own key, until they are too old
    kept.close()


async def test_definitive_rejection_is_dropped_and_retry_after_is_honoured(tmp_path):
    async with Backend() as backend:
        backend.status = 400
        up = TelemetryUploader(backend.url, token=lambda: "k", session_id=lambda: "s", batch_size=1,
                               spool_path=tmp_path / "s.sqlite3")
        up.start()
        try:
            up.record("x", 1)
            await until(lambda: up.counts()["rejected"] == 1, what="the rejection")
            assert len(up.outbox) == 0
            backend.status, backend.retry_after = 429, 1
            up.record("x", 2)
            await asyncio.sleep(0.3)
            backend.status = 202
            assert backend.received == []
            await until(lambda: len(backend.received) == 1, 5, "the retry after Retry-After")
        finally:
            await up.close(deadline_s=0.5)


async def test_spool_is_bounded_oldest_dropped_and_counted(tmp_path):
    up = TelemetryUploader("http://127.0.0.1:9/api/sandra/metrics", token=lambda: "k", session_id=lambda: "s",
                           batch_size=1, spool_path=tmp_path / "s.sqlite3", spool_max_bytes=20_000)
    up.start()
    for i in range(100):
        up.record("response_latency", i)
    await until(lambda: up.made == 100 and len(up.outbox) < 100 and up.counts()["dropped"] > 0, what="the bound")
    await up.close(deadline_s=0.2)
    assert up.outbox.spool.bytes <= 20_000
    assert up.counts()["dropped"] + up.outbox.spool.count == 100


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


async def test_two_hour_call_on_a_fake_clock_every_payload_accepted(agent_server):
    """A 2-hour call in four connections (70, 10, 25 and 15 minutes). The controller measured
    time_to_first_audio from the previous connection, so after the 70-minute one it reported
    70 minutes: over the server's one-hour limit, and kept by the rolling window it made every
    later payload a 400 (the bug behind 'every payload dropped after an hour'). 40 extra metric
    names exceed the server's 32. Every payload must be inside the server's limits and stored."""
    import aiohttp

    clock = FakeClock()
    session = "sess_two_hours"
    keys: list[str] = []
    async with aiohttp.ClientSession() as http:
        async def new_key():
            # As the client does: the previous key proves the session is ours (the server names it
            # on the first request).
            nonlocal session
            headers = {"Authorization": f"Bearer {keys[-1]}"} if keys else {}
            async with http.post(agent_server.url + "/api/sandra/token", json={"session_id": session},
                                 headers=headers) as r:
                data = await r.json()
                keys.append(data["value"])
                session = data["session_id"]

        bodies: list[bytes] = []
        up = TelemetryUploader(agent_server.url + "/api/sandra/metrics", token=lambda: keys[-1],
                               session_id=lambda: session, batch_size=10, flush_interval_s=30,
                               clock=clock, wall=lambda: clock.now)
        submit = up.worker.submit
        up.worker.submit = lambda row: (bodies.append(row.payload.encode()), submit(row))[1]
        up.start()
        previous_connect = None
        try:
            for minutes in (70, 10, 25, 15):
                await new_key()  # every reconnect gets a key of its own, same session
                up.record("token_acquisition", 120.0)
                up.record("ice_connect", 80.0)
                if previous_connect is not None:
                    up.record("time_to_first_audio", (clock.now - previous_connect) * 1000)
                previous_connect = clock.now
                for step in range(minutes * 12):  # a reply every 5 s
                    clock.now += 5
                    up.record("response_latency", 300.0 + step % 40)
                    up.record(f"custom_metric_{step % 40:02d}", 10.0)
                await asyncio.sleep(0)
            assert clock.now - 1_000_000.0 == 7200
            await until(lambda: up.sent + up.counts()["rejected"] == up.made, 30, "every payload answered")
        finally:
            await up.close(deadline_s=2)
    assert up.made == len(bodies) > 200
    for body in bodies:
        assert len(body) <= validate.MAX_BODY_BYTES
        validate.parse_payload(body)  # raises on anything the server would refuse
        assert len(json.loads(body)["byName"]) <= validate.MAX_NAMES
    counts = up.counts()
    assert counts["rejected"] == 0 and counts["sent"] == counts["made"], counts
    assert counts["refused_samples"] == 1  # the 70-minute "time to first audio"
    print(f"2 h call: {counts['made']} payloads, all stored, largest {max(map(len, bodies))} bytes, "
          f"{counts['refused_samples']} sample over an hour left out")


def black_hole() -> tuple[socket.socket, str]:
    """A port that accepts connections and never answers (the worst case for a post under way)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}/api/sandra/metrics"


@pytest.mark.parametrize("deadline", [0.5, 2.0])
async def test_close_keeps_its_deadline_with_a_backend_that_never_answers(tmp_path, deadline):
    server, url = black_hole()
    try:
        up = TelemetryUploader(url, token=lambda: "k", session_id=lambda: "s", batch_size=1,
                               spool_path=tmp_path / "s.sqlite3", timeout_s=30)
        up.start()
        for i in range(5):
            up.record("x", i)
        await asyncio.sleep(0.2)  # the first post is under way, stuck
        await up.close(deadline_s=deadline)
    finally:
        server.close()
    # The deadline is the worker's; the grace covers closing the file and the session. Polling
    # at 10 ms adds at most a tick or two even on a loaded machine.
    assert up.close_seconds <= deadline + CLOSE_GRACE_S, up.close_seconds
    assert not up.worker.thread.is_alive()
    again = SqliteSpool(tmp_path / "s.sqlite3", 1 << 20)
    again.open()
    assert again.count == 5  # every payload kept for the next run, the cut one included
    again.close()
    print(f"close with a black-hole backend, deadline {deadline}: {up.close_seconds:.3f} s")


async def test_close_never_raises_even_when_everything_fails(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    notices = []
    up = TelemetryUploader(lambda: 1 / 0, token=lambda: 1 / 0, session_id=lambda: "s", batch_size=1,
                           spool_path=blocked / "spool.sqlite3", on_notice=notices.append)
    up.start()
    up.record("x", 1)  # the URL and key callables raise: counted, never raised
    await asyncio.sleep(0.2)
    await up.close(deadline_s=0.5)
    await up.close(deadline_s=0.5)  # twice is fine
    assert len(notices) == 1 and "cannot be written" in notices[0]
