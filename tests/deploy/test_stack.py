"""Three `serve` replicas on one PostgreSQL behind nginx (deploy/nginx/sandra.conf) with TLS:
keys, limits and calls hold across the replicas; Prometheus (deploy/prometheus/) scrapes them."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
import urllib.request
from collections import Counter

import aiohttp
import pytest

from tests.deploy.client import Client, payload
from tests.deploy.conftest import require_tools
from tests.deploy.stack import DEPLOY, Prometheus, client_ssl

DASHBOARD = DEPLOY / "grafana" / "sandra-dashboard.json"


async def test_round_robin_token_metrics_get_on_three_replicas(stack):
    c = Client(stack, "127.0.0.2")
    try:
        token, minted_by = await c.token()
        assert token["realtime_url"] == stack.nginx.url + "/v1/realtime/calls"  # https, through nginx
        sent = payload(c.session)
        status, _, body, posted_to = await c.request("POST", "/api/sandra/metrics", key=c.key, json=sent)
        assert status == 202, body
        status, _, body, read_from = await c.request("GET", f"/api/sandra/metrics?sessionId={c.session}",
                                                     key=c.key)
        assert status == 200, body
        assert [p["payloadId"] for p in body["payloads"]] == [sent["payloadId"]]
        # each request on another replica: the key minted by one is good on the other two
        assert len({minted_by, posted_to, read_from}) == 3, (minted_by, posted_to, read_from)
    finally:
        await c.close()


async def test_rate_limit_is_exact_across_replicas(stack):
    """1000 requests a minute per client, all replicas together: the 1001st is a 429 on
    whichever replica it reaches, with Retry-After."""
    c = Client(stack, "127.0.0.3")
    try:
        await c.token()
        path = f"/api/sandra/metrics?sessionId={c.session}&limit=1"
        statuses, replicas = Counter(), Counter()
        sem = asyncio.Semaphore(16)
        started = time.monotonic()

        async def one() -> None:
            async with sem:
                status, _, _, replica = await c.request("GET", path, key=c.key)
                statuses[status] += 1
                replicas[replica] += 1

        await asyncio.gather(*(one() for _ in range(1000)))
        took = time.monotonic() - started
        assert statuses == {200: 1000}, statuses
        assert took < 50, f"1000 requests took {took:.0f} s: not one window"  # they must share a minute
        assert set(replicas) == {"r1", "r2", "r3"}, replicas
        refused = []
        for _ in range(3):  # the 1001st, 1002nd, 1003rd: one on each replica
            status, headers, body, replica = await c.request("GET", path, key=c.key)
            refused.append((status, headers.get("Retry-After"), body["error"]["code"], replica))
        assert {r[0] for r in refused} == {429}, refused
        assert {r[3] for r in refused} == {"r1", "r2", "r3"}, refused
        assert all(r[2] == "rate_limited" and 1 <= int(r[1]) <= 60 for r in refused), refused
        # the same key from another address: refused too (per key), and a new key from this address
        other = Client(stack, "127.0.0.4")
        try:
            status, _, body, _ = await other.request("GET", path, key=c.key)
            assert status == 429, body
        finally:
            await other.close()
        await c.token()
        status, _, body, _ = await c.request("GET", f"/api/sandra/metrics?sessionId={c.session}", key=c.key)
        assert status == 429, body
        print(f"rate limit: 1000 accepted in {took:.1f} s over {dict(replicas)}, then {refused}")
    finally:
        await c.close()


async def _call(stack, client: Client):
    from tests.rtc_client import RawClient

    raw = RawClient(stack.nginx.url)
    await raw.http.close()
    raw.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl(stack.ca)))
    try:
        await raw.connect()
    except BaseException:
        await raw.close()
        raise
    return raw


async def test_calls_are_pinned_and_capped_across_replicas(stack):
    """Location names the replica; the hang-up through nginx reaches it. max_calls_per_client (4)
    counts the calls on every replica."""
    calls = []
    try:
        for _ in range(4):
            calls.append(await _call(stack, None))
        ids = [raw.call_url.rpartition("/")[2] for raw in calls]
        held_by = [re.match(r"^rtc_(r\d)_[0-9a-f]{24}$", i)[1] for i in ids]
        assert len(set(held_by)) >= 2, held_by  # spread: no replica holds the four
        for call_id, replica in zip(ids, held_by):
            with urllib.request.urlopen(stack.replicas.urls()[int(replica[1]) - 1] + "/_faults", timeout=5) as r:
                assert call_id in json.load(r)["calls"]
        # a fifth from the same client, whichever replica gets it
        c = Client(stack)
        try:
            await c.token()
            from tests.rtc_client import RawClient

            probe = RawClient(stack.nginx.url)
            await probe.http.close()
            probe.http = c.http
            probe.pc = None
            from aiortc import RTCConfiguration, RTCPeerConnection

            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("audio")
            await pc.setLocalDescription(await pc.createOffer())
            status, _, body, replica = await c.request(
                "POST", "/v1/realtime/calls", key=c.key, data=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp"})
            await pc.close()
            assert status == 429 and body["error"]["code"] == "too_many_calls", (status, body, replica)
        finally:
            await c.close()
        # hang-ups through nginx, each to the replica in its id (on another one it would be a 404)
        for raw in calls:
            async with raw.http.post(stack.nginx.url + raw.call_url + "/hangup",
                                     headers={"Authorization": f"Bearer {raw.token['value']}"}) as r:
                assert r.status == 200, await r.text()
        # a hang-up frees its slot at once, on every replica: the client may call again
        calls.append(await _call(stack, None))
        print(f"calls on {held_by}; the fifth refused; four hang-ups routed by id; then one more accepted")
    finally:
        for raw in calls:
            await raw.close()


def metric_names(exposition: str) -> set[str]:
    """Every series name /metrics has or will have: the samples, and the families it declares
    (a labelled histogram without children yet has no sample lines, only its # TYPE)."""
    names = {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and line[0] != "#"}
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("", "_created"), "gauge": ("",)}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")[:4]
            names |= {name + suffix for suffix in suffixes.get(kind, ("",))}
    return names


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}


def query_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label sets, ranges and grouping
    lists taken out first; what is left before a "(" is a function)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = expr.replace("$__rate_interval", " ")
    names = set()
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)\s*(\()?", expr):
        if m[2] is None and m[1] not in PROMQL_WORDS:
            names.add(m[1])
    return names


def panel_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        out += [(panel["title"], t["expr"]) for t in panel["targets"]]
    return out


def test_dashboard_reads_only_metrics_serve_exports(stack):
    with urllib.request.urlopen(stack.replicas.urls()[0] + "/metrics", timeout=10) as r:
        exported = metric_names(r.read().decode())
    exported.add("up")  # Prometheus's own, per target
    board = json.loads(DASHBOARD.read_text())
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for needed in ("p50", "p95", "p99", "calls", "reconnects", "drops", "rate-limited"):
        assert needed in titles, needed
    queries = panel_queries()
    read = set()
    for title, expr in queries:
        names = query_metrics(expr)
        assert names, (title, expr)
        assert names <= exported, (title, names - exported)
        read |= names
    assert {"sandra_latency_ms_bucket", "sandra_calls_total", "sandra_reconnects_total", "sandra_call_drops_total",
            "sandra_rate_limited_requests_total"} <= read
    rules = (DEPLOY / "prometheus" / "sandra-alerts.yml").read_text()
    exprs = re.findall(r"expr: \|?\n?((?:.*\n)*?)\s+for:", rules)
    assert len(exprs) == 6, exprs
    for expr in exprs:  # the alert rules read only what serve exports, too
        assert query_metrics(expr) <= exported, expr


def _query(prom: Prometheus, expr: str) -> list:
    url = prom.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


async def _until(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.5)


async def test_prometheus_scrapes_the_replicas_and_reads_back_the_p95(stack):
    require_tools("prometheus")
    prom = Prometheus(stack.replicas.ports).start()
    c = Client(stack, "127.0.0.6")
    try:
        await c.token()
        status, _, body, replica = await c.request("POST", "/api/sandra/metrics", key=c.key,
                                                   json=payload(c.session, p95=437.0))
        assert status == 202, body
        up = await _until("three targets up", lambda: len([r for r in _query(prom, 'up{job="sandra"} == 1')]) == 3)
        assert up
        expr = f'sandra_latency_last_p95_ms{{job="sandra", name="response_latency", replica="{replica}"}}'
        result = await _until("the p95 in Prometheus", lambda: _query(prom, expr))
        value = float(result[0]["value"][1])
        assert value == 437.0, result
        healthy = _query(prom, 'sandra_storage_up{job="sandra"} == 1')
        assert len(healthy) == 3, healthy
        for title, expr in panel_queries():  # every panel's query is valid PromQL on real data
            prom_expr = expr.replace("$__rate_interval", "1m").replace("$job", "sandra")
            _query(prom, prom_expr)
        answered = _query(prom, 'sum(sandra_http_responses_total{job="sandra", code="2xx"})')
        assert float(answered[0]["value"][1]) > 0
        with urllib.request.urlopen(prom.url + "/api/v1/rules", timeout=10) as r:
            rules = [rule for g in json.load(r)["data"]["groups"] for rule in g["rules"]]
        assert len(rules) == 6 and all(rule["health"] in ("ok", "unknown") for rule in rules), rules
        print(f"prometheus: p95 posted 437.0 to {replica}, read back {value}")
    finally:
        await c.close()
        prom.stop()
