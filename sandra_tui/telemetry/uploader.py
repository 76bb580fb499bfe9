"""Batched, non-blocking upload of latency summaries, with an offline spool.

`record()` never waits: it updates the rolling stats and, every `batch_size` samples, puts a
payload on a bounded queue. One background task posts payloads; what cannot be delivered
(backend down, queue full, exit deadline) goes to a JSONL spool that is sent later.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import time
import uuid
from pathlib import Path

import aiohttp

from sandra_tui.telemetry.stats import RollingStats

log = logging.getLogger(__name__)
QUEUE_SIZE = 100
MAX_BACKOFF_S = 60.0


def utc_now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Spool:
    """Append-only JSONL file, bounded in size (the oldest lines go first)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def append(self, payloads: list[dict]) -> None:
        if not payloads:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            for payload in payloads:
                handle.write(json.dumps(payload, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self.path.stat().st_size > self.max_bytes:
            self._shrink()

    def _shrink(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        size = sum(len(line.encode()) for line in lines)
        dropped = 0
        while lines and size > self.max_bytes * 0.9:
            size -= len(lines.pop(0).encode())
            dropped += 1
        log.warning("telemetry spool full: dropped the %d oldest payloads", dropped)
        self._write(lines)

    def _write(self, lines: list[str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(lines), encoding="utf-8")
        os.replace(tmp, self.path)

    def take(self, limit: int = 100) -> list[dict]:
        """Read up to `limit` payloads without removing them (call `drop(n)` once sent)."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                if len(out) >= limit:
                    break
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append(None)  # a torn line: dropped with the batch
        return out

    def drop(self, count: int) -> None:
        if not self.path.exists() or count <= 0:
            return
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)[count:]
        if lines:
            self._write(lines)
        else:
            self.path.unlink(missing_ok=True)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, encoding="utf-8") as handle:
            return sum(1 for _ in handle)


class TelemetryUploader:
    def __init__(self, url, *, token=lambda: None, session_id=lambda: "", batch_size: int = 10,
                 flush_interval_s: float = 30.0, window: int = 100, spool: Spool | None = None,
                 timeout_s: float = 5.0) -> None:
        self.url = url
        self._token = token
        self._session_id = session_id
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.stats = RollingStats(window)
        self.spool = spool
        self.timeout_s = timeout_s
        self.pending = 0
        self.sent = 0
        self._last_enqueue = time.monotonic()
        self._queue: asyncio.Queue[dict] = asyncio.Queue(QUEUE_SIZE)
        self._task: asyncio.Task | None = None
        self._ticker: asyncio.Task | None = None
        self._http: aiohttp.ClientSession | None = None
        self._inflight: dict | None = None

    # -- never blocks ------------------------------------------------------------------------
    def record(self, name: str, ms: float) -> None:
        self.stats.add(name, ms)
        self.pending += 1
        if self.pending >= self.batch_size:
            self._enqueue()

    def payload(self) -> dict:
        return {
            "type": "realtime_latency",
            "payloadId": uuid.uuid4().hex,  # delivery is at-least-once: the backend dedupes on it
            "sessionId": self._session_id() or "unknown",
            "metrics": self.stats.summary(),
            "byName": {name: self.stats.summary(name) for name in self.stats.names()},
            "timestamp": utc_now_iso(),
        }

    def _enqueue(self) -> None:
        if self.pending == 0:
            return
        payload = self.payload()
        self.pending = 0
        self._last_enqueue = time.monotonic()
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            if self.spool is not None:
                self.spool.append([payload])

    # -- background ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="telemetry-upload")
            self._ticker = asyncio.create_task(self._tick(), name="telemetry-tick")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.flush_interval_s))
            if self.pending and time.monotonic() - self._last_enqueue >= self.flush_interval_s:
                self._enqueue()

    async def _run(self) -> None:
        # While the backend is unreachable ("backlog"), new payloads go straight to the spool so
        # the order stays oldest-first, and only the spool's head is retried, with backoff.
        delay = 1.0
        backlog = self.spool is not None and len(self.spool) > 0  # left over from an earlier run
        next_try = time.monotonic()
        while True:
            try:
                if backlog:
                    timeout = max(0.0, next_try - time.monotonic())
                    payload = await asyncio.wait_for(self._queue.get(), timeout)
                else:
                    payload = await self._queue.get()
            except TimeoutError:
                payload = None
            if payload is not None:
                if backlog:
                    self.spool.append([payload])
                    continue
                self._inflight = payload  # close() re-queues it if we are cancelled mid-post
                outcome, retry_after = await self._post(payload)
                self._inflight = None
                if outcome != "retry":
                    continue  # sent, or rejected as bad (retrying cannot help)
                if self.spool is None:
                    continue
                self.spool.append([payload])
                backlog, delay = True, 1.0
                next_try = time.monotonic() + (retry_after if retry_after is not None else delay)
                continue
            done, retry_after = await self._drain_spool()
            if done:
                backlog, delay = False, 1.0
            else:
                delay = min(delay * 2, MAX_BACKOFF_S)
                next_try = time.monotonic() + (retry_after if retry_after is not None else delay)

    async def _drain_spool(self) -> tuple[bool, float | None]:
        """Send spooled payloads oldest first; (True, None) once the spool is empty."""
        if self.spool is None:
            return True, None
        while True:
            batch = self.spool.take(50)
            if not batch:
                return True, None
            sent = 0
            for payload in batch:
                if payload is not None:
                    outcome, retry_after = await self._post(payload)
                    if outcome == "retry":
                        self.spool.drop(sent)
                        return False, retry_after
                sent += 1
            self.spool.drop(sent)

    async def _post(self, payload: dict) -> tuple[str, float | None]:
        """-> ("ok" | "retry" | "rejected", retry_after seconds)."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        headers = {}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self.url() if callable(self.url) else self.url
        if not url:
            return "retry", None  # the backend is not known yet (embedded agent starting)
        try:
            async with self._http.post(url, json=payload, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as response:
                if response.status < 300:
                    self.sent += 1
                    return "ok", None
                if response.status == 429 or response.status >= 500 or response.status == 401:
                    after = response.headers.get("Retry-After")
                    try:
                        return "retry", float(after) if after else None
                    except ValueError:
                        return "retry", None
                log.warning("telemetry payload rejected: HTTP %s", response.status)
                return "rejected", None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("telemetry upload failed: %s", exc)
            return "retry", None

    async def close(self, deadline_s: float = 2.0) -> None:
        """Send what is pending within `deadline_s`; spool the rest."""
        self._enqueue()
        end = time.monotonic() + deadline_s
        if self._ticker is not None:
            self._ticker.cancel()
        await asyncio.sleep(0)  # let the worker pick up what was just queued
        while self._inflight is not None and time.monotonic() < end - deadline_s / 2:
            await asyncio.sleep(0.01)  # let a post under way finish rather than send it twice
        for task in (self._ticker, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._ticker = None
        leftovers = [self._inflight] if self._inflight is not None else []
        self._inflight = None
        while not self._queue.empty():
            leftovers.append(self._queue.get_nowait())
        while leftovers and time.monotonic() < end:
            try:
                outcome, _ = await asyncio.wait_for(self._post(leftovers[0]), max(0.05, end - time.monotonic()))
            except TimeoutError:
                break
            if outcome == "retry":
                break
            leftovers.pop(0)
        if leftovers and self.spool is not None:
            self.spool.append(leftovers)
        if self._http is not None:
            await self._http.close()
            self._http = None
