"""What an operator running replicas needs from each `serve` (deploy/): responses by status
class and the storage's health as Prometheus metrics, and the shared limits (server/shared.py).

- `sandra_http_responses_total{code="2xx"|"3xx"|"4xx"|"5xx"}`: every response, errors included
  (a handler's exception counts as 5xx); a bounded label, whatever the paths.
- `sandra_storage_up`: 1 while the storage answers (the same check as /healthz), every
  HEALTH_S, 0 when it fails or takes longer than HEALTH_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import Counter, Gauge

from sandra_tui.loops import cancel_and_wait
from sandra_tui.server import shared

log = logging.getLogger("sandra_tui.server.ops")
HEALTH_S = 5.0
HEALTH_TIMEOUT_S = 2.0


def _status_class(status: int) -> str:
    return f"{min(max(status // 100, 1), 5)}xx"


class Ops:
    def __init__(self, prom, storage) -> None:
        self.storage = storage
        self.responses = Counter("sandra_http_responses", "HTTP responses by status class", ["code"],
                                 registry=prom.registry)
        for code in ("2xx", "4xx", "5xx"):  # present from the start: rate() needs a first sample
            self.responses.labels(code)
        self.storage_up = Gauge("sandra_storage_up", "1 while the metrics storage answers its health check",
                                registry=prom.registry)
        self._task: asyncio.Task | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.responses.labels(_status_class(exc.status)).inc()
            raise
        except asyncio.CancelledError:  # the client went away: no response to count
            raise
        except Exception:
            self.responses.labels("5xx").inc()
            raise
        self.responses.labels(_status_class(response.status)).inc()
        return response

    async def check_storage(self) -> bool:
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancel that lands as
            # the inner call finishes, and the watcher then never stops (a hung serve teardown).
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await self.storage.schema_version()
        except Exception:  # noqa: BLE001 - any failure is "down"; /healthz says why
            ok = False
        else:
            ok = True
        self.storage_up.set(1 if ok else 0)
        return ok

    async def _watch(self) -> None:
        while True:
            await self.check_storage()
            await asyncio.sleep(HEALTH_S)

    async def start(self, app: web.Application) -> None:
        self._task = asyncio.create_task(self._watch(), name="storage-health")

    async def stop(self, app: web.Application) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)


def install(app: web.Application, settings, *, prom, calls, check_key, storage) -> Ops:
    """From create_app, right after metrics.install(app)."""
    ops = Ops(prom, storage)
    app.middlewares.append(ops.middleware)  # before the shared limits: their 429s are counted
    app.on_startup.append(ops.start)  # after the storage's own start (metrics.install came first)
    app.on_cleanup.insert(0, ops.stop)  # before the storage closes
    shared.install(app, settings, prom=prom, calls=calls, check_key=check_key)
    return ops
