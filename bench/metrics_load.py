"""Load on `POST /api/sandra/metrics` of a real `sandra-tui serve` (SQLite), from loopback only.

Each simulated client has its own key and its own source address in 127.0.0.0/8, as distinct
clients would, so the per-client limit (1000/min) does not cap the aggregate; one extra client
goes past its own limit to measure the 429 path. Loops are bounded by count and time.

    python -m bench.metrics_load [--seconds 10] [--clients 150] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import aiohttp
import numpy as np

from tests.agent_server import ServeProcess


def payload(session: str) -> dict:
    return {"type": "realtime_latency", "sessionId": session, "payloadId": uuid.uuid4().hex,
            "metrics": {"count": 10, "avg": 250.0, "min": 120.0, "max": 890.0, "p95": 650.0, "p99": 850.0},
            "timestamp": "2026-11-25T10:00:00Z"}


async def run(seconds: float, clients: int, concurrency: int) -> dict:
    serve = ServeProcess().start()
    try:
        sessions = []
        for i in range(clients):
            addr = f"127.0.{1 + i // 250}.{1 + i % 250}"
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(addr, 0), limit=0))
            async with http.post(serve.url + "/api/sandra/token", json={}) as r:
                token = await r.json()
            sessions.append((http, token["value"], token["session_id"]))
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        stop_at = time.monotonic() + seconds
        per_client_cap = 990  # stay under each client's 1000/min within the run
        sent = [0] * clients

        async def worker(w: int) -> None:
            i = w
            while time.monotonic() < stop_at:
                i = (i + concurrency) % clients
                if sent[i] >= per_client_cap:
                    if all(n >= per_client_cap for n in sent):
                        return
                    continue
                sent[i] += 1
                http, key, session = sessions[i]
                t0 = time.perf_counter()
                async with http.post(serve.url + "/api/sandra/metrics", json=payload(session),
                                     headers={"Authorization": f"Bearer {key}"}) as r:
                    await r.read()
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[r.status] = statuses.get(r.status, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.monotonic() - started
        # Beyond the limit: one client sends 1100 requests as fast as it can.
        http, key, session = sessions[0]
        over = {}
        for _ in range(1100 - sent[0]):
            async with http.post(serve.url + "/api/sandra/metrics", json=payload(session),
                                 headers={"Authorization": f"Bearer {key}"}) as r:
                over[r.status] = over.get(r.status, 0) + 1
        for http, _, _ in sessions:
            await http.close()
        lat = np.array(latencies)
        return {
            "seconds": round(elapsed, 2), "requests": len(latencies), "statuses": statuses,
            "accepted_per_s": round(statuses.get(202, 0) / elapsed, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2), "one_client_past_limit": over,
        }
    finally:
        serve.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=150)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.seconds, args.clients, args.concurrency)), indent=2))


if __name__ == "__main__":
    main()
