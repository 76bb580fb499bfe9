"""Where payloads wait for delivery: the SQLite spool, or a bounded memory queue while it cannot be
written (full disk, unwritable file). Worker thread only.

Every payload is written before it is sent and deleted once the server answered for it, so a
crash or a close under way loses nothing on disk. When the disk fills, new payloads stay in
memory (the oldest dropped past `memory_max`, counted) and every few seconds the worker tries to
put them back on disk; rows already on disk are still read and sent.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque

from sandra_tui.telemetry.spool import Row, SpoolCorrupt, SpoolUnwritable, SqliteSpool

log = logging.getLogger(__name__)
MEMORY_MAX = 1000  # payloads (about 1 KB each) kept in memory while the disk is full
MAX_AGE_S = 25 * 3600  # the server takes a key up to 24 h after it expired (keys live <= 2 h)


class Outbox:
    def __init__(self, spool: SqliteSpool | None, notify=lambda key, message: None,
                 memory_max: int = MEMORY_MAX) -> None:
        self.spool = spool
        self.notify = notify
        self.memory_max = memory_max
        self.memory: deque[Row] = deque()
        self.on_disk = False
        self.lost = 0  # rows that could be kept nowhere (memory queue full, no disk at close)
        self.expired = 0
        self._gone: set[int] = set()  # delivered rows whose delete failed (disk full): never resent
        self._ids = itertools.count(-1, -1)  # memory rows have negative ids
        self._logged: set[str] = set()

    def _log_once(self, key: str, message: str, *args) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(message, *args)

    # -- the disk, with its troubles --------------------------------------------------------------
    def open(self) -> None:
        if self.spool is None:
            return
        try:
            self.spool.open()
            self.on_disk = True
        except SpoolUnwritable as exc:
            self._degrade(exc)

    def _degrade(self, exc: SpoolUnwritable) -> None:
        if self.on_disk or f"degraded:{exc}" not in self._logged:
            log.warning("telemetry spool %s: %s; keeping payloads in memory", self.spool.path, exc)
            self._logged.add(f"degraded:{exc}")
        self.on_disk = False
        where = self.spool.path.parent
        if exc.full:
            self.notify("full", f"The disk under {where} is full: telemetry is kept in memory (at most "
                                f"{self.memory_max} payloads) until there is room again.")
        else:
            self.notify("unwritable", f"The telemetry spool in {where} cannot be written ({exc}): telemetry "
                                      f"is kept in memory (at most {self.memory_max} payloads).")

    def _disk(self, operation, *args, degrade: bool = True):
        """(True, result) or (False, None) when the disk failed; damage -> a fresh file and one retry."""
        if self.spool is None or self.spool.db is None:
            return False, None
        for _ in range(2):
            try:
                return True, operation(*args)
            except SpoolCorrupt as exc:
                try:
                    self.spool.recover_from_corruption(exc)
                except SpoolUnwritable as err:
                    self._degrade(err)
                    return False, None
            except SpoolUnwritable as exc:
                if degrade:
                    self._degrade(exc)
                return False, None
        return False, None

    # -- rows ----------------------------------------------------------------------------------
    def put(self, row: Row) -> None:
        if self.on_disk:
            ok, _ = self._disk(self.spool.add, [row])
            if ok:
                if self.spool.dropped:
                    self._log_once("dropped", "telemetry spool over %d bytes: dropping the oldest payloads "
                                              "(%d so far)", self.spool.max_bytes, self.spool.dropped)
                return
        row.id = next(self._ids)
        self.memory.append(row)
        if len(self.memory) > self.memory_max:
            self.memory.popleft()
            self.lost += 1
            self._log_once("memory_full", "telemetry memory queue full (%d): dropping the oldest payloads",
                           self.memory_max)

    def groups(self) -> list[tuple]:
        """(url, token, session) of every group with rows waiting, oldest first."""
        found = []
        ok, on_disk = self._disk(self.spool.groups, degrade=False) if self.spool is not None else (False, None)
        if ok:
            found.extend(on_disk)
        for row in self.memory:
            if row.group not in found:
                found.append(row.group)
        return found

    def rows(self, group: tuple, limit: int = 20) -> list[Row]:
        out = []
        if self.spool is not None:
            ok, on_disk = self._disk(self.spool.rows, group, limit + len(self._gone), degrade=False)
            if ok:
                out = [r for r in on_disk if r.id not in self._gone][:limit]
        for row in self.memory:
            if len(out) >= limit:
                break
            if row.group == group:
                out.append(row)
        return out

    def done(self, row: Row) -> None:
        """The server answered for `row`: it is never sent again."""
        if row.id is not None and row.id < 0:
            try:
                self.memory.remove(row)
            except ValueError:
                pass  # already dropped from a full queue
            return
        ok, _ = self._disk(self.spool.delete, [row.id], degrade=False)
        if not ok:
            self._gone.add(row.id)

    def bind(self, session: str, url: str, token: str) -> None:
        for row in self.memory:
            if row.session == session and (row.url is None or row.token is None):
                row.url, row.token = row.url or url, row.token or token
        if self.spool is not None:
            self._disk(self.spool.bind, session, url, token, degrade=False)

    def __len__(self) -> int:
        """Payloads waiting (any thread may ask: no file access)."""
        on_disk = self.spool.count if self.spool is not None and self.spool.db is not None else 0
        return on_disk - len(self._gone) + len(self.memory)

    # -- every few seconds ---------------------------------------------------------------------
    def tick(self, now_wall: float) -> None:
        """Back to the disk when there is room; finish failed deletes; drop rows too old to deliver."""
        if self.spool is None:
            return
        if not self.on_disk and (self.memory or self.spool.db is None):
            try:
                if self.spool.db is None:
                    self.spool.open()
                self.spool.add(list(self.memory))  # one transaction: all of them or none
            except (SpoolUnwritable, SpoolCorrupt):
                pass  # still no room; the operator was told once
            else:
                log.info("telemetry spool writable again: %d payloads moved from memory to disk", len(self.memory))
                self.memory.clear()
                self.on_disk = True
        if self._gone:
            ok, _ = self._disk(self.spool.delete, sorted(self._gone), degrade=False)
            if ok:
                self._gone.clear()
        ok, count = self._disk(self.spool.expire, now_wall - MAX_AGE_S, degrade=False)
        if ok and count:
            self.expired += count
            log.warning("telemetry: dropped %d payloads older than %d h (their key is no longer accepted)",
                        count, MAX_AGE_S // 3600)

    def close(self) -> None:
        """Keep what is in memory on disk if at all possible; then close the file."""
        if self.spool is None:
            self.lost += len(self.memory)
            self.memory.clear()
            return
        if self.memory:
            self.tick(0.0)
        if self.memory:
            self.lost += len(self.memory)
            log.warning("telemetry: %d payloads lost at exit (no room on disk)", len(self.memory))
            self.memory.clear()
        if self._gone:  # delivered but still on disk: the next run would send them again
            self._disk(self.spool.delete, sorted(self._gone), degrade=False)
        self.spool.close()
