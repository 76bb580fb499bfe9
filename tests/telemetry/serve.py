"""A real `sandra-tui serve` on a fixed loopback port that can be stopped and started again with the
same data (metrics storage) and the same SANDRA_SECRET, plus what the telemetry tests read from it."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import tempfile
from pathlib import Path

import aiohttp

from tests.agent_server import ServeProcess

SECRET = "test-secret-for-signed-keys-0123456789"
ADMIN = "admin-token-for-telemetry-tests-0000"
METRICS_PATH = "/api/sandra/metrics"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend:
    def __init__(self) -> None:
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="sandra-tel-data-"))
        self.proc: ServeProcess | None = None
        self._dirs: list[Path] = []
        self.outputs: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.base + METRICS_PATH

    async def start(self) -> "Backend":
        proc = ServeProcess(env={"SANDRA_SECRET": SECRET, "SANDRA_METRICS_ADMIN_TOKEN": ADMIN,
                                 "SANDRA_DATA_DIR": str(self.data)})
        proc.args[proc.args.index("--port") + 1] = str(self.port)
        self._dirs.append(proc.dir)
        await asyncio.to_thread(proc.start)
        self.proc = proc
        return self

    async def stop(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(self.proc.stop)
            self.outputs.append(self.proc.output())
            self.proc = None

    async def cleanup(self) -> None:
        await self.stop()
        for d in self._dirs + [self.data]:
            shutil.rmtree(d, ignore_errors=True)

    async def token(self, session_id: str | None = None) -> tuple[str, str]:
        """(key, session id) from /api/sandra/token, as the controller gets them."""
        async with aiohttp.ClientSession() as http:
            async with http.post(self.base + "/api/sandra/token", json={"session_id": session_id} if session_id
                                 else {}) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
        return body["value"], body["session_id"]

    async def stored(self, session_id: str) -> list[dict]:
        """Every payload the server stored for the session (admin read)."""
        async with aiohttp.ClientSession() as http:
            async with http.get(self.metrics_url, params={"sessionId": session_id, "limit": "1000"},
                                headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                assert r.status == 200, await r.text()
                return (await r.json())["payloads"]

    async def outcomes(self) -> dict[str, float]:
        """`sandra_metrics_payloads_total` by outcome, for this run of the process."""
        async with aiohttp.ClientSession() as http:
            async with http.get(self.base + "/metrics") as r:
                text = await r.text()
        return {m[1]: float(m[2]) for m in re.finditer(r'sandra_metrics_payloads_total\{outcome="(\w+)"\} (\S+)', text)}
