"""Helpers of the hardening tests: raw HTTP from a chosen loopback address, payloads, RSS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

STATS = {"count": 3, "avg": 120.0, "min": 80.0, "max": 200.0, "p95": 190.0, "p99": 199.0}


def payload(session: str, payload_id: str | None = None, names=("response_latency",)) -> dict:
    body = {"type": "realtime_latency", "sessionId": session, "timestamp": "2026-01-01T00:00:00Z",
            "metrics": STATS, "byName": {n: STATS for n in names}}
    if payload_id:
        body["payloadId"] = payload_id
    return body


def host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


def http(src: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A client whose connections come from `src` (any 127.0.0.0/8 address is loopback)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(src, 0), force_close=True))


async def token(url: str, src: str = "127.0.0.1", body: dict | None = None, key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with http(src) as s, s.post(url + "/api/sandra/token", json=body or {}, headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def raw(url: str, head: bytes, body: bytes = b"", src: str = "127.0.0.1", pieces: int = 1,
              pause_s: float = 0.0, timeout_s: float = 20.0, split_head: bool = True) -> tuple[int, bytes]:
    """Write `head + body` on one socket in `pieces` writes `pause_s` apart (the head in one
    write first when not `split_head`); (status, body)."""
    host, port = host_port(url)
    reader, writer = await asyncio.open_connection(host, port, local_addr=(src, 0))
    try:
        data = head + body
        if not split_head:
            writer.write(head)
            data = body
        step = max(1, -(-len(data) // pieces))
        # read from the start: a server that answers early (408, 413) and closes is heard,
        # and we stop writing (a write after its close would lose the reply to EPIPE)
        reading = asyncio.create_task(reader.read(65536))
        for i in range(0, len(data), step):
            if reading.done():
                break
            writer.write(data[i:i + step])
            await writer.drain()
            if pause_s and i + step < len(data):
                await asyncio.wait([reading], timeout=pause_s)
        reply = await asyncio.wait_for(reading, timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0
    return status, reply.partition(b"\r\n\r\n")[2]


def post_head(path: str, length: int | None, key: str | None = None, ctype: str = "application/json",
              chunked: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {ctype}", "Connection: close"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(data: bytes, size: int) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size))
    return out + b"0\r\n\r\n"


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


class LiveCall:
    """`sandra-tui call --headless` against the server under attack, as a user would run it."""

    def __init__(self, url: str, workdir: Path) -> None:
        cfg = workdir / "live.toml"
        cfg.write_text("[ice]\nstun = []\n[telemetry]\nenabled = false\n")
        self.out = workdir / "live.jsonl"
        self.err = workdir / "live.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "sandra_tui", "--config", str(cfg), "--backend", url,
                                          "call", "--headless", "--duration", "900"], stdout=out, stderr=err,
                                         env={**os.environ, "SANDRA_DATA_DIR": str(workdir / "live-data")})

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.startswith("{")]

    def wait_connected(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(e.get("state") == "connected" for e in self.events()):
            assert self.proc.poll() is None, self.err.read_text()[-2000:]
            assert time.monotonic() < deadline, "the live call did not connect"
            time.sleep(0.1)

    def stop(self) -> list[dict]:
        from tests.helpers import stop_process

        stop_process(self.proc, timeout=10)
        return self.events()
