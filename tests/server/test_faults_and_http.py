"""Faults switched on and off during a call; HTTP bad input; clean-up; serve as a process."""

import asyncio
import gc
import json
import time

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.agent_server import ServeProcess
from tests.helpers import serve_routes
from tests.rtc_client import RawClient


async def connected_client(server) -> RawClient:
    c = RawClient(server.url)
    await c.connect()
    await c.wait_for("session.created")
    return c


async def inbound_packets(c: RawClient) -> int:
    stats = await c.pc.getStats()
    return sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp")


async def test_media_stopped_then_resumed(agent_server):
    c = await connected_client(agent_server)
    try:
        await asyncio.sleep(0.3)
        assert await inbound_packets(c) > 5
        await agent_server.faults(media_stopped=True)
        await asyncio.sleep(0.2)
        before = await inbound_packets(c)
        await asyncio.sleep(0.5)
        assert await inbound_packets(c) - before <= 1
        await agent_server.faults(media_stopped=False)
        await asyncio.sleep(0.5)
        assert await inbound_packets(c) - before > 10
        assert len(agent_server.calls) == 1
    finally:
        await c.close()


async def test_path_dead_silences_everything(agent_server):
    c = await connected_client(agent_server)
    try:
        await agent_server.faults(path_dead=True)
        n = len(c.events)
        c.send({"type": "response.create"})
        await asyncio.sleep(0.8)
        assert len(c.events) == n  # no data-channel traffic comes back either
        await agent_server.faults(path_dead=False)
        await c.wait_for("response.created", after=n)
    finally:
        await c.close()


async def test_close_pc_and_close_dc(agent_server):
    c = await connected_client(agent_server)
    closed = asyncio.Event()
    c.pc.on("connectionstatechange", lambda: c.pc.connectionState == "closed" and closed.set())
    assert await agent_server.action("close_pc") == 1
    await asyncio.wait_for(closed.wait(), 10)
    await agent_server.wait_calls(0)
    await c.close()

    c = await connected_client(agent_server)
    dc_closed = asyncio.Event()
    c.dc.on("close", dc_closed.set)
    assert await agent_server.action("close_dc") == 1
    await asyncio.wait_for(dc_closed.wait(), 10)
    await c.close()


@pytest.mark.parametrize("status", [401, 429, 500])
async def test_token_faults(agent_server, status):
    await agent_server.faults(token_status=status, retry_after_s=3)
    async with aiohttp.ClientSession() as http:
        async with http.post(agent_server.url + "/api/sandra/token") as r:
            assert r.status == status
            assert "error" in await r.json()
            if status == 429:
                assert r.headers["Retry-After"] == "3"
        await agent_server.faults(token_status=None)
        async with http.post(agent_server.url + "/api/sandra/token") as r:
            assert r.status == 200


async def test_answer_delay_rtp_drop_and_jitter(agent_server):
    await agent_server.faults(answer_delay_ms=400)
    started = time.monotonic()
    c = await connected_client(agent_server)
    assert time.monotonic() - started >= 0.4
    try:
        await agent_server.faults(answer_delay_ms=0, rtp_drop=0.5, rtp_jitter_ms=30, seed=1)
        before = await inbound_packets(c)
        await asyncio.sleep(1.0)
        got = await inbound_packets(c) - before
        assert 10 < got < 40  # ~50 packets sent in 1 s, about half dropped
        await agent_server.faults(rtp_drop=0.0, rtp_jitter_ms=0)
        before = await inbound_packets(c)
        await asyncio.sleep(1.0)
        assert await inbound_packets(c) - before >= 40
    finally:
        await c.close()


async def test_answer_in_openai_docs_shape(agent_server):
    await agent_server.faults(answer_shape="openai_docs")
    async with aiohttp.ClientSession() as http:
        async with http.post(agent_server.url + "/api/sandra/token") as r:
            token = await r.json()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.createDataChannel("oai-events")
            pc.addTransceiver("audio", direction="sendrecv")
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(token["realtime_url"], data=pc.localDescription.sdp, headers={
                    "Authorization": f"Bearer {token['value']}", "Content-Type": "application/sdp"}) as r:
                answer = await r.text()
        finally:
            await pc.close()
    assert answer.count("a=ice-ufrag") == 1


async def test_faults_api_rejects_bad_input(agent_server):
    async with aiohttp.ClientSession() as http:
        for body in ({"rtp_drop": 2}, {"bogus": 1}, {"token_status": 418}, {"action": "explode"}):
            async with http.post(agent_server.url + "/_faults", json=body) as r:
                assert r.status == 400, body
                assert "error" in await r.json()


async def test_http_bad_input(agent_server):
    async with aiohttp.ClientSession() as http:
        async with http.post(agent_server.url + "/api/sandra/token") as r:
            key = (await r.json())["value"]
        calls = agent_server.url + "/v1/realtime/calls"
        auth = {"Authorization": f"Bearer {key}"}
        cases = [
            ({}, "application/sdp", b"v=0\r\n", 401),
            ({"Authorization": "Bearer ek_forged"}, "application/sdp", b"v=0\r\n", 401),
            (auth, "text/plain", b"v=0\r\n", 415),
            (auth, "application/sdp", b"hello", 400),
            (auth, "application/sdp", b"v=0\r\nm=garbage\r\n", 400),
            (auth, "application/sdp", b"v=0\r\n" + b"a=x\r\n" * 20000, 413),
        ]
        for headers, ctype, body, status in cases:
            async with http.post(calls, data=body, headers={**headers, "Content-Type": ctype}) as r:
                assert r.status == status, (status, await r.text())
                assert "error" in await r.json(content_type=None)
        async with http.post(agent_server.url + "/api/sandra/token", data=b"{bad",
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
        async with http.get(agent_server.url + "/nope") as r:
            assert r.status == 404 and "error" in await r.json()
        async with http.post(calls + "/rtc_unknown/hangup", headers=auth) as r:
            assert r.status == 404
    assert agent_server.calls == {}


async def test_fifty_calls_opened_and_dropped_leave_nothing(agent_server):
    baseline = {t for t in asyncio.all_tasks()}
    for batch in range(5):
        clients = [RawClient(agent_server.url) for _ in range(10)]
        agent_server.app[__import__("sandra_tui.server.app", fromlist=["CALLS"]).CALLS].max_per_client = 100
        await asyncio.gather(*(c.connect() for c in clients))
        await agent_server.wait_calls(10)
        await asyncio.gather(*(c.close() for c in clients))  # drop: no hang-up request
        await agent_server.wait_calls(0, timeout=15)
    for _ in range(100):
        extra = [t for t in asyncio.all_tasks() if t not in baseline and not t.done()]
        if not extra:
            break
        await asyncio.sleep(0.05)
    assert extra == [], [t.get_name() for t in extra][:10]
    gc.collect()
    from aiortc import RTCPeerConnection as PC

    live = [o for o in gc.get_objects() if isinstance(o, PC) and o.connectionState != "closed"]
    assert live == []


async def test_concurrent_call_limit(agent_server):
    clients = [RawClient(agent_server.url) for _ in range(4)]
    await asyncio.gather(*(c.connect() for c in clients))
    extra = RawClient(agent_server.url)
    try:
        with pytest.raises(AssertionError, match="too_many_calls"):
            await extra.connect()
    finally:
        await extra.close()
        await asyncio.gather(*(c.close() for c in clients))


async def fake_openai(received: list, status: int = 200):
    async def client_secrets(request):
        received.append({"auth": request.headers.get("Authorization"), "body": await request.json()})
        if status != 200:
            return web.json_response({"error": {"message": "nope sk-test-SECRET-key"}}, status=status)
        return web.json_response({"value": "ek_from_openai_123456", "expires_at": int(time.time()) + 600,
                                  "session": {"type": "realtime"}})

    return await serve_routes(("POST", "/v1/realtime/client_secrets", client_secrets))


@pytest.mark.parametrize("upstream_status,expected", [(200, 200), (401, 502), (429, 429), (500, 502)])
async def test_openai_upstream_against_a_fake(tmp_path, caplog, upstream_status, expected):
    from tests.agent_server import AgentServer

    caplog.set_level("DEBUG")
    received = []
    runner, base = await fake_openai(received, upstream_status)
    server = AgentServer(tmp_path, upstream="openai", openai_base_url=base, openai_api_key="sk-test-SECRET-key")
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/api/sandra/token") as r:
                text = await r.text()
                assert r.status == expected, text
        assert received[0]["auth"] == "Bearer sk-test-SECRET-key"
        body = received[0]["body"]
        assert body["session"]["type"] == "realtime" and body["expires_after"]["anchor"] == "created_at"
        assert "sk-test-SECRET-key" not in text
        if expected == 200:
            data = json.loads(text)
            assert data["value"] == "ek_from_openai_123456"
            assert data["realtime_url"] == base + "/v1/realtime/calls"
        assert "sk-test-SECRET-key" not in caplog.text
    finally:
        await server.stop()
        await runner.cleanup()


def test_serve_process_starts_fast_and_logs_no_key(tmp_path):
    proc = ServeProcess("--faults", env={"OPENAI_API_KEY": "sk-should-never-leak-000"})
    proc.start()
    try:
        assert proc.start_seconds < 2.0, proc.start_seconds
        assert proc.url.startswith("http://127.0.0.1:")
    finally:
        proc.stop()
    out = proc.output()
    assert "serving on" in out and "sk-should-never-leak-000" not in out


def test_serve_refuses_openai_without_key(tmp_path):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENAI_API_KEY"}
    r = subprocess.run([sys.executable, "-m", "sandra_tui", "serve", "--upstream", "openai", "--port", "0"],
                       capture_output=True, text=True, env=env, timeout=20)
    assert r.returncode == 2 and "OPENAI_API_KEY" in r.stderr


async def test_local_client_secrets_mirror_and_hangup(agent_server):
    async with aiohttp.ClientSession() as http:
        async with http.post(agent_server.url + "/v1/realtime/client_secrets",
                             json={"expires_after": {"anchor": "created_at", "seconds": 30},
                                   "session": {"type": "realtime", "model": "gpt-realtime"}}) as r:
            assert r.status == 200
            data = await r.json()
        assert data["value"].startswith("ek_") and data["session"]["model"] == "gpt-realtime"
        assert 25 <= data["expires_at"] - time.time() <= 31
    c = RawClient(agent_server.url)
    await c.connect()
    try:
        async with c.http.post(agent_server.url + c.call_url + "/hangup",
                               headers={"Authorization": "Bearer ek_someone_else"}) as r:
            assert r.status == 401
        async with c.http.post(agent_server.url + c.call_url + "/hangup",
                               headers={"Authorization": f"Bearer {c.token['value']}"}) as r:
            assert r.status == 200
        await agent_server.wait_calls(0)
    finally:
        await c.close()


async def test_token_carries_turn_rest_credentials_that_coturn_accepts(tmp_path, coturn_rest):
    from sandra_tui.config.probe import ProbeTarget, probe_servers
    from tests.agent_server import AgentServer

    server = AgentServer(tmp_path, turn_secret="rest-shared-secret", turn_urls=[coturn_rest.turn_url],
                         turn_ttl_s=600)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/api/sandra/token", json={"session_id": "sess_abc"}) as r:
                token = await r.json()
    finally:
        await server.stop()
    entry, = token["ice_servers"]
    expiry, user = entry["username"].split(":")
    assert user == "sess_abc" and 590 <= int(expiry) - time.time() <= 601
    result, = await probe_servers([ProbeTarget(entry["urls"][0], entry["username"], entry["credential"])], 0.5)
    assert result.reachable, result.error
