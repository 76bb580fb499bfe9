"""Issue #20 item 1: the call history's retention (days and count) and delete, in the store and
through `sandra-tui history --delete / --prune`, on a real SQLite file."""

import os
import sqlite3
import subprocess
import sys
import time

from sandra_tui.call.call_log import CallRecord, CallStore

DAY = 86400
NOW = 1_767_000_000.0


def record(age_days: float, text: str, now: float = NOW) -> CallRecord:
    start = now - age_days * DAY
    return CallRecord(start, start + 60, "ended", turns=1,
                      messages=[{"ts": start + 1, "role": "user", "text": text, "status": ""}])


def message_rows(path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]


def test_retention_by_days_then_by_count_and_transcripts_go_with_their_calls(tmp_path):
    store = CallStore(tmp_path / "calls.sqlite3")
    ids = [store.add(record(age, f"call aged {age}")) for age in (40, 20, 5, 2, 1, 0.5)]
    assert (tmp_path / "calls.sqlite3").stat().st_mode & 0o777 == 0o600  # transcripts are private
    assert store.prune(keep_days=30, now=NOW) == 1  # the 40-day-old one
    assert [c.id for c in store.calls()] == ids[:0:-1]
    assert store.prune(keep_calls=3, now=NOW) == 2  # the newest three stay
    assert [c.id for c in store.calls()] == ids[:2:-1]
    assert store.prune(keep_days=0, keep_calls=0, now=NOW) == 0  # 0 = no limit
    assert message_rows(tmp_path / "calls.sqlite3") == 3  # no transcript outlives its call
    assert store.delete(ids[3]) and not store.delete(ids[3])
    assert store.get(ids[3]) is None and message_rows(tmp_path / "calls.sqlite3") == 2


def test_history_command_deletes_and_prunes(tmp_path):
    db = tmp_path / "calls.sqlite3"
    store = CallStore(db)
    old = store.add(record(40, "an old call", now=time.time()))  # the command prunes against the real clock
    new = store.add(record(0, "today", now=time.time()))
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[history]\ncalls_db = "{db}"\nkeep_days = 30\n')
    env = {**os.environ, "SANDRA_CONFIG": str(cfg)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "sandra_tui.cli", "history", *args], capture_output=True,
                              text=True, env=env, timeout=60)

    r = run("--prune")
    assert r.returncode == 0 and "pruned 1 call(s) (keep_days=30" in r.stdout
    assert [c.id for c in store.calls()] == [new] and store.get(old) is None
    assert run("--delete", str(new)).returncode == 0 and store.calls() == []
    r = run("--delete", str(new))
    assert r.returncode == 1 and f"no call {new}" in r.stderr
