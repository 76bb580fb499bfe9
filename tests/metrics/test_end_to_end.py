"""Metrics through the real `sandra-tui serve` process: durability under SIGKILL, and a call's
payloads retrievable by session and visible on /metrics."""

import asyncio
import os
import signal
import uuid

import aiohttp

from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState
from sandra_tui.call.telemetry_link import attach_telemetry
from sandra_tui.config.model import Config
from tests.agent_server import ServeProcess


def payload(session: str, pid: str) -> dict:
    return {"type": "realtime_latency", "sessionId": session, "payloadId": pid,
            "metrics": {"count": 10, "avg": 200.0, "min": 100.0, "max": 300.0, "p95": 290.0, "p99": 299.0},
            "timestamp": "2026-11-25T10:00:00Z"}


async def test_acknowledged_payloads_survive_sigkill(tmp_path):
    data_env = {"SANDRA_DATA_DIR": str(tmp_path / "data")}
    serve = ServeProcess(env=data_env).start()
    acked: dict[str, list[str]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            tokens = []
            for _ in range(4):
                async with http.post(serve.url + "/api/sandra/token", json={}) as r:
                    t = await r.json()
                    tokens.append((t["value"], t["session_id"]))
                    acked[t["session_id"]] = []

            async def worker(key, session):
                for _ in range(150):
                    pid = uuid.uuid4().hex
                    try:
                        async with http.post(serve.url + "/api/sandra/metrics", json=payload(session, pid),
                                             headers={"Authorization": f"Bearer {key}"}) as r:
                            if r.status == 202:
                                acked[session].append(pid)
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        return

            async def killer():
                while sum(map(len, acked.values())) < 200:
                    await asyncio.sleep(0.005)
                os.kill(serve.proc.pid, signal.SIGKILL)

            await asyncio.gather(killer(), *(worker(k, s) for k, s in tokens))
    finally:
        serve.proc.wait(5)
    total = sum(map(len, acked.values()))
    assert total >= 200
    serve2 = ServeProcess(env={**data_env, "SANDRA_METRICS_ADMIN_TOKEN": "admin-token-123"}).start()
    try:
        async with aiohttp.ClientSession() as http:
            for session, pids in acked.items():
                async with http.get(f"{serve2.url}/api/sandra/metrics?sessionId={session}&limit=1000",
                                    headers={"Authorization": "Bearer admin-token-123"}) as r:
                    stored = {p["payloadId"] for p in (await r.json())["payloads"]}
                assert set(pids) <= stored, f"{len(set(pids) - stored)} acknowledged payloads lost"
    finally:
        serve2.stop()


async def test_call_payloads_retrievable_and_on_prometheus(agent_server, tmp_path):
    cfg = Config(backend={"url": agent_server.url}, ice={"stun": []},
                 telemetry={"batch_size": 3, "flush_interval_s": 1})
    controller = CallController(cfg)
    uploader = attach_telemetry(controller, spool_dir=tmp_path)
    await controller.start()
    for _ in range(200):
        if controller.state == CallState.CONNECTED:
            break
        await asyncio.sleep(0.05)
    await controller.send_text("measure me")
    for _ in range(400):
        if uploader.sent >= 2:
            break
        await asyncio.sleep(0.05)
    token = controller.token_value
    session = controller.session_id
    await controller.hangup()
    await uploader.close(deadline_s=2)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{agent_server.url}/api/sandra/metrics?sessionId={session}",
                            headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
            stored = (await r.json())["payloads"]
        async with http.get(agent_server.url + "/metrics") as r:
            prom = await r.text()
    await controller.close()
    assert len(stored) >= 2
    newest = stored[0]
    assert newest["sessionId"] == session and set(newest["metrics"]) == {"count", "avg", "min", "max", "p95", "p99"}
    names = set(newest["byName"])
    assert {"token_acquisition", "sdp_exchange", "ice_connect"} <= names
    for name in names:
        line = f'sandra_latency_last_p95_ms{{name="{name}"}} {float(newest["byName"][name]["p95"])}'
        assert line in prom, line
    assert "sandra_calls_total 1.0" in prom
