"""An https client of the stack: its own loopback source address (a client of its own for the
limits), the test CA, and which replica answered each request (nginx's X-Test-Upstream)."""

from __future__ import annotations

import datetime as dt
import uuid

import aiohttp

from tests.deploy.stack import client_ssl


def payload(session_id: str, p95: float = 240.0, name: str = "response_latency") -> dict:
    stats = {"count": 4, "avg": p95 - 40, "min": p95 - 80, "max": p95 + 20, "p95": p95, "p99": p95 + 10}
    return {"type": "realtime_latency", "sessionId": session_id, "payloadId": uuid.uuid4().hex,
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "metrics": stats, "byName": {name: stats}}


class Client:
    def __init__(self, stack, source: str = "127.0.0.1") -> None:
        self.stack = stack
        self.base = stack.nginx.url
        connector = aiohttp.TCPConnector(ssl=client_ssl(stack.ca), local_addr=(source, 0), limit=32)
        self.http = aiohttp.ClientSession(connector=connector)
        self.key = self.session = None

    async def request(self, method: str, path: str, *, key: str | None = None, **kw):
        """(status, headers, body, replica that answered)."""
        headers = dict(kw.pop("headers", {}))
        if key:
            headers["Authorization"] = f"Bearer {key}"
        async with self.http.request(method, self.base + path, headers=headers, **kw) as r:
            body = await r.json(content_type=None) if r.content_type == "application/json" else await r.text()
            upstream = r.headers.get("X-Test-Upstream", "")
            return r.status, r.headers, body, self.stack.replica_of_upstream(upstream) if upstream else None

    async def token(self, body: dict | None = None) -> tuple[dict, str]:
        status, _, reply, replica = await self.request("POST", "/api/sandra/token", json=body or {})
        assert status == 200, reply
        self.key, self.session = reply["value"], reply["session_id"]
        return reply, replica

    async def close(self) -> None:
        await self.http.close()
