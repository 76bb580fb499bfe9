"""Signed short-lived keys: valid on every replica sharing SANDRA_SECRET and across a SIGKILL +
restart (with SANDRA_SECRET, or the secret `serve` keeps in its data dir), rotation through
SANDRA_SECRET_PREVIOUS, tampering refused, the upstream-key memory bounded."""

import asyncio
import os
import stat

import aiohttp

from sandra_tui import secrets as masking
from sandra_tui.server import tokens as tokens_mod
from sandra_tui.server.tokens import TokenStore, load_or_create_secret
from tests.agent_server import ServeProcess
from tests.server.helpers import discard

OLD, NEW = "old-secret-0123456789abcdef", "new-secret-0123456789abcdef"
N_KEYS = 20


async def mint(http: aiohttp.ClientSession, url: str, n: int) -> list[tuple[str, str]]:
    keys = []
    for i in range(n):
        async with http.post(url + "/api/sandra/token", json={"session_id": f"keys-{i}"}) as r:
            t = await r.json()
            keys.append((t["value"], t["session_id"]))
    return keys


async def refused(http: aiohttp.ClientSession, url: str, keys: list[tuple[str, str]]) -> int:
    """How many keys the metrics API of `url` refuses (401) for their own session."""
    n = 0
    for value, session in keys:
        async with http.get(url + "/api/sandra/metrics", params={"sessionId": session},
                            headers={"Authorization": f"Bearer {value}"}) as r:
            assert r.status in (200, 401), await r.text()
            n += r.status == 401
    return n


def restart_on_same_port(proc: ServeProcess, env: dict) -> ServeProcess:
    port = proc.url.rsplit(":", 1)[1]
    again = ServeProcess(env=env)
    again.args[again.args.index("--port") + 1] = port
    return again.start()


async def test_keys_survive_sigkill_restart_and_work_on_every_replica(tmp_path):
    figures = {}
    for label, secret_env in (("SANDRA_SECRET", {"SANDRA_SECRET": OLD}), ("persisted secret", {})):
        env = {"SANDRA_DATA_DIR": str(tmp_path / label.replace(" ", "-")), **secret_env}
        first = await asyncio.to_thread(ServeProcess(env=env).start)
        second = None
        try:
            async with aiohttp.ClientSession() as http:
                keys = await mint(http, first.url, N_KEYS)
                before = await refused(http, first.url, keys)
                first.proc.kill()  # SIGKILL: nothing saved on the way out
                first.proc.wait()
                discard(first)
                first = await asyncio.to_thread(restart_on_same_port, first, env)
                after = await refused(http, first.url, keys)
                second = await asyncio.to_thread(ServeProcess(env=env).start)  # another replica, same settings
                replica = await refused(http, second.url, keys)
                figures[label] = (before, after, replica)
        finally:
            discard(first, second)
    print(f"\nrefused of {N_KEYS} keys (before restart, after SIGKILL+restart, second replica): {figures}")
    assert figures == {"SANDRA_SECRET": (0, 0, 0), "persisted secret": (0, 0, 0)}
    path = tmp_path / "persisted-secret" / tokens_mod.SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_rotation_and_a_wrong_secret(tmp_path):
    def env(**secrets):
        return {"SANDRA_DATA_DIR": str(tmp_path / "data"), **secrets}

    old = await asyncio.to_thread(ServeProcess(env=env(SANDRA_SECRET=OLD)).start)
    procs = [old]
    try:
        async with aiohttp.ClientSession() as http:
            old_keys = await mint(http, old.url, 5)
            rotating = await asyncio.to_thread(
                ServeProcess(env=env(SANDRA_SECRET=NEW, SANDRA_SECRET_PREVIOUS=OLD)).start)
            rotated = await asyncio.to_thread(ServeProcess(env=env(SANDRA_SECRET=NEW)).start)
            wrong = await asyncio.to_thread(ServeProcess(env=env(SANDRA_SECRET="another-secret-000000000")).start)
            procs += [rotating, rotated, wrong]
            new_keys = await mint(http, rotating.url, 5)
            assert await refused(http, rotating.url, old_keys) == 0  # the previous secret still counts
            assert await refused(http, rotated.url, old_keys) == 5  # rotation finished: old keys are gone
            assert await refused(http, rotated.url, new_keys) == 0  # keys of the new secret work everywhere new
            assert await refused(http, old.url, new_keys) == 5  # a replica left on the old secret refuses them
            assert await refused(http, wrong.url, old_keys + new_keys) == 10
        for p in procs:
            p.stop()
            out = p.output()
            assert OLD not in out and NEW not in out
    finally:
        discard(*procs)


def test_signed_keys_unit(tmp_path):
    now = [1_000_000.0]
    store = TokenStore(ttl_s=60, grace_s=100, clock=lambda: now[0], secret=OLD)
    value, issued = store.mint("sess-a")
    assert value.startswith("ek_sandra_") and store.check(value).session_id == "sess-a"
    assert value not in masking._known  # the masking registry does not grow with every key
    body, sig = value[len("ek_sandra_"):].split(".")
    forged = tokens_mod._b64(tokens_mod._unb64(body).replace(b"sess-a", b"sess-b"))
    for bad in ("ek_sandra_" + forged + "." + sig, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"),
                "ek_sandra_" + body, "ek_sandra_!!!.???", "ek_other", "", None, value + "x" * 600):
        assert store.check(bad) is None and store.session_of(bad) is None, bad
    other = TokenStore(secret=NEW, previous=OLD, clock=lambda: now[0])
    assert other.session_of(value) == "sess-a"
    now[0] += 61
    assert store.check(value) is None and store.session_of(value) == "sess-a"  # the metrics grace period
    now[0] += 100
    assert store.session_of(value) is None
    # call tags: bound to one session, valid under either secret
    tag = store.call_tag("rtc_1", "sess-a")
    assert other.call_tag_ok("rtc_1", "sess-a", tag) and not other.call_tag_ok("rtc_1", "sess-b", tag)
    assert not TokenStore(secret=NEW).call_tag_ok("rtc_1", "sess-a", tag)


def test_upstream_keys_are_bounded_and_expire(monkeypatch):
    monkeypatch.setattr(tokens_mod, "MAX_UPSTREAM_KEYS", 50)
    now = [1000.0]
    store = TokenStore(ttl_s=60, grace_s=10, clock=lambda: now[0])
    for i in range(200):
        store.remember(f"ek_up_{i}", f"s{i}", now[0] + 60)
    assert len(store._upstream) == 50 and store.session_of("ek_up_199") == "s199"
    assert store.session_of("ek_up_0") is None
    now[0] += 100
    store.remember("ek_late", "late", now[0] + 60)
    assert len(store._upstream) == 1  # the expired ones went with the next key


def test_the_persisted_secret_is_made_once(tmp_path):
    first = load_or_create_secret(tmp_path / "d")
    assert load_or_create_secret(tmp_path / "d") == first and len(first) == 64
