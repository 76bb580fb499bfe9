"""`serve --session-max-s N`: the local agent ends each session as OpenAI does at 60 minutes
(`error` session_expired, valid for the SDK's RealtimeErrorEvent, then the peer connection
closes). And the model lifecycle: a shutdown_date within 30 days (or past) is a notice in the
log, in /healthz and in the token reply."""

import asyncio
import datetime as dt
import logging
import subprocess
import time

import aiohttp
import pytest
from openai.types.realtime import RealtimeErrorEvent

from sandra_tui.server.upstream_openai import shutdown_notice
from tests.agent_server import AgentServer, ServeProcess
from tests.fake_openai import STANDARD_KEY, FakeOpenAI
from tests.realtime_schema import validate_server_event
from tests.rtc_client import RawClient, tone
from tests.server.helpers import discard

MAX_S = 2.0


async def test_session_expired_after_n_seconds_then_the_pc_closes(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    server = await AgentServer(tmp_path, session_max_s=MAX_S).start()
    client = RawClient(server.url)
    closed = asyncio.Event()
    try:
        await client.connect()
        await client.wait_for("session.created")
        created_at = client.event_times[-1]

        @client.pc.on("connectionstatechange")
        def _state():
            if client.pc.connectionState in ("closed", "failed"):
                closed.set()

        client.mic.say(tone(1.0))  # a call in use: the session ends all the same
        error = await client.wait_for("error", timeout=MAX_S + 8)
        elapsed = client.event_times[client.events.index(error)] - created_at
        assert isinstance(validate_server_event(error), RealtimeErrorEvent) and client.invalid == []
        assert error["error"]["code"] == "session_expired" and "maximum duration" in error["error"]["message"]
        assert elapsed >= MAX_S - 0.05, elapsed  # never early (the timer starts with session.created)
        await asyncio.wait_for(closed.wait(), 10)  # then the server closes its side
        await server.wait_calls(0)
        assert [e["type"] for e in client.events].count("error") == 1
        print(f"\nsession_expired {elapsed:.2f} s after session.created (max {MAX_S} s)")
    finally:
        await client.close()
        await server.stop()
    assert any("ended by session_expired" in r.getMessage() for r in caplog.records)


def test_serve_refuses_a_session_max_of_zero(tmp_path):
    bad = ServeProcess("--session-max-s", "0")  # refused like any bad setting: exit 2 with a plain line
    out = subprocess.run(bad.args, env=bad.env, capture_output=True, text=True, timeout=30)
    discard(bad)
    assert out.returncode == 2 and "--session-max-s must be more than 0" in out.stderr


async def test_session_max_through_serve_process(tmp_path):
    proc = await asyncio.to_thread(ServeProcess("--session-max-s", "1.5").start)
    client = RawClient(proc.url)
    try:
        await client.connect()
        await client.wait_for("session.created")
        error = await client.wait_for("error", timeout=10)
        assert error["error"]["code"] == "session_expired"
    finally:
        await client.close()
        discard(proc)


@pytest.mark.parametrize("days,warned", [(10, True), (-3, True), (0, True), (30, True), (31, False),
                                         (None, False), ("unknown", False)])
async def test_model_shutdown_notice(tmp_path, caplog, days, warned):
    caplog.set_level(logging.INFO)
    fake = await FakeOpenAI().start()
    if days != "unknown":  # "unknown": GET /v1/models/{model} answers 404
        fake.models["gpt-realtime-2.1"] = None if days is None else (dt.date.today()
                                                                    + dt.timedelta(days=days)).isoformat()
    started = time.monotonic()
    server = await AgentServer(tmp_path, upstream="openai", openai_base_url=fake.url,
                               openai_api_key=STANDARD_KEY).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/healthz") as r:
                health = await r.json()
                assert r.status == 200 and health["status"] == "ok" and health["model"] == "gpt-realtime-2.1"
            async with http.post(server.url + "/api/sandra/token") as r:
                token = await r.json()
        assert ("notice" in health) == warned and ("notice" in token) == warned
        if warned:
            assert health["notice"] == token["notice"] and "gpt-realtime-2.1" in token["notice"]
            assert any(r.levelno == logging.WARNING and "shut" in r.getMessage() for r in caplog.records)
        assert [s.path for s in fake.seen] == ["/v1/models/gpt-realtime-2.1"]
        assert fake.seen[0].auth == f"Bearer {STANDARD_KEY}"
    finally:
        await server.stop()
        await fake.stop()
    assert time.monotonic() - started < 10


async def test_an_unreachable_models_endpoint_is_no_failure(tmp_path):
    server = await AgentServer(tmp_path, upstream="openai", openai_base_url="http://127.0.0.1:9",
                               openai_api_key=STANDARD_KEY, upstream_timeout_s=1).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/healthz") as r:
                assert r.status == 200 and "notice" not in await r.json()
    finally:
        await server.stop()


def test_shutdown_notice_wording():
    today = dt.date(2027, 1, 1)
    assert "was shut down on 2026-12-31" in shutdown_notice("m", dt.date(2026, 12, 31), today)
    assert "in 19 days" in shutdown_notice("m", dt.date(2027, 1, 20), today)
    assert shutdown_notice("m", dt.date(2027, 3, 1), today) is None and shutdown_notice("m", None, today) is None
