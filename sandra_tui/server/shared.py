"""Limits shared by replicas on one PostgreSQL (SANDRA_DATABASE_URL=postgresql://...).

`install(app, ...)` adds one middleware that, before the handlers and their in-process limits:
- counts `POST /api/sandra/token` per client address (tokens_per_min_per_client) and
  `/api/sandra/metrics` per address and per bearer key (metrics_per_client_per_min) in one
  exact sliding window across all replicas (metrics/ratelimit.py SharedWindowLimiter);
- holds a row per local-agent call in `sandra_calls`, so `max_calls_per_client` and `max_calls`
  count the calls of every replica. A slot is taken before the offer is answered and named
  after the call id once it is; a hang-up frees it at once; each replica refreshes its rows
  every SYNC_S and drops those of calls that ended otherwise (within GRACE_S + SYNC_S); rows of a
  replica that died unannounced are dead after STALE_S, and a replica restarted under the same
  SANDRA_REPLICA_ID drops its old rows at start.

The in-process limiters stay (a replica counts its own share; it never refuses before the shared
count does). If the database does not answer, the request goes on under those in-process limits
alone (logged once a minute): an outage of the shared store must not refuse every caller.
With SQLite, or without a database URL, nothing is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from aiohttp import web

from sandra_tui import secrets
from sandra_tui.loops import cancel_and_wait
from sandra_tui.wire.realtime import CALLS_PATH, TOKEN_PATH
from sandra_tui.server.errors import json_error
from sandra_tui.server.metrics.api import METRICS_PATH
from sandra_tui.server.metrics.ratelimit import SHARED_SCHEMA, SharedWindowLimiter, retry_after

log = logging.getLogger("sandra_tui.server.shared")
LOCK_ID = 0x5A4D7262  # schema creation, one replica at a time
SYNC_S = 1.0
GRACE_S = 3 * SYNC_S
STALE_S = 10.0
CALLS_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sandra_calls (
        call_id TEXT PRIMARY KEY, replica TEXT NOT NULL, owner TEXT NOT NULL, client TEXT NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL)""",
    # Returns NULL (slot taken), 'too_many_calls' or 'server_busy'. One lock for all calls: the
    # counts and the insert are one decision.
    """CREATE OR REPLACE FUNCTION sandra_call_reserve(id_ TEXT, replica_ TEXT, owner_ TEXT, client_ TEXT,
                                                     per_client INTEGER, total INTEGER, stale DOUBLE PRECISION)
    RETURNS TEXT LANGUAGE plpgsql AS $$
    DECLARE
        now_ DOUBLE PRECISION;
    BEGIN
        PERFORM pg_advisory_xact_lock(5460556, 0);
        now_ := extract(epoch FROM clock_timestamp());
        DELETE FROM sandra_calls WHERE seen_at < now_ - stale;
        IF (SELECT count(*) FROM sandra_calls WHERE client = client_) >= per_client THEN
            RETURN 'too_many_calls';
        END IF;
        IF (SELECT count(*) FROM sandra_calls) >= total THEN
            RETURN 'server_busy';
        END IF;
        INSERT INTO sandra_calls VALUES (id_, replica_, owner_, client_, now_);
        RETURN NULL;
    END $$""",
]


def is_shared(database_url: str | None) -> bool:
    return bool(database_url) and database_url.startswith(("postgresql://", "postgres://"))


class SharedLimits:
    def __init__(self, dsn: str, settings, prom, calls, check_key, relaying: bool) -> None:
        self.dsn = dsn
        self.s = settings
        self.prom = prom
        self.calls = calls  # CallRegistry: the calls this process holds
        self.check_key = check_key  # bearer -> issued key or None (tokens.TokenStore.check)
        self.relaying = relaying  # relayed calls hold nothing here: no call slots
        self.replica = settings.replica_id or "-"
        self.owner = uuid.uuid4().hex  # this process
        self.pool = None
        self.limiter: SharedWindowLimiter | None = None
        self._sync: asyncio.Task | None = None
        self._pending: set[str] = set()  # slots of offers being answered now
        self._last_error = -1e9

    # -- life ----------------------------------------------------------------------------------
    async def start(self, app: web.Application) -> None:
        import asyncpg

        secrets.register(self.dsn)
        try:
            self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise SystemExit(f"sandra-tui serve: cannot open the shared database: {secrets.redact(str(exc))[:200]}") \
                from None
        async with self.pool.acquire() as conn:
            async with conn.transaction():  # CREATE OR REPLACE FUNCTION races between replicas otherwise
                await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_ID)
                for statement in SHARED_SCHEMA + CALLS_SCHEMA:
                    await conn.execute(statement)
            if self.replica != "-":  # our previous process is gone: so are its calls
                await conn.execute("DELETE FROM sandra_calls WHERE replica = $1", self.replica)
        self.limiter = SharedWindowLimiter(self.pool)
        self._sync = asyncio.create_task(self._sync_loop(), name="shared-calls-sync")
        log.info("shared limits on PostgreSQL (replica %s)", self.replica)

    async def stop(self, app: web.Application) -> None:
        sync, self._sync = self._sync, None
        await cancel_and_wait(sync)
        if self.pool is not None:
            with contextlib.suppress(Exception):  # a last courtesy: free our slots at once
                async with self.pool.acquire() as conn:
                    await conn.execute("DELETE FROM sandra_calls WHERE owner = $1", self.owner)
            pool, self.pool = self.pool, None
            await pool.close()

    def _db_failed(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error > 60:
            self._last_error = now
            log.warning("shared store: %s failed (%s); in-process limits only until it answers", what,
                        secrets.redact(str(exc))[:200] or type(exc).__name__)

    async def _sync_loop(self) -> None:
        sweep_at = time.monotonic() + 60
        while True:
            await asyncio.sleep(SYNC_S)
            live = list(self.calls.calls) + list(self._pending)
            try:
                async with self.pool.acquire() as conn:
                    await conn.execute("UPDATE sandra_calls SET seen_at = extract(epoch FROM clock_timestamp()) "
                                       "WHERE owner = $1 AND call_id = ANY($2::text[])", self.owner, live)
                    # ended calls, and slots whose release failed (the database was away); not
                    # refreshed for GRACE_S, so that a slot taken or renamed while this tick's
                    # list was made is never among them
                    await conn.execute("DELETE FROM sandra_calls WHERE owner = $1 AND NOT call_id = ANY($2::text[]) "
                                       "AND seen_at < extract(epoch FROM clock_timestamp()) - $3",
                                       self.owner, live, GRACE_S)
                if time.monotonic() > sweep_at:
                    sweep_at = time.monotonic() + 60
                    await self.limiter.sweep()
            except Exception as exc:  # noqa: BLE001 - the next tick tries again
                self._db_failed("call sync", exc)

    # -- the middleware --------------------------------------------------------------------------
    def _checks(self, request: web.Request) -> list[tuple[str, str, int]]:
        addr = request.remote or "?"
        if request.path == TOKEN_PATH and request.method == "POST":
            return [("token_address", addr, self.s.tokens_per_min_per_client)]
        if request.path == METRICS_PATH and request.method in ("GET", "POST"):
            checks = [("address", addr, self.s.metrics_per_client_per_min)]
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer ") and header[7:].strip():
                checks.append(("token", header[7:].strip(), self.s.metrics_per_client_per_min))
            return checks
        return []

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if self.limiter is None:
            return await handler(request)
        checks = self._checks(request)
        if checks:
            try:
                refused = await self.limiter.hit_all(checks)
            except Exception as exc:  # noqa: BLE001 - see the module doc
                self._db_failed("rate limit", exc)
                refused = None
            if refused is not None:
                index, wait = refused
                scope = checks[index][0]
                headers = {"Retry-After": retry_after(wait)}
                if scope == "token_address":
                    return json_error(429, "too many token requests from this address", "rate_limit_exceeded",
                                      headers)
                self.prom.rate_limited.labels(scope).inc()
                return json_error(429, "rate limit exceeded (1000 requests per minute per client)",
                                  "rate_limited", headers)
        if request.path == CALLS_PATH and request.method == "POST" and not self.relaying:
            return await self._call(request, handler)
        response = await handler(request)
        if request.method == "POST" and request.path.startswith(CALLS_PATH + "/") and request.path.endswith(
                "/hangup") and response.status == 200 and not self.relaying:
            call_id = request.path[len(CALLS_PATH) + 1:-len("/hangup")]
            try:  # the slot is free at once (else within GRACE_S + SYNC_S)
                async with self.pool.acquire() as conn:
                    await conn.execute("DELETE FROM sandra_calls WHERE call_id = $1 AND owner = $2", call_id,
                                       self.owner)
            except Exception as exc:  # noqa: BLE001
                self._db_failed("call slot release", exc)
        return response

    async def _call(self, request: web.Request, handler):
        header = request.headers.get("Authorization", "")
        if header[:7].lower() != "bearer " or self.check_key(header[7:].strip()) is None:
            return await handler(request)  # the handler's 401: no slot for a caller without a key
        slot = "pending:" + uuid.uuid4().hex
        client = request.remote or "?"
        self._pending.add(slot)
        try:
            async with self.pool.acquire() as conn:
                code = await conn.fetchval("SELECT sandra_call_reserve($1, $2, $3, $4, $5, $6, $7)", slot,
                                           self.replica, self.owner, client, self.s.max_calls_per_client,
                                           self.s.max_calls, STALE_S)
        except Exception as exc:  # noqa: BLE001
            self._pending.discard(slot)
            self._db_failed("call slot", exc)
            return await handler(request)
        if code is not None:
            self._pending.discard(slot)
        if code == "too_many_calls":
            return json_error(429, f"at most {self.s.max_calls_per_client} concurrent calls per client",
                              "too_many_calls")
        if code == "server_busy":
            return json_error(503, f"the service is at its limit of {self.s.max_calls} calls", "server_busy")
        response = None
        try:
            response = await handler(request)
            return response
        finally:
            location = response.headers.get("Location", "") if response is not None and response.status == 201 else ""
            call_id = location.rpartition("/")[2]
            try:
                async with self.pool.acquire() as conn:
                    if call_id:
                        await conn.execute("UPDATE sandra_calls SET call_id = $1 WHERE call_id = $2", call_id, slot)
                    else:
                        await conn.execute("DELETE FROM sandra_calls WHERE call_id = $1", slot)
            except Exception as exc:  # noqa: BLE001 - the sync loop frees it (not in `live`)
                self._db_failed("call slot release", exc)
            finally:
                self._pending.discard(slot)


def install(app: web.Application, settings, *, prom, calls, check_key) -> SharedLimits | None:
    """From create_app, after metrics.install(app): shared limits when the database is shared."""
    if not is_shared(settings.database_url):
        return None
    relaying = settings.upstream == "openai" and settings.openai_mode == "relay"
    shared = SharedLimits(settings.database_url, settings, prom, calls, check_key, relaying)
    app.middlewares.append(shared.middleware)
    app.on_startup.append(shared.start)
    app.on_cleanup.append(shared.stop)
    return shared
