"""The real `sandra-tui serve` app for tests: in-process on a free loopback port, or as a
subprocess exactly as an operator runs it."""

from __future__ import annotations

import asyncio
import os
import shutil
import weakref
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from sandra_tui.server.app import CALLS, create_app
from sandra_tui.server.settings import ServerSettings
from tests.helpers import serve_app, stop_process


class AgentServer:
    def __init__(self, data_dir: Path, **settings) -> None:
        settings.setdefault("faults", True)
        self.settings = ServerSettings(data_dir=data_dir, **settings)
        self.app = create_app(self.settings)
        self.runner: web.AppRunner | None = None
        self.url = ""
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> "AgentServer":
        self.runner, self.url = await serve_app(self.app)
        self._http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def calls(self):
        return self.app[CALLS].calls

    async def faults(self, **patch) -> dict:
        async with self._http.post(self.url + "/_faults", json=patch) as r:
            body = await r.json()
            assert r.status == 200, body
            return body

    async def action(self, name: str, call_id: str | None = None) -> int:
        body = {"action": name}
        if call_id:
            body["call_id"] = call_id
        return (await self.faults(**body))["affected"]

    async def reset(self) -> None:
        async with self._http.delete(self.url + "/_faults") as r:
            assert r.status == 200

    async def wait_calls(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) != n:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {n} calls on the server, have {len(self.calls)}")
            await asyncio.sleep(0.05)


class ServeProcess:
    """`sandra-tui serve --port 0 --ready-file ...` as a child process."""

    def __init__(self, *extra: str, env: dict | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sandra-serve-"))
        # Removed once the test is done with this object (its log is read after stop()).
        weakref.finalize(self, shutil.rmtree, self.dir, True)
        self.ready = self.dir / "ready"
        self.log = self.dir / "serve.log"
        self.args = [sys.executable, "-m", "sandra_tui", "--log-level", "INFO", "serve", "--host", "127.0.0.1",
                     "--port", "0", "--ready-file", str(self.ready), *extra]
        self.env = {**os.environ, "SANDRA_DATA_DIR": str(self.dir / "data"), **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.start_seconds = 0.0
        self.start_cpu_seconds = 0.0  # user + system CPU until ready: what start-up costs, load or not

    def start(self, timeout: float = 15.0) -> "ServeProcess":
        started = time.monotonic()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if time.monotonic() - started > timeout:
                self.stop()
                raise RuntimeError("serve did not become ready")
            time.sleep(0.01)
        self.start_seconds = time.monotonic() - started
        self.start_cpu_seconds = cpu_seconds(self.proc.pid)
        self.url = self.ready.read_text().strip()
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used (/proc/PID/stat fields 14 and 15)."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
