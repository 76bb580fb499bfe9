"""Client-side telemetry: rolling stats, batching, spool, recovery; real HTTP on loopback."""

import asyncio
import math

import pytest
from aiohttp import web

from sandra_tui.telemetry.stats import RollingStats, summarize
from sandra_tui.telemetry.uploader import Spool, TelemetryUploader


class Backend:
    """A tiny metrics endpoint we can take down and bring back on the same port."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 202
        self.retry_after = None
        self.runner = None
        self.port = None

    async def handler(self, request):
        if self.status != 202:
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            return web.json_response({"error": {"message": "no"}}, status=self.status, headers=headers)
        self.received.append(await request.json())
        return web.json_response({"stored": True}, status=202)

    async def up(self):
        app = web.Application()
        app.router.add_post("/api/sandra/metrics", self.handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port or 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def down(self):
        await self.runner.cleanup()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/api/sandra/metrics"


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


async def test_batches_every_ten_and_never_blocks(tmp_path):
    backend = Backend()
    await backend.up()
    up = TelemetryUploader(backend.url, session_id=lambda: "sess_1", batch_size=10,
                           spool=Spool(tmp_path / "spool.jsonl", 1 << 20))
    up.start()
    try:
        for i in range(35):
            up.record("response_latency", 100 + i)  # synchronous: returns at once
        for _ in range(100):
            if len(backend.received) >= 3:
                break
            await asyncio.sleep(0.02)
        assert len(backend.received) == 3
        first = backend.received[0]
        assert first["type"] == "realtime_latency" and first["sessionId"] == "sess_1"
        assert set(first["metrics"]) == {"count", "avg", "min", "max", "p95", "p99"}
        assert first["metrics"]["count"] == 10
        assert first["timestamp"].endswith("Z")
    finally:
        await up.close(deadline_s=1)
        await backend.down()
    assert len(backend.received) == 4  # the 5 pending samples went out at close


async def test_backend_down_then_back_loses_nothing(tmp_path):
    backend = Backend()
    await backend.up()
    port = backend.port
    await backend.down()
    spool = Spool(tmp_path / "spool.jsonl", 1 << 20)
    up = TelemetryUploader(f"http://127.0.0.1:{port}/api/sandra/metrics", session_id=lambda: "s", batch_size=5,
                           spool=spool)
    up.start()
    try:
        for i in range(50):
            up.record("token_acquisition", i)
        for _ in range(100):
            if len(spool) >= 10:
                break
            await asyncio.sleep(0.05)
        assert len(spool) == 10  # all ten payloads waiting on disk
        backend.port = port
        await backend.up()
        for _ in range(200):
            if len(backend.received) >= 10:
                break
            await asyncio.sleep(0.05)
        assert len(backend.received) == 10
        assert len(spool) == 0
    finally:
        await up.close(deadline_s=1)
        await backend.down()


async def test_close_spools_what_it_cannot_send_and_next_run_sends_it(tmp_path):
    spool = Spool(tmp_path / "spool.jsonl", 1 << 20)
    up = TelemetryUploader("http://127.0.0.1:9/api/sandra/metrics", batch_size=100, spool=spool)
    up.start()
    for i in range(7):
        up.record("ice_connect", i)
    await up.close(deadline_s=0.5)
    assert len(spool) == 1
    backend = Backend()
    await backend.up()
    again = TelemetryUploader(backend.url, spool=spool)
    again.start()
    try:
        for _ in range(100):
            if backend.received:
                break
            await asyncio.sleep(0.02)
        assert backend.received[0]["metrics"]["count"] == 7
    finally:
        await again.close(deadline_s=0.5)
        await backend.down()


async def test_retry_after_is_honoured(tmp_path):
    backend = Backend()
    backend.status, backend.retry_after = 429, 1
    await backend.up()
    up = TelemetryUploader(backend.url, batch_size=1, spool=Spool(tmp_path / "s.jsonl", 1 << 20))
    up.start()
    try:
        up.record("x", 1)
        await asyncio.sleep(0.3)
        backend.status = 202
        assert backend.received == []
        for _ in range(100):
            if backend.received:
                break
            await asyncio.sleep(0.05)
        assert len(backend.received) == 1
    finally:
        await up.close(deadline_s=0.5)
        await backend.down()


def test_spool_is_bounded(tmp_path):
    spool = Spool(tmp_path / "s.jsonl", 2000)
    for i in range(100):
        spool.append([{"i": i, "pad": "x" * 50}])
    assert (tmp_path / "s.jsonl").stat().st_size <= 2000
    kept = spool.take(1000)
    assert kept[-1]["i"] == 99  # the newest survive
