"""Sliding-window rate limits: exact "N requests per minute" per key, plus a global cap.

`SlidingWindowLimiter` counts in this process. `SharedWindowLimiter` counts in PostgreSQL, for
replicas that share one database (server/shared.py): the same exact sliding window, one row per
accepted request, decided by one SQL function call under a per-key advisory lock, on the
database's clock (replicas' clocks may disagree; the database's is one).

Why PostgreSQL and not Redis: it is already the replicas' shared store (the metrics tables,
asyncpg), so there is no second stateful service to run, secure, back up and fail over; a
transaction makes the check-and-count atomic without a Lua script; and the load (1000 requests
a minute per client) is far below what one PostgreSQL takes on one indexed table.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict, deque


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_s: float = 60.0, max_keys: int = 10_000, clock=time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, key: str) -> float | None:
        """Count a request; None if allowed, else seconds until one is allowed again."""
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        cutoff = now - self.window_s
        while hits and hits[0] <= cutoff:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(0.001, hits[0] + self.window_s - now)
        hits.append(now)
        return None

    async def hit(self, key: str) -> float | None:
        """The same as check(), with SharedWindowLimiter's signature."""
        return self.check(key)


# One call per request: every key is checked under its own advisory lock (taken in sorted order,
# so two requests never wait on each other crosswise); the request is counted against all of
# them or against none. Returns the 1-based index of the first key that refuses and the seconds
# until it accepts again, or (NULL, NULL).
SHARED_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sandra_rate_hits (
        k TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sandra_rate_hits_k_at ON sandra_rate_hits (k, at)",
    """CREATE OR REPLACE FUNCTION sandra_rate_hit(keys TEXT[], limits INTEGER[], win DOUBLE PRECISION,
                                                 OUT refused INTEGER, OUT wait DOUBLE PRECISION)
    LANGUAGE plpgsql AS $$
    DECLARE
        now_ DOUBLE PRECISION;
        n INTEGER;
        oldest DOUBLE PRECISION;
        key_ TEXT;
    BEGIN
        FOR key_ IN SELECT DISTINCT u FROM unnest(keys) AS u ORDER BY u LOOP
            PERFORM pg_advisory_xact_lock(5460556, hashtext(key_));
        END LOOP;
        now_ := extract(epoch FROM clock_timestamp());  -- after the locks: per key, times only grow
        FOR i IN 1 .. cardinality(keys) LOOP
            DELETE FROM sandra_rate_hits WHERE k = keys[i] AND at <= now_ - win;
            SELECT count(*), min(at) INTO n, oldest FROM sandra_rate_hits WHERE k = keys[i];
            IF n >= limits[i] THEN
                refused := i;
                wait := GREATEST(0.001, oldest + win - now_);
                RETURN;
            END IF;
        END LOOP;
        INSERT INTO sandra_rate_hits (k, at) SELECT u, now_ FROM unnest(keys) AS u;
    END $$""",
]


def shared_key(scope: str, value: str) -> str:
    """What a key is stored as: a digest, so no bearer token or address sits in the table."""
    return scope + ":" + hashlib.sha256(value.encode()).hexdigest()[:32]


class SharedWindowLimiter:
    """Exact sliding windows in PostgreSQL; `pool` is an asyncpg pool whose database has
    SHARED_SCHEMA (server/shared.py creates it)."""

    def __init__(self, pool, window_s: float = 60.0) -> None:
        self.pool = pool
        self.window_s = window_s

    async def hit_all(self, checks: list[tuple[str, str, int]]) -> tuple[int, float] | None:
        """checks: (scope, key, limit). None if the request is allowed (and counted against every
        key), else (index of the refusing check, seconds until it accepts again)."""
        if not checks:
            return None
        keys = [shared_key(scope, key) for scope, key, _ in checks]
        limits = [limit for _, _, limit in checks]
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT refused, wait FROM sandra_rate_hit($1::text[], $2::int[], $3)",
                                      keys, limits, self.window_s)
        if row["refused"] is None:
            return None
        return row["refused"] - 1, float(row["wait"])

    async def sweep(self) -> int:
        """Rows no window can count any more (keys not seen since)."""
        async with self.pool.acquire() as conn:
            done = await conn.execute("DELETE FROM sandra_rate_hits WHERE at <= extract(epoch FROM clock_timestamp())"
                                      " - $1", self.window_s)
        return int(done.split()[-1])


def retry_after(wait_s: float) -> str:
    """Retry-After in whole seconds, never 0 (a client told 0 would retry at once)."""
    return str(max(1, math.ceil(wait_s)))
