"""The uploader's worker: one thread with an event loop of its own that owns the outbox (every
file operation) and posts what waits there. The call's loop only hands rows over (`submit`,
which never blocks), so an fsync or a slow disk can never delay a packet.

Each row goes out with its own URL and key. Backoff is per URL (backend down, 5xx, 429) and per
key (401), so a key the server no longer knows cannot hold back another call's payloads; the cap
is a few seconds so a restarted backend is reached soon after it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

import aiohttp

from sandra_tui.config import tls
from sandra_tui.loops import finish_tasks
from sandra_tui.telemetry.outbox import Outbox
from sandra_tui.telemetry.spool import Row

log = logging.getLogger(__name__)
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 4.0  # a backend back from an outage is retried within 4 s
MAX_RETRY_AFTER_S = 60.0
TICK_S = 5.0  # how often a memory queue tries the disk again, and old rows are expired
DEFINITIVE = frozenset({400, 403, 413, 415, 422})  # retrying the same body cannot help


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None


class Worker:
    def __init__(self, outbox: Outbox, *, timeout_s: float = 5.0, name: str = "telemetry-spool") -> None:
        self.outbox = outbox
        self.timeout_s = timeout_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.finished = threading.Event()
        self.sent = 0  # 2xx answers (duplicates included)
        self.duplicates = 0  # the server already had it (a post repeated after a cut connection)
        # Posts that may have reached the server without its answer reaching us (a timeout, a cut
        # connection; not a refused connect): each may come back as a duplicate when retried.
        self.unconfirmed = 0
        self.rejected = 0  # 400/403/413/415/422: dropped after logging
        self.retries = 0
        self._wake = asyncio.Event()
        self._close_asked = asyncio.Event()
        self._closing_at: float | None = None
        self._context: tuple | None = None
        self._backoff: dict[tuple, tuple[float, float]] = {}  # key -> (retry at, last delay)
        self._http: aiohttp.ClientSession | None = None

    # -- from the call's loop (non-blocking) ---------------------------------------------------------
    def start(self) -> None:
        if not self.thread.is_alive() and not self.finished.is_set():
            self.thread.start()

    @property
    def started(self) -> bool:
        return self.thread.ident is not None

    def submit(self, row: Row) -> bool:
        try:
            self.loop.call_soon_threadsafe(self._accept, row)
            return True
        except RuntimeError:  # the worker is gone (after close)
            return False

    def request_close(self, deadline: float) -> None:
        """Stop by `deadline` (time.monotonic()): send what can go now, keep the rest on disk."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._begin_close, deadline)

    # -- on the worker thread ----------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            try:
                self.outbox.open()  # before any handed-over row is accepted (they wait in the loop)
            except Exception:  # noqa: BLE001 - telemetry must not take anything else down
                log.exception("telemetry: could not open the outbox")
            self.loop.run_until_complete(self._main())
        except BaseException:  # noqa: BLE001
            log.exception("telemetry worker failed")
        finally:
            with contextlib.suppress(Exception):
                finish_tasks(self.loop)
            self.loop.close()
            self.finished.set()

    def _accept(self, row: Row) -> None:
        try:
            context = (row.session, row.url, row.token)
            if row.url and row.token and context != self._context:
                self._context = context
                self.outbox.bind(*context)  # rows of this session made before its key was known
            self.outbox.put(row)
        except Exception:  # noqa: BLE001
            log.exception("telemetry: could not keep a payload")
        self._wake.set()

    def _begin_close(self, deadline: float) -> None:
        self._closing_at = deadline
        self._close_asked.set()
        self._wake.set()

    async def _main(self) -> None:
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(**tls.connector_kwargs()))
        sender = asyncio.create_task(self._send_loop(), name="telemetry-send")
        try:
            await self._close_asked.wait()
            remaining = self._closing_at - time.monotonic()
            if remaining > 0:
                await asyncio.wait({sender}, timeout=remaining)
        finally:
            sender.cancel()  # a post cut here stays on disk: sent again next time, deduped by payloadId
            await asyncio.gather(sender, return_exceptions=True)
            try:
                self.outbox.close()
            except Exception:  # noqa: BLE001
                log.exception("telemetry: could not close the outbox")
            await self._http.close()

    async def _send_loop(self) -> None:
        last_tick = time.monotonic()
        while True:
            self._wake.clear()
            try:
                progressed = await self._send_pass()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("telemetry sender")
                progressed = False
                await asyncio.sleep(1.0)
            now = time.monotonic()
            if now - last_tick >= TICK_S:
                last_tick = now
                try:
                    self.outbox.tick(time.time())
                except Exception:  # noqa: BLE001
                    log.exception("telemetry outbox tick")
            if self._closing_at is not None:
                if not progressed:
                    return  # nothing more can go out now; the rest waits on disk for the next run
                continue
            if progressed:
                continue
            wait = min([TICK_S] + [until - now for until, _ in self._backoff.values()])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.01, wait)):  # not wait_for: 3.11's can swallow a cancel
                    await self._wake.wait()

    def _blocked(self, url: str, token: str, now: float) -> bool:
        return any(self._backoff.get(key, (0.0, 0.0))[0] > now for key in (("url", url), ("key", url, token)))

    async def _send_pass(self) -> bool:
        progressed = False
        for group in self.outbox.groups():
            url, token, _session = group
            if not url or not token:
                continue  # made before its session had a key: waits for one (never another call's)
            if self._blocked(url, token, time.monotonic()):
                continue
            for row in self.outbox.rows(group):
                if await self._post(row):
                    self.outbox.done(row)
                    progressed = True
                else:
                    break
        return progressed

    def _back_off(self, key: tuple, retry_after: float | None) -> None:
        _, last = self._backoff.get(key, (0.0, 0.0))
        delay = min(MAX_BACKOFF_S, last * 2) if last else FIRST_BACKOFF_S
        self._backoff[key] = (time.monotonic() + (retry_after if retry_after is not None else delay), delay)
        self.retries += 1

    def _recovered(self, url: str, token: str) -> None:
        for key in (("url", url), ("key", url, token)):
            if self._backoff.pop(key, None) is not None:
                log.info("telemetry: %s answers again", url)

    async def _post(self, row: Row) -> bool:
        """True when the server answered for the row (stored, duplicate or refused for good)."""
        headers = {"Authorization": f"Bearer {row.token}", "Content-Type": "application/json"}
        try:
            async with self._http.post(row.url, data=row.payload.encode(), headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as response:
                status = response.status
                if status < 300:
                    self.sent += 1
                    with contextlib.suppress(Exception):
                        if (await response.json()).get("duplicate"):
                            self.duplicates += 1
                    self._recovered(row.url, row.token)
                    return True
                if status in DEFINITIVE:
                    self.rejected += 1
                    reason = (await response.text())[:300]
                    log.warning("telemetry payload refused for good: HTTP %s %s", status, reason)
                    return True
                after = _retry_after(response.headers.get("Retry-After"))
                key = ("key", row.url, row.token) if status == 401 else ("url", row.url)
                if key not in self._backoff:
                    log.info("telemetry: HTTP %s from %s; retrying with backoff", status, row.url)
                self._back_off(key, after)
                return False
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            if not isinstance(exc, aiohttp.ClientConnectorError):
                self.unconfirmed += 1
            if ("url", row.url) not in self._backoff:
                log.info("telemetry: %s unreachable (%s); retrying with backoff", row.url, type(exc).__name__)
            self._back_off(("url", row.url), None)
            return False
