"""Sessions and storage under attack: a stolen session id, foreign payload ids (SQLite and
PostgreSQL), a damaged SQLite file, a database that cannot be opened."""

from __future__ import annotations

import sqlite3
import time
import uuid

import aiohttp
import pytest

from tests.agent_server import AgentServer, ServeProcess
from tests.hardening.attack import payload, token
from tests.server.helpers import discard

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["sqlite", "postgres"])
async def server(request, tmp_path):
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").dsn
    s = await AgentServer(tmp_path / "data", database_url=url).start()
    yield s
    await s.stop()


async def test_victim_session_is_not_handed_out_and_foreign_ids_do_not_block(server):
    """Before: a token for the victim's session_id read and wrote its metrics; an attacker's
    pre-posted payload id made the victim's payload a "duplicate", never stored."""
    url = server.url
    victim_session = f"victim-{uuid.uuid4().hex[:8]}"
    victim = await token(url, body={"session_id": victim_session})
    assert victim["session_id"] == victim_session  # the first to name it has it
    attacker = await token(url, "127.0.0.7", body={"session_id": victim_session})
    async with aiohttp.ClientSession() as http:
        async def post(t, body) -> dict:
            async with http.post(url + "/api/sandra/metrics", json=body,
                                 headers={"Authorization": f"Bearer {t['value']}"}) as r:
                return {"status": r.status, **(await r.json())}

        async def read(t, session) -> int:
            async with http.get(url + "/api/sandra/metrics", params={"sessionId": session},
                                headers={"Authorization": f"Bearer {t['value']}"}) as r:
                return r.status

        # the attacker pre-posts the victim's next payload id in the session it was given
        pre = await post(attacker, payload(attacker["session_id"], "victim-next-id"))
        as_victim = await post(attacker, payload(victim_session, "x1"))
        mine = await post(victim, payload(victim_session, "victim-next-id"))
        attacker_read = await read(attacker, victim_session)
        # the victim resumes with its previous key and keeps its session
        resumed = await token(url, body={"session_id": victim_session, "reconnect": True}, key=victim["value"])
        async with http.get(url + "/api/sandra/metrics", params={"sessionId": victim_session},
                            headers={"Authorization": f"Bearer {resumed['value']}"}) as r:
            stored = (await r.json())["payloads"]
    print(f"\nFIGURE victim session ({'postgres' if server.settings.database_url else 'sqlite'}): attacker got a new session "
          f"{attacker['session_id'] != victim_session}, write as victim {as_victim['status']}, "
          f"read victim {attacker_read}, victim's payload duplicate={mine.get('duplicate')}")
    assert attacker["session_id"] != victim_session
    assert pre["status"] == 202 and as_victim["status"] == 403 and attacker_read == 403
    assert mine["status"] == 202 and mine["duplicate"] is False
    assert resumed["session_id"] == victim_session
    assert [p["payloadId"] for p in stored] == ["victim-next-id"]


def _serve_with_db(tmp_path, db_bytes: bytes | None = None) -> ServeProcess:
    proc = ServeProcess()
    if db_bytes is not None:
        (proc.dir / "data").mkdir(parents=True, exist_ok=True)
        (proc.dir / "data" / "metrics.db").write_bytes(db_bytes)
    return proc


def _filled_db(path) -> bytes:
    """A metrics database as serve leaves it, with enough rows for many pages."""
    from sandra_tui.server.metrics.storage import MIGRATIONS

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, steps in enumerate(MIGRATIONS, start=1):
        for statement in steps["sqlite"]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    rows = [(f"s{i % 7}", f"p{i}", time.time(), "2026-01-01T00:00:00Z", 1, 1.0, 1.0, 1.0, 1.0, 1.0, "{}" + " " * 300)
            for i in range(2000)]
    conn.executemany("INSERT INTO latency_payloads (session_id, payload_id, received_at, client_ts, count, avg_ms, "
                     "min_ms, max_ms, p95_ms, p99_ms, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["middle", "header"])
async def test_a_damaged_database_is_moved_aside(tmp_path, damage):
    """Before: damage in the middle: /healthz ok, GET 500; a bad header: serve exited 1."""
    data = bytearray(_filled_db(tmp_path / "good.db"))
    if damage == "middle":
        middle = (len(data) // 4096 // 2) * 4096
        data[middle:middle + 4096] = b"\xa5" * 4096
    else:
        data[:16] = b"definitely-not-s"
    proc = _serve_with_db(tmp_path, bytes(data))
    try:
        proc.start()
        t = await token(proc.url, body={"session_id": f"after-{damage}"})
        async with aiohttp.ClientSession() as http:
            async with http.get(proc.url + "/healthz") as r:
                health = await r.json()
            auth = {"Authorization": f"Bearer {t['value']}"}
            async with http.post(proc.url + "/api/sandra/metrics", json=payload(t["session_id"], "a1"),
                                 headers=auth) as r:
                posted = r.status
            async with http.get(proc.url + "/api/sandra/metrics", params={"sessionId": t["session_id"]},
                                headers=auth) as r:
                got = r.status, len((await r.json())["payloads"])
    finally:
        proc.stop()
    moved = sorted(p.name for p in (proc.dir / "data").glob("metrics.db.corrupt-*"))
    lines = [line for line in proc.output().splitlines() if "is damaged" in line]
    print(f"\nFIGURE damaged database ({damage}): healthz {health.get('status')} "
          f"recovered={bool(health.get('storage_recovered'))}, POST {posted}, GET {got}, moved {moved}")
    assert health["status"] == "ok" and health["storage_recovered"]["moved_to"].endswith(moved[0])
    assert posted == 202 and got == (200, 1)
    assert len(lines) == 1 and "Traceback" not in proc.output()
    discard(proc)


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path):
    proc = ServeProcess()
    (proc.dir / "data" / "metrics.db").mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(RuntimeError, match="serve exited 1"):
        proc.start()
    out = proc.output()
    print(f"\nFIGURE unopenable database: {out.strip().splitlines()[-1]}")
    assert "Traceback" not in out and "cannot open the metrics database" in out
    discard(proc)
