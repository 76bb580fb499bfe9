"""HTTP side of the agent: token endpoint, calls, hang-up, limits, bad input, TURN credentials,
clean-up of vanished callers."""

import asyncio
import gc
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import aiohttp
import pytest
from aiortc import (RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription)
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from sandra_tui.server.app import CALLS, TOKENS
from tests.agent_server import AgentServer
from tests.rtc_client import RawClient
from tests.server.helpers import connected_client, packets_in

SDP = {"Content-Type": "application/sdp"}


async def token(http, url, **body) -> dict:
    async with http.post(url + "/api/sandra/token", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def offer_pc(config: RTCConfiguration | None = None) -> tuple[RTCPeerConnection, object]:
    pc = RTCPeerConnection(config or RTCConfiguration(iceServers=[]))
    dc = pc.createDataChannel("oai-events")
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, dc


async def test_token_shape(agent_server):
    async with aiohttp.ClientSession() as http:
        t = await token(http, agent_server.url, session_id="call-123", reconnect=True)
        assert set(t) == {"value", "expires_at", "realtime_url", "model", "ice_servers", "session_id"}
        assert t["value"].startswith("ek_") and t["session_id"] == "call-123"
        assert t["realtime_url"] == agent_server.url + "/v1/realtime/calls"
        assert t["ice_servers"] == []  # a loopback agent needs no STUN/TURN
        assert isinstance(t["expires_at"], int) and t["model"] == "gpt-realtime-2.1"
        other = await token(http, agent_server.url)
        assert other["value"] != t["value"] and other["session_id"].startswith("sess_")


async def test_http_bad_input(agent_server):
    async with aiohttp.ClientSession() as http:
        key = (await token(http, agent_server.url))["value"]
        calls = agent_server.url + "/v1/realtime/calls"
        auth = {"Authorization": f"Bearer {key}"}
        cases = [
            ({}, "application/sdp", b"v=0\r\n", 401),
            ({"Authorization": "Bearer ek_forged"}, "application/sdp", b"v=0\r\n", 401),
            ({"Authorization": key}, "application/sdp", b"v=0\r\n", 401),  # no "Bearer "
            (auth, "text/plain", b"v=0\r\n", 415),
            (auth, "application/json", b"{}", 415),
            (auth, "application/sdp", b"hello", 400),
            (auth, "application/sdp", b"\xff\xfe", 400),
            (auth, "application/sdp", b"v=0\r\nm=garbage\r\n", 400),
            (auth, "application/sdp", b"v=0\r\n" + b"a=x\r\n" * 20000, 413),
        ]
        for headers, ctype, body, status in cases:
            async with http.post(calls, data=body, headers={**headers, "Content-Type": ctype}) as r:
                assert r.status == status, (status, await r.text())
                error = (await r.json(content_type=None))["error"]
                assert set(error) == {"message", "type", "code"}
        for body in (b"{bad", b"[1, 2]", b"x" * 70000):
            async with http.post(agent_server.url + "/api/sandra/token", data=body,
                                 headers={"Content-Type": "application/json"}) as r:
                assert r.status in (400, 413) and "error" in await r.json()
        async with http.get(agent_server.url + "/nope") as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
        async with http.get(agent_server.url + "/api/sandra/token") as r:
            assert r.status == 405 and "error" in await r.json()
        async with http.post(calls + "/rtc_unknown/hangup", headers=auth) as r:
            assert r.status == 404
        # an offer without audio
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(calls, data=pc.localDescription.sdp, headers={**auth, **SDP}) as r:
            assert r.status == 400 and "audio" in (await r.json())["error"]["message"]
        await pc.close()
        # the server still serves
        assert (await token(http, agent_server.url))["value"]
    assert agent_server.calls == {}


async def test_expired_key_is_refused(agent_server):
    store = agent_server.app[TOKENS]
    async with aiohttp.ClientSession() as http:
        key = (await token(http, agent_server.url))["value"]
        store.clock = lambda: time.time() + 601
        pc, _ = await offer_pc()
        try:
            async with http.post(agent_server.url + "/v1/realtime/calls", data=pc.localDescription.sdp,
                                 headers={"Authorization": f"Bearer {key}", **SDP}) as r:
                assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_api_key"
        finally:
            await pc.close()
    assert agent_server.calls == {}


async def test_hangup(agent_server):
    c = await connected_client(agent_server)
    try:
        async with aiohttp.ClientSession() as http:
            url = agent_server.url + c.call_url
            async with http.post(url + "/hangup", headers={"Authorization": "Bearer ek_other"}) as r:
                assert r.status == 401
            assert len(agent_server.calls) == 1
            closed = asyncio.Event()
            c.pc.on("connectionstatechange", lambda: c.pc.connectionState == "closed" and closed.set())
            async with http.post(url + "/hangup", headers={"Authorization": f"Bearer {c.token['value']}"}) as r:
                assert r.status == 200 and (await r.json())["status"] == "ended"
            assert agent_server.calls == {}
            await asyncio.wait_for(closed.wait(), 10)  # the server closed its side
    finally:
        await c.close()


async def test_local_client_secrets_mirror(agent_server):
    async with aiohttp.ClientSession() as http:
        body = {"expires_after": {"anchor": "created_at", "seconds": 60},
                "session": {"type": "realtime", "model": "gpt-realtime-2.1"}}
        async with http.post(agent_server.url + "/v1/realtime/client_secrets", json=body) as r:
            secret = await r.json()
            assert r.status == 200 and secret["value"].startswith("ek_") and secret["session"]["type"] == "realtime"
        async with http.post(agent_server.url + "/v1/realtime/client_secrets",
                             json={"expires_after": {"seconds": 5}}) as r:
            assert r.status == 400
        pc, dc = await offer_pc()
        opened = asyncio.Event()
        dc.on("open", opened.set)
        try:
            async with http.post(agent_server.url + "/v1/realtime/calls", data=pc.localDescription.sdp,
                                 headers={"Authorization": f"Bearer {secret['value']}", **SDP}) as r:
                assert r.status == 201 and r.headers["Location"].startswith("/v1/realtime/calls/rtc_")
                answer = await r.text()
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await asyncio.wait_for(opened.wait(), 10)
        finally:
            await pc.close()
    await agent_server.wait_calls(0)


async def test_a_call_that_never_connects_is_dropped(tmp_path):
    server = await AgentServer(tmp_path, connect_timeout_s=1.0).start()
    pc, _ = await offer_pc()
    try:
        async with aiohttp.ClientSession() as http:
            t = await token(http, server.url)
            async with http.post(t["realtime_url"], data=pc.localDescription.sdp,
                                 headers={"Authorization": f"Bearer {t['value']}", **SDP}) as r:
                assert r.status == 201  # ... and the caller never uses the answer
        await server.wait_calls(1)
        await server.wait_calls(0, timeout=3)
    finally:
        await pc.close()
        await server.stop()


async def test_browser_like_offer_without_candidates(agent_server):
    """A browser posts its offer before gathering: no candidates, no end-of-candidates. The
    server learns the caller's address from its checks (peer-reflexive candidates)."""
    async with aiohttp.ClientSession() as http:
        t = await token(http, agent_server.url)
        pc, dc = await offer_pc()
        opened = asyncio.Event()
        dc.on("open", opened.set)
        try:
            offer = re.sub(r"a=(candidate:.*|end-of-candidates)\r\n", "", pc.localDescription.sdp)
            assert "a=candidate" not in offer
            async with http.post(t["realtime_url"], data=offer,
                                 headers={"Authorization": f"Bearer {t['value']}", **SDP}) as r:
                assert r.status == 201
                answer = await r.text()
            assert "a=msid:" in answer and "a=end-of-candidates" in answer and "a=sendrecv" in answer
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await asyncio.wait_for(opened.wait(), 10)
        finally:
            await pc.close()


async def test_token_minting_and_concurrent_calls_are_limited_per_client(tmp_path):
    server = await AgentServer(tmp_path, tokens_per_min_per_client=3, max_calls_per_client=2).start()
    clients = []
    try:
        async with aiohttp.ClientSession() as http:
            keys = [(await token(http, server.url))["value"] for _ in range(3)]
            async with http.post(server.url + "/api/sandra/token") as r:
                assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
                assert (await r.json())["error"]["type"] == "rate_limit_error"
            offers = [await offer_pc() for _ in range(3)]
            results = await asyncio.gather(*(
                http.post(server.url + "/v1/realtime/calls", data=pc.localDescription.sdp,
                          headers={"Authorization": f"Bearer {key}", **SDP}) for (pc, _), key in zip(offers, keys)))
            statuses = sorted(r.status for r in results)  # sent at once: the limit holds under a race
            assert statuses == [201, 201, 429]
            refused = next(r for r in results if r.status == 429)
            assert (await refused.json())["error"]["code"] == "too_many_calls"
            for r in results:
                r.release()
            clients = [pc for pc, _ in offers]
    finally:
        for pc in clients:
            await pc.close()
        await server.stop()


@pytest.mark.slow
async def test_fifty_calls_opened_and_dropped_leave_nothing(agent_server):
    agent_server.app[CALLS].max_per_client = 100
    baseline = set(asyncio.all_tasks())
    for _ in range(5):
        clients = [RawClient(agent_server.url) for _ in range(10)]
        await asyncio.gather(*(c.connect() for c in clients))
        await agent_server.wait_calls(10)
        await asyncio.gather(*(c.close() for c in clients))  # drop: no hang-up request
        await agent_server.wait_calls(0, timeout=15)
    extra = []
    for _ in range(100):
        extra = [t for t in asyncio.all_tasks() if t not in baseline and not t.done()]
        if not extra:
            break
        await asyncio.sleep(0.05)
    assert extra == [], [t.get_name() for t in extra][:10]
    gc.collect()
    live = [o for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"]
    assert live == []
    assert agent_server.app[CALLS]._opening == {}


VANISHING_CLIENT = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, sys.argv[2])
    from sandra_tui.shims.aioice import loopback_host_candidates
    from tests.rtc_client import RawClient

    async def main():
        c = RawClient(sys.argv[1])
        with loopback_host_candidates():
            await c.connect()
        print("connected", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
""")


async def _caller_process(server: AgentServer):
    """A client process (VANISHING_CLIENT) connected to `server`, its call seen there."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", VANISHING_CLIENT, server.url, os.getcwd(),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line.strip() == b"connected", (line, await proc.stderr.read())
        await server.wait_calls(1)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc


@pytest.mark.slow
async def test_a_caller_that_vanishes_is_reaped(tmp_path):
    """A client process killed with SIGKILL sends no goodbye: its call ends once its audio stops."""
    server = await AgentServer(tmp_path, idle_call_timeout_s=1.5).start()
    proc = None
    try:
        proc = await _caller_process(server)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await server.wait_calls(0, timeout=4)  # idle timeout 1.5 s + reaper tick
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await server.stop()


async def test_turn_rest_credentials_work_with_coturn(tmp_path, coturn_rest):
    """ice_servers from the token endpoint open a relay-only call through coturn (use-auth-secret)."""
    server = await AgentServer(tmp_path, turn_secret="rest-shared-secret", turn_urls=[coturn_rest.turn_url],
                               turn_ttl_s=300).start()
    pc = None
    try:
        async with aiohttp.ClientSession() as http:
            t = await token(http, server.url, session_id="relay-call")
            (entry,) = t["ice_servers"]
            assert entry["urls"] == [coturn_rest.turn_url] and entry["username"].endswith(":relay-call")
            config = RTCConfiguration(iceServers=[RTCIceServer(**entry)],
                                      iceTransportPolicy=RTCIceTransportPolicy.RELAY)
            pc, dc = await offer_pc(config)
            assert " typ relay" in pc.localDescription.sdp and " typ host" not in pc.localDescription.sdp
            opened = asyncio.Event()
            dc.on("open", opened.set)
            async with http.post(t["realtime_url"], data=pc.localDescription.sdp,
                                 headers={"Authorization": f"Bearer {t['value']}", **SDP}) as r:
                assert r.status == 201
                answer = await r.text()
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await asyncio.wait_for(opened.wait(), 10)
            # a wrong secret gives credentials coturn refuses: no relay candidate at all
            bad = RTCConfiguration(iceServers=[RTCIceServer(urls=entry["urls"], username=entry["username"],
                                                            credential="d3JvbmcK")],
                                   iceTransportPolicy=RTCIceTransportPolicy.RELAY)
            pc2 = RTCPeerConnection(bad)
            pc2.addTransceiver("audio")
            await pc2.setLocalDescription(await pc2.createOffer())
            assert " typ relay" not in pc2.localDescription.sdp
            await pc2.close()
    finally:
        if pc is not None:
            await pc.close()
        await server.stop()


async def test_call_stays_healthy_with_inbound_audio(client, agent_server):
    """While a call runs the server keeps sending (silence when idle) and counts caller frames."""
    assert await packets_in(client, 0.5) > 15
    call = next(iter(agent_server.calls.values()))
    assert call.agent.frames_in > 10 and call.session_id == client.token["session_id"]
    async with aiohttp.ClientSession() as http:
        async with http.get(agent_server.url + "/_faults") as r:
            assert (await r.json())["calls"] == [call.id]
    assert json.loads(json.dumps(client.token))["value"] == call.key


@pytest.mark.slow
async def test_a_held_server_loop_does_not_reap_a_live_caller(tmp_path):
    """When serve's own loop is held (a loaded machine), the caller's packets of that time wait
    unread: the reaper must not take that for a silent caller (a live call was dropped in CI)."""
    server = await AgentServer(tmp_path, idle_call_timeout_s=0.6).start()
    proc = None
    try:
        proc = await _caller_process(server)
        await asyncio.sleep(0.5)  # audio flowing
        time.sleep(1.5)  # the loop is held for over twice the idle timeout; the caller keeps sending
        await asyncio.sleep(1.0)  # several reaper ticks once the loop runs again
        assert len(server.calls) == 1
    finally:
        if proc is not None:
            proc.kill()
            await proc.wait()
        await server.stop()
