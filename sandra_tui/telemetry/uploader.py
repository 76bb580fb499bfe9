"""Batched, non-blocking upload of latency summaries, with an offline spool that survives outages,
full disks, damaged files and restarts.

On the call's loop `record()` only updates the rolling stats and, every `batch_size` samples (or
`flush_interval_s` after the last payload), makes a payload with the URL, key and session of that
moment and hands it to the worker thread (sandra_tui/telemetry/worker.py), which writes it to the
SQLite spool, posts it and deletes it once the server answered. `close()` never raises and
returns within its deadline (plus a short grace for closing the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from pathlib import Path

from sandra_tui.telemetry import limits
from sandra_tui.telemetry.outbox import MEMORY_MAX, Outbox
from sandra_tui.telemetry.spool import Row, SqliteSpool
from sandra_tui.telemetry.stats import RollingStats
from sandra_tui.telemetry.worker import Worker

log = logging.getLogger(__name__)
CLOSE_GRACE_S = 0.5  # after the deadline: closing the file and the HTTP session


def utc_iso(seconds: float) -> str:
    stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TelemetryUploader:
    def __init__(self, url, *, token=lambda: None, session_id=lambda: "", batch_size: int = 10,
                 flush_interval_s: float = 30.0, window: int = 100, spool_path: Path | None = None,
                 spool_max_bytes: int = 10 * 1024 * 1024, on_notice=None, timeout_s: float = 5.0,
                 memory_max: int = MEMORY_MAX, clock=time.monotonic, wall=time.time) -> None:
        self.url = url
        self._token = token
        self._session_id = session_id
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.stats = RollingStats(window)
        self.on_notice = on_notice
        self.clock = clock
        self.wall = wall
        self.pending = 0
        self.made = 0  # payloads handed to the worker
        self.refused_samples = 0  # out of the server's range (e.g. over an hour): left out of the stats
        self.unsent_after_close = 0
        self.close_seconds: float | None = None
        self._notified: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_enqueue = clock()
        self._ticker: asyncio.Task | None = None
        self._closed = False
        spool = SqliteSpool(spool_path, spool_max_bytes, notify=self._notify) if spool_path else None
        self.outbox = Outbox(spool, notify=self._notify, memory_max=memory_max)
        self.worker = Worker(self.outbox, timeout_s=timeout_s)

    # -- counts ----------------------------------------------------------------------------------
    @property
    def sent(self) -> int:
        return self.worker.sent

    def counts(self) -> dict:
        w, o = self.worker, self.outbox
        return {"made": self.made, "sent": w.sent, "duplicates": w.duplicates, "unconfirmed": w.unconfirmed,
                "rejected": w.rejected,
                "lost": o.lost + self.unsent_after_close, "expired": o.expired,
                "dropped": o.spool.dropped if o.spool is not None else 0, "refused_samples": self.refused_samples}

    # -- notices: once per condition, on the call's loop ---------------------------------------------
    def _notify(self, condition: str, message: str) -> None:
        """From the worker thread: tell the operator, once per condition."""
        if condition in self._notified:
            return
        self._notified.add(condition)
        if self.on_notice is None or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the call's loop is closed: the log has it
            self._loop.call_soon_threadsafe(self._deliver, message)

    def _deliver(self, message: str) -> None:
        try:
            self.on_notice(message)
        except Exception:  # noqa: BLE001
            log.exception("telemetry notice callback failed")

    # -- never blocks --------------------------------------------------------------------------
    def record(self, name: str, ms: float) -> None:
        try:
            if not limits.sample_ok(name, ms):
                self.refused_samples += 1
                if self.refused_samples == 1:
                    log.warning("telemetry: left out %s=%r ms (outside what the metrics API accepts); "
                                "further ones are counted", name, ms)
                return
            self.stats.add(name, ms)
            self.pending += 1
            if self.pending >= self.batch_size:
                self._enqueue()
        except Exception:  # noqa: BLE001 - a sample must never break the call
            log.exception("telemetry: could not record a sample")

    def payload(self) -> dict:
        return limits.fit({
            "type": "realtime_latency",
            "payloadId": uuid.uuid4().hex,  # delivery is at-least-once: the backend dedupes on it
            "sessionId": limits.safe_session(self._session_id()),
            "metrics": self.stats.summary(),
            "byName": {name: self.stats.summary(name) for name in self.stats.names()},
            "timestamp": utc_iso(self.wall()),
        })

    def _enqueue(self) -> None:
        if self.pending == 0:
            return
        payload = self.payload()
        self.pending = 0
        self._last_enqueue = self.clock()
        url = self.url() if callable(self.url) else self.url
        row = Row(json.dumps(payload, separators=(",", ":")), url or None, self._token() or None,
                  payload["sessionId"], self.wall())
        self.made += 1
        if self._closed or not self.worker.submit(row):
            self.unsent_after_close += 1

    # -- background ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._ticker is None and not self._closed:
            self._loop = asyncio.get_running_loop()
            self.worker.start()
            self._ticker = asyncio.create_task(self._tick(), name="telemetry-tick")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.flush_interval_s))
            if self.pending and self.clock() - self._last_enqueue >= self.flush_interval_s:
                try:
                    self._enqueue()
                except Exception:  # noqa: BLE001
                    log.exception("telemetry: could not make a payload")

    async def close(self, deadline_s: float = 2.0) -> None:
        """Send what can go within `deadline_s`; the rest stays in the spool. Never raises."""
        if self._closed:
            return
        started = time.monotonic()
        end = started + max(0.0, deadline_s)
        try:
            if self._ticker is not None:
                self._ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._ticker
                self._ticker = None
            with contextlib.suppress(Exception):
                self._enqueue()
            self._closed = True
            if not self.worker.started:
                self.worker.start()
            self.worker.request_close(end)
            while not self.worker.finished.is_set() and time.monotonic() < end + CLOSE_GRACE_S:
                await asyncio.sleep(0.01)
            if self.worker.finished.is_set():
                self.worker.thread.join(0.2)  # it has finished: only the thread's own exit is left
            else:
                log.warning("telemetry: the worker did not stop within %.1f s; leaving it (daemon thread)",
                            deadline_s + CLOSE_GRACE_S)
        except asyncio.CancelledError:
            self._closed = True
            self.worker.request_close(time.monotonic())
            raise
        except Exception:  # noqa: BLE001 - close must never keep the caller from its own cleanup
            log.exception("telemetry: close failed")
        finally:
            self._closed = True
            self.close_seconds = time.monotonic() - started
        with contextlib.suppress(Exception):
            log.info("telemetry: %s; closed in %.2f s", self.counts(), self.close_seconds)
