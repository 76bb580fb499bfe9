"""Durable storage of latency payloads: SQLite (WAL, default) or PostgreSQL (shared by replicas).

Writes go through one writer that groups concurrent inserts into a single transaction (group
commit): a request is acknowledged only after the commit that holds it, so an accepted payload
survives a crash, and one fsync serves many requests.

Payload ids are unique per session (schema 2): another session's ids never make a payload a
"duplicate". `sessions` records client-named sessions as they are first claimed (see
`claim_session`), so that a second client naming the same session is not handed it.

SQLite is checked at start (`PRAGMA quick_check`): a damaged file is moved aside
(`<name>.corrupt-<timestamp>`, with its -wal/-shm) and a fresh one created, with one log line;
`recovered` then says so (shown by /healthz). A file that cannot be opened at all raises
StorageError with a one-line message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
MAX_BATCH = 500

# Schema versions, applied in order; each entry is a list of statements per dialect.
MIGRATIONS: list[dict[str, list[str]]] = [
    {
        "sqlite": [
            """CREATE TABLE IF NOT EXISTS latency_payloads (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                session_id TEXT NOT NULL,
                payload_id TEXT,
                received_at REAL NOT NULL,
                client_ts TEXT NOT NULL,
                count INTEGER NOT NULL,
                avg_ms REAL NOT NULL, min_ms REAL NOT NULL, max_ms REAL NOT NULL,
                p95_ms REAL NOT NULL, p99_ms REAL NOT NULL,
                body TEXT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS latency_session_time ON latency_payloads (session_id, received_at DESC)",
            "CREATE UNIQUE INDEX IF NOT EXISTS latency_payload_id ON latency_payloads (payload_id)",
        ],
        "postgres": [
            """CREATE TABLE IF NOT EXISTS latency_payloads (
                id BIGSERIAL PRIMARY KEY,
                session_id TEXT NOT NULL,
                payload_id TEXT,
                received_at DOUBLE PRECISION NOT NULL,
                client_ts TEXT NOT NULL,
                count INTEGER NOT NULL,
                avg_ms DOUBLE PRECISION NOT NULL, min_ms DOUBLE PRECISION NOT NULL,
                max_ms DOUBLE PRECISION NOT NULL, p95_ms DOUBLE PRECISION NOT NULL,
                p99_ms DOUBLE PRECISION NOT NULL,
                body TEXT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS latency_session_time ON latency_payloads (session_id, received_at DESC)",
            "CREATE UNIQUE INDEX IF NOT EXISTS latency_payload_id ON latency_payloads (payload_id)",
        ],
    },
]
MIGRATIONS.append({
    "sqlite": [
        "DROP INDEX IF EXISTS latency_payload_id",
        "CREATE UNIQUE INDEX IF NOT EXISTS latency_session_payload_id ON latency_payloads (session_id, payload_id)",
        "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, created_at REAL NOT NULL)",
    ],
    "postgres": [
        "DROP INDEX IF EXISTS latency_payload_id",
        "CREATE UNIQUE INDEX IF NOT EXISTS latency_session_payload_id ON latency_payloads (session_id, payload_id)",
        "CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL)",
    ],
})
SCHEMA_VERSION = len(MIGRATIONS)


class StorageError(RuntimeError):
    """The database cannot be used at all (one line, for the operator)."""


def _bodies(rows) -> list[dict]:
    out = []
    for (body,) in rows:
        try:
            out.append(json.loads(body))
        except ValueError:  # a damaged row is left out, not a 500 for the whole session
            log.warning("a stored payload is not valid JSON; left out")
    return out


@dataclass
class Row:
    session_id: str
    payload_id: str | None
    received_at: float
    client_ts: str
    metrics: dict
    body: dict

    def values(self) -> tuple:
        m = self.metrics
        return (self.session_id, self.payload_id, self.received_at, self.client_ts, int(m["count"]),
                float(m["avg"]), float(m["min"]), float(m["max"]), float(m["p95"]), float(m["p99"]),
                json.dumps(self.body, separators=(",", ":")))


class Storage:
    """Common group-commit machinery; subclasses write batches and run queries."""

    kind = "?"

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[Row, asyncio.Future]] | None = None
        self._writer: asyncio.Task | None = None
        self.stored = 0
        self.recovered: dict | None = None  # set when a damaged database was replaced at start

    async def start(self) -> None:
        await self._open()
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name=f"{self.kind}-writer")

    async def store(self, row: Row) -> bool:
        """Resolve once the row is committed; False when it was a duplicate payload id."""
        assert self._queue is not None, "storage not started"
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((row, future))
        return await future

    async def _write_loop(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                inserted = await self._write([row for row, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter learns the batch failed
                log.error("storage write failed: %s", exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.stored += sum(inserted)
            for (_, future), fresh in zip(batch, inserted):
                if not future.done():
                    future.set_result(fresh)

    async def close(self) -> None:
        if self._writer is not None:
            while self._queue is not None and not self._queue.empty():
                await asyncio.sleep(0.01)
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        await self._close()

    # subclass hooks
    async def _open(self) -> None: ...
    async def _close(self) -> None: ...
    async def _write(self, rows: list[Row]) -> list[bool]: ...
    async def recent(self, session_id: str, limit: int) -> list[dict]: ...
    async def schema_version(self) -> int: ...
    async def claim_session(self, session_id: str) -> bool:
        """Record a client-named session; False when someone claimed it before."""
        ...


INSERT_COLUMNS = ("session_id, payload_id, received_at, client_ts, count, avg_ms, min_ms, max_ms, "
                  "p95_ms, p99_ms, body")


class SqliteStorage(Storage):
    kind = "sqlite"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        try:
            self._conn = self._open_checked()
            return
        except sqlite3.OperationalError as exc:  # cannot open (permissions, a directory, no space)
            raise StorageError(f"cannot open the metrics database {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:  # not a database, or damaged pages
            reason = str(exc)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        moved = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                src.replace(Path(str(moved) + suffix))
        log.error("metrics database %s is damaged (%s): moved aside to %s, starting a fresh one",
                  self.path, reason[:200], moved.name)
        self.recovered = {"reason": reason[:200], "moved_to": str(moved), "at": stamp}
        try:
            self._conn = self._open_checked()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot create a fresh metrics database {self.path}: {exc}") from None

    def _open_checked(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            return self._prepare(conn)
        except BaseException:
            conn.close()
            raise

    def _prepare(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an acknowledged row is on disk
        conn.execute("PRAGMA busy_timeout=5000")
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise sqlite3.DatabaseError("quick_check: " + "; ".join(str(r[0]) for r in check[:3]))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        for version, steps in enumerate(MIGRATIONS[current:], start=current + 1):
            conn.execute("BEGIN")
            for statement in steps["sqlite"]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        return conn

    async def _close(self) -> None:
        # Under the lock: a query whose awaiting task was cancelled (the health check's timeout, a
        # client gone) still runs in its worker thread, and closing the connection under it crashed
        # the process (SIGSEGV in sqlite3, seen once in CI with stress-ng beside it).
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def _db(self) -> sqlite3.Connection:
        """The open connection, under self._lock; a closed store is a StorageError, not a crash."""
        if self._conn is None:
            raise StorageError("the metrics database is closed")
        return self._conn

    async def _write(self, rows: list[Row]) -> list[bool]:
        return await asyncio.to_thread(self._write_sync, rows)

    def _write_sync(self, rows: list[Row]) -> list[bool]:
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = []
                for row in rows:
                    cur = conn.execute(
                        f"INSERT OR IGNORE INTO latency_payloads ({INSERT_COLUMNS}) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?)", row.values())
                    out.append(cur.rowcount == 1)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return out

    async def recent(self, session_id: str, limit: int) -> list[dict]:
        def query() -> list[dict]:
            with self._lock:
                rows = self._db().execute(
                    "SELECT body FROM latency_payloads WHERE session_id = ? "
                    "ORDER BY received_at DESC, id DESC LIMIT ?", (session_id, limit)).fetchall()
            return _bodies(rows)

        return await asyncio.to_thread(query)

    async def claim_session(self, session_id: str) -> bool:
        def claim() -> bool:
            with self._lock:
                cur = self._db().execute("INSERT OR IGNORE INTO sessions (session_id, created_at) VALUES (?, ?)",
                                         (session_id, time.time()))
                return cur.rowcount == 1

        return await asyncio.to_thread(claim)

    async def schema_version(self) -> int:
        def query() -> int:
            with self._lock:
                return self._db().execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

        return await asyncio.to_thread(query)


class PostgresStorage(Storage):
    """asyncpg pool; migrations under an advisory lock so replicas can start together."""

    kind = "postgres"
    LOCK_ID = 0x5A4D7261  # advisory lock key for migrations

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn
        self._pool = None

    async def _open(self) -> None:
        try:
            import asyncpg
        except ImportError:
            raise RuntimeError("PostgreSQL storage needs asyncpg: pip install 'sandra-tui[postgres]'") from None

        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            from sandra_tui import secrets

            secrets.register(self.dsn)
            raise StorageError(f"cannot open the PostgreSQL database: {secrets.redact(str(exc))[:200]}") from None
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", self.LOCK_ID)
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                current = await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0
                for version, steps in enumerate(MIGRATIONS[current:], start=current + 1):
                    for statement in steps["postgres"]:
                        await conn.execute(statement)
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)

    async def _close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _write(self, rows: list[Row]) -> list[bool]:
        placeholders = ",".join(f"${i}" for i in range(1, 12))
        sql = (f"INSERT INTO latency_payloads ({INSERT_COLUMNS}) VALUES ({placeholders}) "
               "ON CONFLICT (session_id, payload_id) DO NOTHING RETURNING id")
        out = []
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                for row in rows:
                    out.append(await conn.fetchval(sql, *row.values()) is not None)
        return out

    async def recent(self, session_id: str, limit: int) -> list[dict]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT body FROM latency_payloads WHERE session_id = $1 "
                "ORDER BY received_at DESC, id DESC LIMIT $2", session_id, limit)
        return _bodies((r["body"],) for r in rows)

    async def claim_session(self, session_id: str) -> bool:
        async with self._pool.acquire() as conn:
            return await conn.fetchval("INSERT INTO sessions (session_id, created_at) VALUES ($1, $2) "
                                       "ON CONFLICT (session_id) DO NOTHING RETURNING 1", session_id,
                                       time.time()) is not None

    async def schema_version(self) -> int:
        async with self._pool.acquire() as conn:
            return await conn.fetchval("SELECT MAX(version) FROM schema_version")


def open_storage(database_url: str | None, default_sqlite: Path) -> Storage:
    """`postgresql://...` -> PostgreSQL; `sqlite:///path` or nothing -> SQLite."""
    if database_url and database_url.startswith(("postgresql://", "postgres://")):
        return PostgresStorage(database_url)
    if database_url and database_url.startswith("sqlite:///"):
        return SqliteStorage(Path(database_url.removeprefix("sqlite:///")))
    if database_url:
        raise ValueError("SANDRA_DATABASE_URL must start with postgresql:// or sqlite:///")
    return SqliteStorage(default_sqlite)


def now() -> float:
    return time.time()
