"""The metrics API over real HTTP on loopback, with real SQLite and PostgreSQL storage."""

import asyncio
import json
import math

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandra_tui.server.metrics.api import MetricsApi, MetricsSettings
from sandra_tui.server.metrics.storage import SCHEMA_VERSION, PostgresStorage, SqliteStorage
from tests.helpers import serve_app

TOKENS = {"tok_a": "sess_a", "tok_b": "sess_b"}
ORIGIN = "https://widget.example"


def payload(session="sess_a", avg=250.0, pid=None, **extra):
    body = {
        "type": "realtime_latency",
        "sessionId": session,
        "metrics": {"count": 45, "avg": avg, "min": 120.0, "max": 890.0, "p95": 650.0, "p99": 850.0},
        "byName": {"response_latency": {"count": 10, "avg": avg, "min": 120.0, "max": 890.0, "p95": 650.0,
                                        "p99": 850.0}},
        "timestamp": "2026-11-25T10:00:00.000Z",
    }
    if pid:
        body["payloadId"] = pid
    body.update(extra)
    return body


class Server:
    def __init__(self, storage, **kw):
        self.api = MetricsApi(storage, TOKENS.get, MetricsSettings(cors_origins={ORIGIN}, **kw))

    async def __aenter__(self):
        app = web.Application()
        self.api.install(app)
        self.runner, self.url = await serve_app(app)
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc):
        await self.http.close()
        await self.runner.cleanup()

    async def post(self, body, token="tok_a", **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        kw.setdefault("content_type", "application/json")
        headers["Content-Type"] = kw.pop("content_type")
        async with self.http.post(self.url + "/api/sandra/metrics", data=data, headers=headers) as r:
            return r.status, dict(r.headers), await r.text()

    async def get(self, session, token="tok_a", query=""):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.get(f"{self.url}/api/sandra/metrics?sessionId={session}{query}", headers=headers) as r:
            return r.status, await r.json(content_type=None)


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request, tmp_path):
    if request.param == "sqlite":
        yield SqliteStorage(tmp_path / "metrics.db")
    else:
        pg = request.getfixturevalue("postgres_server")
        import asyncpg

        conn = await asyncpg.connect(pg.dsn)
        await conn.execute("DROP TABLE IF EXISTS latency_payloads; DROP TABLE IF EXISTS schema_version")
        await conn.close()
        yield PostgresStorage(pg.dsn)


async def test_post_then_get_newest_first(storage):
    async with Server(storage) as s:
        for avg in (200.0, 300.0, 400.0):
            status, _, _ = await s.post(payload(avg=avg))
            assert status == 202
        status, body = await s.get("sess_a")
        assert status == 200
        assert [p["metrics"]["avg"] for p in body["payloads"]] == [400.0, 300.0, 200.0]
        status, body = await s.get("sess_a", query="&limit=1")
        assert len(body["payloads"]) == 1
        async with s.http.get(s.url + "/metrics") as r:
            text = await r.text()
        assert 'sandra_latency_last_p95_ms{name="response_latency"} 650.0' in text
        assert 'sandra_metrics_payloads_total{outcome="stored"} 3.0' in text
        async with s.http.get(s.url + "/healthz") as r:
            health = await r.json()
        assert health["status"] == "ok" and health["schema_version"] == SCHEMA_VERSION


async def test_auth_and_session_isolation(storage):
    async with Server(storage) as s:
        assert (await s.post(payload(), token=None))[0] == 401
        assert (await s.post(payload(), token="forged"))[0] == 401
        assert (await s.post(payload(session="sess_b"), token="tok_a"))[0] == 403
        assert (await s.post(payload(session="sess_b"), token="tok_b"))[0] == 202
        assert (await s.get("sess_b", token="tok_a"))[0] == 403
        assert (await s.get("sess_b", token=None))[0] == 401
        assert len((await s.get("sess_b", token="tok_b"))[1]["payloads"]) == 1


async def test_duplicate_payload_id_is_stored_once(storage):
    async with Server(storage) as s:
        assert (await s.post(payload(pid="p1")))[0] == 202
        status, _, text = await s.post(payload(pid="p1"))
        assert status == 202 and json.loads(text)["duplicate"] is True
        assert len((await s.get("sess_a"))[1]["payloads"]) == 1


@pytest.mark.parametrize("body,content_type,status", [
    (b"{not json", "application/json", 400),
    (json.dumps(payload(avg=-5)), "application/json", 400),
    (json.dumps(payload(avg=1e300)), "application/json", 400),
    ('{"type":"realtime_latency","sessionId":"sess_a","metrics":{"count":1,"avg":NaN,"min":1,"max":1,"p95":1,"p99":1},"timestamp":"2026-11-25T10:00:00Z"}', "application/json", 400),
    (json.dumps(payload(sessionId="bad id!")), "application/json", 400),
    (json.dumps(payload(extra_field=1)), "application/json", 400),
    (json.dumps(payload(timestamp="yesterday")), "application/json", 400),
    ("[" * 5000 + "]" * 5000, "application/json", 400),
    (json.dumps(payload()), "text/plain", 415),
    (b"x" * 20000, "application/json", 413),
])
async def test_bad_input_is_refused_and_not_stored(tmp_path, body, content_type, status):
    async with Server(SqliteStorage(tmp_path / "m.db")) as s:
        got, _, text = await s.post(body, content_type=content_type)
        assert got == status
        assert "error" in json.loads(text)
        assert (await s.get("sess_a"))[1]["payloads"] == []


async def test_rate_limit_1001st_request_gets_429(tmp_path):
    async with Server(SqliteStorage(tmp_path / "m.db")) as s:
        async def one():
            return (await s.post(payload()))[0]
        statuses = []
        for _ in range(10):
            statuses += await asyncio.gather(*[one() for _ in range(100)])
        assert statuses.count(202) == 1000
        status, headers, _ = await s.post(payload())
        assert status == 429 and int(headers["Retry-After"]) >= 1
        async with s.http.get(s.url + "/metrics") as r:
            assert 'sandra_rate_limited_requests_total{scope="address"} 1.0' in await r.text()


async def test_cors_allowlist(tmp_path):
    async with Server(SqliteStorage(tmp_path / "m.db")) as s:
        status, headers, _ = await s.post(payload(), headers={"Origin": ORIGIN})
        assert status == 202 and headers["Access-Control-Allow-Origin"] == ORIGIN
        status, headers, _ = await s.post(payload(), headers={"Origin": "https://evil.example"})
        assert status == 202 and not any(h.lower().startswith("access-control") for h in headers)
        async with s.http.options(s.url + "/api/sandra/metrics", headers={
                "Origin": ORIGIN, "Access-Control-Request-Method": "POST"}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        async with s.http.options(s.url + "/api/sandra/metrics", headers={
                "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}) as r:
            assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        # CORS is not authentication: an allowed origin without a token is still refused.
        assert (await s.post(payload(), token=None, headers={"Origin": ORIGIN}))[0] == 401


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.dictionaries(st.sampled_from(["type", "sessionId", "metrics", "timestamp", "byName",
                                                 "payloadId", "junk"]), json_values, min_size=1, max_size=3),
       stat_key=st.sampled_from(["count", "avg", "min", "max", "p95", "p99"]), stat_value=json_values)
def test_fuzzed_payloads_never_500_never_store_bad_rows(tmp_path_factory, mutation, stat_key, stat_value):
    from sandra_tui.server.metrics.validate import PayloadError, parse_payload

    body = payload()
    body.update(mutation)
    if isinstance(body.get("metrics"), dict):
        body["metrics"] = {**body["metrics"], stat_key: stat_value}
    raw = json.dumps(body, allow_nan=True).encode()
    try:
        clean = parse_payload(raw)
    except PayloadError:
        return
    for stats in [clean["metrics"], *clean.get("byName", {}).values()]:
        for key, value in stats.items():
            assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


async def test_fuzz_over_http_never_500(tmp_path):
    """A sample of hostile bodies over real HTTP: always a 4xx JSON error, never a 500."""
    bodies = [b"", b"null", b"[]", b'{"type": 1}', b'"x"', b"1e999", b'{"metrics": {"count": "1"}}',
              json.dumps(payload(metrics={"count": True, "avg": 1, "min": 1, "max": 1, "p95": 1, "p99": 1})).encode(),
              b"\xff\xfe\x00", b'{"a":' * 3000]
    async with Server(SqliteStorage(tmp_path / "m.db")) as s:
        for body in bodies:
            status, _, _ = await s.post(body)
            assert 400 <= status < 500, body[:40]
        assert (await s.get("sess_a"))[1]["payloads"] == []
