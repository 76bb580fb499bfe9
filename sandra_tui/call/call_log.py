"""Call history: every call's figures and transcript in SQLite under the user data dir.

`CallStore` is the database (stdlib sqlite3, one connection per operation so any thread may
use it). `CallLogger` subscribes to a controller's events and, when the call ends, writes one
row and its transcript on a worker thread (never on the call's loop), then puts the call's
summary line in the transcript and publishes it as a CallSummary event.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import sqlite3
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import platformdirs

from sandra_tui.call.events import (
    CallState,
    CallSummary,
    Event,
    LatencySample,
    Quality,
    ReconnectAttempt,
    RecordingChanged,
    SessionRenewed,
    StateChanged,
    ToolCall,
)
from sandra_tui.telemetry.stats import percentile

log = logging.getLogger("sandra_tui.call")
IDLE = (CallState.IDLE, CallState.ENDED, CallState.FAILED)
TURN_LATENCY = ("response_latency", "text_response_latency")
SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL, ended_at REAL NOT NULL, duration_s REAL NOT NULL,
    end_state TEXT NOT NULL, end_reason TEXT, reconnects INTEGER NOT NULL, renewals INTEGER NOT NULL,
    mos_avg REAL, mos_min REAL, latency_p50_ms REAL, latency_p95_ms REAL, turns INTEGER NOT NULL,
    tool_calls INTEGER NOT NULL, recording TEXT, summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    call_id INTEGER NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, ts REAL NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
"""


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("sandra-tui")) / "calls.sqlite3"


def db_path(history_config) -> Path:
    return Path(history_config.calls_db).expanduser() if history_config.calls_db else default_db_path()


@dataclass
class CallRecord:
    started_at: float
    ended_at: float
    end_state: str
    end_reason: str | None = None
    reconnects: int = 0
    renewals: int = 0
    mos_avg: float | None = None
    mos_min: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    turns: int = 0
    tool_calls: int = 0
    recording: str | None = None
    summary: str = ""
    messages: list[dict] = field(default_factory=list)  # {ts, role, text, status}
    id: int | None = None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["duration_s"] = round(self.duration_s, 1)
        return data


def clock_text(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def summary_line(r: CallRecord) -> str:
    parts = [f"Call {clock_text(r.duration_s)}", f"{r.turns} turn{'s' * (r.turns != 1)}"]
    if r.reconnects:
        parts.append(f"{r.reconnects} reconnect{'s' * (r.reconnects != 1)}")
    if r.renewals:
        parts.append(f"{r.renewals} renewal{'s' * (r.renewals != 1)}")
    if r.mos_avg is not None:
        parts.append(f"MOS {r.mos_avg:.1f} (min {r.mos_min:.1f})")
    if r.latency_p50_ms is not None:
        parts.append(f"latency p50 {r.latency_p50_ms:.0f} ms, p95 {r.latency_p95_ms:.0f} ms")
    if r.tool_calls:
        parts.append(f"{r.tool_calls} tool call{'s' * (r.tool_calls != 1)}")
    if r.end_state == "failed":
        parts.append(f"failed: {r.end_reason or 'unknown'}")
    if r.recording:
        parts.append(f"recorded to {r.recording}")
    return " · ".join(parts)


class CallStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._db() as db:
            db.executescript(SCHEMA)
        with contextlib.suppress(OSError):
            self.path.chmod(0o600)  # transcripts are private

    @contextlib.contextmanager
    def _db(self):
        db = sqlite3.connect(self.path, timeout=5)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            with db:
                yield db
        finally:
            db.close()

    def add(self, r: CallRecord) -> int:
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO calls (started_at, ended_at, duration_s, end_state, end_reason, reconnects, renewals,"
                " mos_avg, mos_min, latency_p50_ms, latency_p95_ms, turns, tool_calls, recording, summary)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (r.started_at, r.ended_at, r.duration_s, r.end_state, r.end_reason, r.reconnects, r.renewals,
                 r.mos_avg, r.mos_min, r.latency_p50_ms, r.latency_p95_ms, r.turns, r.tool_calls, r.recording,
                 r.summary))
            call_id = int(cur.lastrowid)
            db.executemany("INSERT INTO messages (call_id, seq, ts, role, text, status) VALUES (?,?,?,?,?,?)",
                           [(call_id, i, m["ts"], m["role"], m["text"], m.get("status", ""))
                            for i, m in enumerate(r.messages)])
        r.id = call_id
        return call_id

    def calls(self, limit: int = 1000) -> list[CallRecord]:
        """Newest first, without their transcripts."""
        with self._db() as db:
            rows = db.execute("SELECT id, started_at, ended_at, end_state, end_reason, reconnects, renewals, mos_avg,"
                              " mos_min, latency_p50_ms, latency_p95_ms, turns, tool_calls, recording, summary"
                              " FROM calls ORDER BY started_at DESC, id DESC LIMIT ?", (limit,)).fetchall()
        return [self._record(row) for row in rows]

    def get(self, call_id: int) -> CallRecord | None:
        with self._db() as db:
            row = db.execute("SELECT id, started_at, ended_at, end_state, end_reason, reconnects, renewals, mos_avg,"
                             " mos_min, latency_p50_ms, latency_p95_ms, turns, tool_calls, recording, summary"
                             " FROM calls WHERE id = ?", (call_id,)).fetchone()
            if row is None:
                return None
            record = self._record(row)
            record.messages = [{"ts": ts, "role": role, "text": text, "status": status} for ts, role, text, status in
                               db.execute("SELECT ts, role, text, status FROM messages WHERE call_id = ? ORDER BY seq",
                                          (call_id,))]
        return record

    def delete(self, call_id: int) -> bool:
        with self._db() as db:
            return db.execute("DELETE FROM calls WHERE id = ?", (call_id,)).rowcount > 0

    def prune(self, keep_days: int = 0, keep_calls: int = 0, now: float | None = None) -> int:
        """Retention: drop calls older than keep_days and beyond the newest keep_calls (0 = no limit)."""
        now = time.time() if now is None else now
        removed = 0
        with self._db() as db:
            if keep_days:
                removed += db.execute("DELETE FROM calls WHERE started_at < ?", (now - keep_days * 86400,)).rowcount
            if keep_calls:
                removed += db.execute("DELETE FROM calls WHERE id NOT IN (SELECT id FROM calls ORDER BY started_at"
                                      " DESC, id DESC LIMIT ?)", (keep_calls,)).rowcount
        return removed

    @staticmethod
    def _record(row) -> CallRecord:
        (cid, started, ended, state, reason, reconnects, renewals, mos_avg, mos_min, p50, p95, turns, tools,
         recording, summary) = row
        return CallRecord(started, ended, state, reason, reconnects, renewals, mos_avg, mos_min, p50, p95, turns,
                          tools, recording, summary, id=cid)


def export(record: CallRecord, fmt: str = "md") -> str:
    if fmt == "json":
        return json.dumps(record.to_dict(), indent=2, ensure_ascii=False)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started_at))
    lines = [f"# Call {record.id} — {started}", "", record.summary, ""]
    who = {"user": "You", "assistant": "Sandra", "tool": "Tool", "summary": "Call"}
    for m in record.messages:
        at = time.strftime("%H:%M:%S", time.localtime(m["ts"]))
        status = f" *({m['status']})*" if m.get("status") else ""
        lines.append(f"**{who.get(m['role'], m['role'])}** ({at}): {m['text']}{status}")
        lines.append("")
    return "\n".join(lines)


class CallLogger:
    """Figures of the running call from the controller's events; one history row per call."""

    def __init__(self, controller, store: CallStore | None, *, keep_days: int = 0, keep_calls: int = 0,
                 clock=time.time) -> None:
        self.controller = controller
        self.store = store
        self.keep_days, self.keep_calls = keep_days, keep_calls
        self.clock = clock
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandra-calllog")
        self.pending: list[concurrent.futures.Future] = []
        self._reset()
        self._unsubscribe = controller.subscribe(self.on_event)

    def _reset(self) -> None:
        self.started_at: float | None = None
        self.reconnects = 0
        self.renewals = 0
        self.mos: list[float] = []
        self.latency: list[float] = []
        self.tool_calls: set[str] = set()
        self.recording: str | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            if event.state not in IDLE and self.started_at is None:
                self.started_at = self.clock()  # the transcript's part of this call starts here
            elif event.state in (CallState.ENDED, CallState.FAILED) and self.started_at is not None:
                self._finish(event)
        elif self.started_at is None:
            return
        elif isinstance(event, ReconnectAttempt):
            self.reconnects += 1
        elif isinstance(event, SessionRenewed):
            self.renewals = event.count
        elif isinstance(event, Quality) and event.mos is not None:
            self.mos.append(event.mos)
        elif isinstance(event, LatencySample) and event.name in TURN_LATENCY:
            self.latency.append(event.ms)
        elif isinstance(event, ToolCall):
            self.tool_calls.add(event.call_id)
        elif isinstance(event, RecordingChanged) and event.path:
            self.recording = event.path

    def _finish(self, event: StateChanged) -> None:
        messages = [m for m in self.controller.history.messages()
                    if m.ts >= self.started_at and m.role != "summary"]
        record = CallRecord(
            started_at=self.started_at, ended_at=self.clock(), end_state=event.state.value, end_reason=event.reason,
            reconnects=self.reconnects, renewals=self.renewals,
            mos_avg=round(statistics.fmean(self.mos), 2) if self.mos else None,
            mos_min=min(self.mos) if self.mos else None,
            latency_p50_ms=percentile(self.latency, 0.5), latency_p95_ms=percentile(self.latency, 0.95),
            turns=sum(1 for m in messages if m.role == "assistant"), tool_calls=len(self.tool_calls),
            recording=self.recording,
            messages=[{"ts": m.ts, "role": m.role, "text": m.content, "status": m.status} for m in messages])
        record.summary = summary_line(record)
        self._reset()
        self.controller.history.add("summary", record.summary)
        if self.store is None:
            self.controller.bus.publish(CallSummary(record.summary, None))
            return
        self.pending = [f for f in self.pending if not f.done()]
        self.pending.append(self._pool.submit(self._save, record))

    def _save(self, record: CallRecord) -> int | None:
        try:
            call_id = self.store.add(record)
            self.store.prune(self.keep_days, self.keep_calls)
        except (sqlite3.Error, OSError):
            log.exception("saving the call to the history failed")
            return None
        self.controller.bus.publish(CallSummary(record.summary, call_id))
        return call_id

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait for the last row to be written, then stop listening."""
        concurrent.futures.wait(self.pending, timeout=timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=False)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
