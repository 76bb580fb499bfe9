"""The telemetry spool: one SQLite file (WAL), used only from the uploader's worker thread.

Each row is one payload with what it must be delivered with: the metrics URL, the key and the
session it was made under (a payload sent with another call's key gets 403 and is lost). Rows
are deleted once the server answered for them, so delivery is at least once (the server dedupes
on payloadId). A damaged file is renamed `<name>.corrupt-<timestamp>` and a fresh one started;
the JSONL spool of earlier versions is imported once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
HEADER = b"SQLite format 3\x00"
LEGACY_NAME = "telemetry-spool.jsonl"
SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    url TEXT,
    token TEXT,
    session TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_group ON spool (url, token, session, id);
"""


@dataclass
class Row:
    payload: str  # the JSON body, exactly as it will be posted
    url: str | None
    token: str | None = field(repr=False)  # a secret: never in a repr or a log line
    session: str
    created: float  # wall clock, for the age limit
    id: int | None = None

    @property
    def group(self) -> tuple:
        return (self.url, self.token, self.session)


class SpoolUnwritable(Exception):
    """The disk is full or the file cannot be written; `full` tells which."""

    def __init__(self, reason: str, full: bool) -> None:
        super().__init__(reason)
        self.full = full


class SpoolCorrupt(Exception):
    pass


def trouble(exc: BaseException) -> Exception:
    """An sqlite3/OS error -> SpoolCorrupt or SpoolUnwritable (what the caller can act on)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return SpoolCorrupt(str(exc))
    full = name.startswith("SQLITE_FULL") or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT))
    return SpoolUnwritable("disk full" if full else f"{name or type(exc).__name__}: {exc}", full)


def _parse_ts(text) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class SqliteSpool:
    def __init__(self, path: Path, max_bytes: int, notify=lambda key, message: None, clock=time.time) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.notify = notify  # (condition, message): the caller tells the operator once per condition
        self.clock = clock
        self.db: sqlite3.Connection | None = None
        self.bytes = 0
        self.count = 0  # rows in the file, kept here so any thread may read it
        self.dropped = 0  # oldest rows dropped to stay under max_bytes
        self.imported = 0
        self.skipped_lines = 0
        self.moved_aside: list[Path] = []
        self.io_threads: set[int] = set()  # every thread that touched the file (tests: only the worker)

    # -- opening ---------------------------------------------------------------------------------
    def open(self) -> None:
        """Open (or create) the file; a damaged one is moved aside. Raises SpoolUnwritable."""
        self._mark()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.path.exists() and not self._header_ok():
                self._move_aside("not a SQLite database")
            try:
                self._connect()
            except SpoolCorrupt as exc:
                self._close_db()
                self._move_aside(str(exc))
                self._connect()
        except OSError as exc:
            raise trouble(exc) from None
        self.import_legacy()

    def _header_ok(self) -> bool:
        with open(self.path, "rb") as handle:
            head = handle.read(len(HEADER))
        return head == HEADER or head == b""  # an empty file is an empty database

    def _connect(self) -> None:
        try:
            self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=5.0)
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)  # it holds keys
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, no fsync per row
            self.db.execute("PRAGMA wal_autocheckpoint=256")  # a WAL of 1 MB at most, not 4 MB
            self.db.execute("PRAGMA journal_size_limit=1048576")
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise SpoolCorrupt(f"quick_check: {check.splitlines()[0][:200]}")
            self.db.executescript(SCHEMA)
            self.bytes, self.count = self.db.execute(
                "SELECT COALESCE(SUM(LENGTH(payload)), 0), COUNT(*) FROM spool").fetchone()
        except sqlite3.Error as exc:
            self._close_db()
            raise trouble(exc) from None

    def _move_aside(self, why: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(self.clock()))
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        self.path.rename(target)
        for suffix in ("-wal", "-shm"):  # they belong to the damaged file, not to the fresh one
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
        self.moved_aside.append(target)
        log.warning("telemetry spool %s is damaged (%s): moved aside to %s", self.path, why, target.name)
        self.notify("corrupt", f"The telemetry spool was damaged ({why}); it was moved aside to "
                               f"{target.name} and a fresh one started.")

    def recover_from_corruption(self, exc: SpoolCorrupt) -> None:
        """Damage found while in use: move the file aside and start a fresh one."""
        self._close_db()
        try:
            self._move_aside(str(exc))
            self._connect()
        except OSError as err:
            raise trouble(err) from None

    def import_legacy(self) -> None:
        """The JSONL spool of earlier versions, once: good lines become rows, bad ones are counted."""
        legacy = self.path.with_name(LEGACY_NAME)
        if not legacy.exists():
            return
        self._mark()
        rows, bad = [], 0
        for line in legacy.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                payload = json.loads(line.decode("utf-8"))
                session = payload["sessionId"]
                if not isinstance(session, str):
                    raise TypeError
            except (ValueError, UnicodeDecodeError, KeyError, TypeError):
                bad += 1
                continue
            created = _parse_ts(payload.get("timestamp")) or self.clock()
            # Its key was never kept: such a row can only go out with a key of its own session.
            rows.append(Row(json.dumps(payload, separators=(",", ":")), None, None, session, created))
        self.add(rows)  # raises SpoolUnwritable: the file stays and is imported another time
        self.imported += len(rows)
        self.skipped_lines += bad
        if bad:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(self.clock()))
            target = legacy.with_name(f"{legacy.name}.corrupt-{stamp}")
            legacy.rename(target)
            self.moved_aside.append(target)
            log.warning("telemetry: imported %d payloads of %s, skipped %d bad lines; moved it to %s",
                        len(rows), legacy.name, bad, target.name)
            self.notify("corrupt", f"The old telemetry spool had {bad} damaged lines; {len(rows)} payloads were "
                                   f"kept and the file moved aside to {target.name}.")
        else:
            legacy.unlink()
            log.info("telemetry: imported %d payloads of %s", len(rows), legacy.name)

    # -- rows ------------------------------------------------------------------------------------
    def _mark(self) -> None:
        self.io_threads.add(threading.get_ident())

    @contextlib.contextmanager
    def _tx(self):
        self._mark()
        if self.db is None:
            raise SpoolUnwritable("the spool is not open", False)
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise trouble(exc) from None

    def _query(self, sql: str, args=()) -> list:
        self._mark()
        if self.db is None:
            raise SpoolUnwritable("the spool is not open", False)
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise trouble(exc) from None

    def add(self, rows: list[Row]) -> None:
        if not rows:
            return
        ids = []
        with self._tx() as db:
            for row in rows:
                cur = db.execute("INSERT INTO spool (created, url, token, session, payload) VALUES (?, ?, ?, ?, ?)",
                                 (row.created, row.url, row.token, row.session, row.payload))
                ids.append(cur.lastrowid)
        for row, rid in zip(rows, ids):
            row.id = rid
        self.bytes += sum(len(r.payload) for r in rows)
        self.count += len(rows)
        if self.bytes > self.max_bytes:
            self._shrink()

    def _shrink(self) -> None:
        """Drop the oldest rows down to 90% of the limit (counted; the caller logs it once)."""
        excess = self.bytes - int(self.max_bytes * 0.9)
        last, freed, count = None, 0, 0
        for rid, size in self._query("SELECT id, LENGTH(payload) FROM spool ORDER BY id"):
            if freed >= excess:
                break
            last, freed, count = rid, freed + size, count + 1
        if last is None:
            return
        with self._tx() as db:
            db.execute("DELETE FROM spool WHERE id <= ?", (last,))
        self.bytes -= freed
        self.count -= count
        self.dropped += count

    def groups(self) -> list[tuple]:
        """(url, token, session) of every waiting group, oldest first."""
        return [tuple(g) for g in self._query(
            "SELECT url, token, session FROM spool GROUP BY url, token, session ORDER BY MIN(id)")]

    def rows(self, group: tuple, limit: int = 20) -> list[Row]:
        url, token, session = group
        found = self._query("SELECT id, created, url, token, session, payload FROM spool "
                            "WHERE url IS ? AND token IS ? AND session = ? ORDER BY id LIMIT ?",
                            (url, token, session, limit))
        return [Row(p, u, t, s, c, i) for i, c, u, t, s, p in found]

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._tx() as db:
            sizes = db.execute(f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM spool WHERE id IN "
                               f"({','.join('?' * len(ids))})", ids).fetchone()[0]
            deleted = db.execute(f"DELETE FROM spool WHERE id IN ({','.join('?' * len(ids))})", ids).rowcount
        self.bytes -= sizes
        self.count -= deleted

    def bind(self, session: str, url: str, token: str) -> int:
        """Rows of `session` made before its URL or key was known get them now."""
        with self._tx() as db:
            cur = db.execute("UPDATE spool SET url = COALESCE(url, ?), token = COALESCE(token, ?) "
                             "WHERE session = ? AND (url IS NULL OR token IS NULL)", (url, token, session))
            return cur.rowcount

    def expire(self, before: float) -> int:
        """Drop rows made before `before` (their key is past the server's grace period)."""
        with self._tx() as db:
            size = db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM spool WHERE created < ?",
                              (before,)).fetchone()[0]
            count = db.execute("DELETE FROM spool WHERE created < ?", (before,)).rowcount
        self.bytes -= size
        self.count -= count
        return count

    def _close_db(self) -> None:
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
            self.db = None

    def close(self) -> None:
        self._mark()
        self._close_db()
