"""`/api/sandra/metrics` (POST, GET), CORS, rate limits, `/metrics` (Prometheus), `/healthz`.

Prometheus labels are bounded: a metric name outside LATENCY_METRICS (wire/realtime.py) is
counted under "other", so `/metrics` stays a few KB whatever clients send; it is rendered on a
worker thread all the same (prometheus_client locks its metrics), never on the event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sandra_tui.wire.realtime import LATENCY_METRICS, OTHER_METRIC
from sandra_tui.server.errors import json_error
from sandra_tui.server.hygiene import bearer, read_body
from sandra_tui.server.metrics.ratelimit import SlidingWindowLimiter
from sandra_tui.server.metrics.storage import Row, Storage, StorageError
from sandra_tui.server.metrics.validate import MAX_BODY_BYTES, SESSION_ID, PayloadError, parse_payload

log = logging.getLogger("sandra_tui.server.metrics")
METRICS_PATH = "/api/sandra/metrics"
LATENCY_BUCKETS = (25, 50, 100, 150, 200, 300, 500, 750, 1000, 1500, 2500, 5000, 10000)


class Prom:
    """The server's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram("sandra_latency_ms", "Reported latency (per-payload average) by metric name",
                                 ["name"], buckets=LATENCY_BUCKETS, registry=r)
        self.last_avg = Gauge("sandra_latency_last_avg_ms", "Last reported average by metric name", ["name"], registry=r)
        self.last_p95 = Gauge("sandra_latency_last_p95_ms", "Last reported p95 by metric name", ["name"], registry=r)
        self.last_p99 = Gauge("sandra_latency_last_p99_ms", "Last reported p99 by metric name", ["name"], registry=r)
        self.payloads = Counter("sandra_metrics_payloads", "Latency payloads by outcome", ["outcome"], registry=r)
        self.rate_limited = Counter("sandra_rate_limited_requests", "Requests refused with 429", ["scope"], registry=r)
        self.calls = Counter("sandra_calls", "Calls answered by the agent", registry=r)
        self.active_calls = Gauge("sandra_active_calls", "Calls in progress", registry=r)
        self.reconnects = Counter("sandra_reconnects", "Token requests made for a reconnection", registry=r)
        self.drops = Counter("sandra_call_drops", "Calls that ended without a hang-up", registry=r)
        self.storage_recovered = Gauge("sandra_storage_recovered", "1 when a damaged database was moved aside at start",
                                       registry=r)

    def observe(self, payload: dict) -> None:
        for name, stats in payload.get("byName", {}).items():
            if name not in LATENCY_METRICS:
                name = OTHER_METRIC
            if stats["count"]:
                self.latency.labels(name).observe(stats["avg"])
                self.last_avg.labels(name).set(stats["avg"])
                self.last_p95.labels(name).set(stats["p95"])
                self.last_p99.labels(name).set(stats["p99"])
        m = payload["metrics"]
        if m["count"]:
            self.last_avg.labels("all").set(m["avg"])
            self.last_p95.labels("all").set(m["p95"])
            self.last_p99.labels("all").set(m["p99"])


@dataclass
class MetricsSettings:
    per_client_per_min: int = 1000
    global_per_min: int = 200_000
    cors_origins: set[str] = field(default_factory=set)
    admin_token: str | None = None  # may read any session (operators' dashboards)
    body_timeout_s: float = 10.0


class MetricsApi:
    def __init__(self, storage: Storage, authorize: Callable[[str], str | None],
                 settings: MetricsSettings | None = None, prom: Prom | None = None) -> None:
        self.storage = storage
        self.authorize = authorize  # bearer token -> session id it was issued for, or None
        self.settings = settings or MetricsSettings()
        self.prom = prom or Prom()
        s = self.settings
        self.per_token = SlidingWindowLimiter(s.per_client_per_min)
        self.per_addr = SlidingWindowLimiter(s.per_client_per_min)
        self.global_limit = SlidingWindowLimiter(s.global_per_min, max_keys=1)

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.cors_middleware)
        app.router.add_route("POST", METRICS_PATH, self.post)
        app.router.add_route("GET", METRICS_PATH, self.get)
        app.router.add_route("OPTIONS", METRICS_PATH, self.preflight)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/healthz", self.healthz)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, app: web.Application) -> None:
        try:
            await self.storage.start()
        except StorageError as exc:
            log.error("%s", exc)
            # one line and exit status 1, not a traceback (serve has nothing to do without storage)
            raise SystemExit(f"sandra-tui serve: {exc}") from None
        if self.storage.recovered:
            self.prom.storage_recovered.set(1)

    async def _stop(self, app: web.Application) -> None:
        await self.storage.close()

    # -- CORS ----------------------------------------------------------------------------------
    def _origin_allowed(self, request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        return origin if origin and origin in self.settings.cors_origins else None

    @web.middleware
    async def cors_middleware(self, request: web.Request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if request.path == METRICS_PATH and request.method != "OPTIONS":
            origin = self._origin_allowed(request)
            if origin:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Vary"] = "Origin"
                response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        if isinstance(response, web.HTTPException):
            raise response
        return response

    async def preflight(self, request: web.Request) -> web.Response:
        origin = self._origin_allowed(request)
        if not origin:
            return web.Response(status=403, text="origin not allowed")  # no CORS grant
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        })

    # -- limits ----------------------------------------------------------------------------------
    def _limited(self, request: web.Request, token: str | None) -> web.Response | None:
        waits = []
        addr = request.remote or "?"
        for scope, limiter, key in (("global", self.global_limit, "all"), ("address", self.per_addr, addr),
                                    ("token", self.per_token, token)):
            if key is None:
                continue
            wait = limiter.check(key)
            if wait is not None:
                self.prom.rate_limited.labels(scope).inc()
                waits.append(wait)
                break
        if not waits:
            return None
        retry = max(1, int(waits[0] + 0.999))
        return json_error(429, "rate limit exceeded (1000 requests per minute per client)", "rate_limited",
                           {"Retry-After": str(retry)})

    def _session_for(self, token: str | None) -> str | None:
        if not token:
            return None
        admin = self.settings.admin_token
        if admin and hmac.compare_digest(token.encode(), admin.encode()):
            return "*"
        return self.authorize(token)

    # -- handlers ------------------------------------------------------------------------------
    async def post(self, request: web.Request) -> web.Response:
        token = bearer(request)
        limited = self._limited(request, token)
        if limited:
            return limited
        session = self._session_for(token)
        if session is None:
            self.prom.payloads.labels("unauthorized").inc()
            return json_error(401, "a valid bearer token from /api/sandra/token is required", "invalid_token")
        if request.content_type != "application/json":
            self.prom.payloads.labels("rejected").inc()
            return json_error(415, "Content-Type must be application/json", "unsupported_media_type")
        try:  # the whole body, however it was segmented or chunked
            raw = await read_body(request, MAX_BODY_BYTES, self.settings.body_timeout_s)
        except web.HTTPException:
            self.prom.payloads.labels("rejected").inc()
            raise
        try:
            payload = parse_payload(raw)
        except PayloadError as exc:
            self.prom.payloads.labels("rejected").inc()
            return json_error(400, str(exc), "invalid_payload")
        if session not in ("*", payload["sessionId"]):
            self.prom.payloads.labels("unauthorized").inc()
            return json_error(403, "this token belongs to another session", "wrong_session")
        row = Row(payload["sessionId"], payload.get("payloadId"), time.time(), payload["timestamp"],
                  payload["metrics"], payload)
        try:
            fresh = await self.storage.store(row)
        except Exception:  # noqa: BLE001 - storage trouble is the server's fault, said plainly
            log.exception("could not store a metrics payload")
            return json_error(503, "storage unavailable, retry later", "storage_unavailable", {"Retry-After": "5"})
        if fresh:
            self.prom.payloads.labels("stored").inc()
            self.prom.observe(payload)
            m = payload["metrics"]
            log.info("[METRICS] session=%s count=%d avg=%.0f p95=%.0f p99=%.0f", payload["sessionId"], m["count"],
                     m["avg"], m["p95"], m["p99"])
        else:
            self.prom.payloads.labels("duplicate").inc()
        return web.json_response({"stored": True, "duplicate": not fresh}, status=202)

    async def get(self, request: web.Request) -> web.Response:
        token = bearer(request)
        limited = self._limited(request, token)
        if limited:
            return limited
        session_id = request.query.get("sessionId", "")
        if not SESSION_ID.match(session_id):
            return json_error(400, "sessionId query parameter is required", "invalid_session_id")
        try:
            limit = int(request.query.get("limit", "50"))
        except ValueError:
            return json_error(400, "limit must be a whole number", "invalid_limit")
        if not 1 <= limit <= 1000:
            return json_error(400, "limit must be from 1 to 1000", "invalid_limit")
        session = self._session_for(token)
        if session is None:
            return json_error(401, "a valid bearer token is required", "invalid_token")
        if session not in ("*", session_id):
            return json_error(403, "this token may not read that session", "wrong_session")
        payloads = await self.storage.recent(session_id, limit)
        return web.json_response({"sessionId": session_id, "payloads": payloads})

    async def prometheus(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, self.prom.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            version = await self.storage.schema_version()
        except Exception as exc:  # noqa: BLE001
            return web.json_response({"status": "unhealthy", "storage": str(exc)}, status=503)
        reply = {"status": "ok", "storage": self.storage.kind, "schema_version": version}
        if self.storage.recovered:
            reply["storage_recovered"] = self.storage.recovered  # still serving, on a fresh database
        return web.json_response(reply)
