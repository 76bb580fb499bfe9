"""The pieces alone: replica ids in call ids, the client's TLS context, the shared sliding window
on a real PostgreSQL (three pools standing in for three replicas)."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from sandra_tui.config import tls
from sandra_tui.server import replica
from sandra_tui.server.metrics.ratelimit import SHARED_SCHEMA, SharedWindowLimiter, retry_after, shared_key


def test_call_ids_name_the_replica():
    one = replica.new_call_id("r2")
    assert replica.replica_of(one) == "r2" and len(one) == len("rtc_r2_") + 24
    bare = replica.new_call_id(None)
    assert bare.startswith("rtc_") and replica.replica_of(bare) is None and replica.CALL_ID.match(bare)
    for bad in ("R1", "r_1", "r.1", "a" * 17, "r 1"):
        with pytest.raises(ValueError, match="SANDRA_REPLICA_ID"):
            replica.replica_id({"SANDRA_REPLICA_ID": bad})
    assert replica.replica_of("rtc_r1_xyz") is None  # not one of our ids: no route


def test_tls_context_verifies_with_the_ca_file_or_the_system_store(tmp_path):
    from tests.deploy.stack import make_ca

    ca, _, _ = make_ca(tmp_path)
    with_ca = tls.client_context({"SANDRA_CA_FILE": str(ca)})
    system = tls.client_context({})
    for ctx in (with_ca, system):
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in with_ca.get_ca_certs()] == [((("commonName", "sandra test CA"),),)]
    with pytest.raises(tls.TlsConfigError, match=r"SANDRA_CA_FILE=.*nope.pem"):
        tls.client_context({"SANDRA_CA_FILE": str(tmp_path / "nope.pem")})
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(tls.TlsConfigError):
        tls.client_context({"SANDRA_CA_FILE": str(tmp_path / "junk.pem")})


def test_retry_after_is_whole_seconds_never_zero():
    assert [retry_after(w) for w in (0.001, 0.999, 1.0, 1.01, 59.2)] == ["1", "1", "1", "2", "60"]
    assert shared_key("address", "127.0.0.1") != shared_key("token", "127.0.0.1")
    assert "127.0.0.1" not in shared_key("address", "127.0.0.1")  # digests, not addresses or keys


async def test_shared_window_is_exact_under_concurrency_and_slides(postgres_server):
    import asyncpg

    admin = await asyncpg.connect(postgres_server.dsn)
    await admin.execute("DROP DATABASE IF EXISTS ratelimit_unit")
    await admin.execute("CREATE DATABASE ratelimit_unit")  # a table of its own: the sweep sees only ours
    await admin.close()
    dsn = postgres_server.dsn.rpartition("/")[0] + "/ratelimit_unit"
    pools = [await asyncpg.create_pool(dsn, min_size=1, max_size=4) for _ in range(3)]
    try:
        async with pools[0].acquire() as conn:
            for statement in SHARED_SCHEMA:
                await conn.execute(statement)
        limiters = [SharedWindowLimiter(pool, window_s=3.0) for pool in pools]
        key = f"unit-{id(pools)}"
        results = await asyncio.gather(*(limiters[i % 3].hit_all([("address", key, 50)]) for i in range(80)))
        assert sum(r is None for r in results) == 50  # 80 at once over three "replicas": exactly 50
        refused = [r for r in results if r is not None]
        assert all(index == 0 and 0 < wait <= 3.0 for index, wait in refused)
        # all or nothing: refused by the second key, not counted against the first
        other = key + "-b"
        assert await limiters[0].hit_all([("address", other, 50), ("token", key, 1)]) is None
        assert await limiters[1].hit_all([("address", other, 50), ("token", key, 1)]) == (1, pytest.approx(3.0, abs=1))
        async with pools[0].acquire() as conn:
            n = await conn.fetchval("SELECT count(*) FROM sandra_rate_hits WHERE k = $1",
                                    shared_key("address", other))
        assert n == 1
        await asyncio.sleep(3.2)  # the window slides: the oldest hits are out
        assert await limiters[2].hit_all([("address", key, 50)]) is None
        # the key hit again dropped its own old rows; the sweep takes the two keys not seen since
        assert await limiters[0].sweep() == 2
    finally:
        for pool in pools:
            await pool.close()


def test_a_bad_replica_id_stops_serve_at_start(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "SANDRA_REPLICA_ID": "R_1", "SANDRA_DATA_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "sandra_tui", "serve", "--port", "0"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "SANDRA_REPLICA_ID must be 1-16 lowercase letters or digits" in r.stderr and "Traceback" not in r.stderr
