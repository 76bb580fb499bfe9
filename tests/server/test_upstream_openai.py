"""`--upstream openai` in mint mode (SANDRA_OPENAI_MODE=mint) against a local fake of OpenAI's HTTP API: the key-minting request shape,
error mapping, and OPENAI_API_KEY never leaving the server (responses, logs, errors)."""

import asyncio
import json
import logging
import time

import aiohttp
import pytest
from aiohttp import web

from tests.agent_server import AgentServer
from tests.helpers import serve_app, serve_routes

KEY = "sk-test-SECRET-key-0123456789"


class FakeOpenAI:
    """POST /v1/realtime/client_secrets; `mode` picks the answer. Error bodies quote the key,
    as a careless upstream might: none of it may reach our clients or logs."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.received: list[dict] = []
        self.runner = None
        self.url = ""

    async def start(self) -> "FakeOpenAI":
        self.runner, self.url = await serve_routes(("POST", "/v1/realtime/client_secrets", self.client_secrets))
        return self

    async def client_secrets(self, request: web.Request) -> web.StreamResponse:
        self.received.append({"auth": request.headers.get("Authorization"), "ctype": request.content_type,
                              "body": await request.json()})
        leak = {"error": {"message": f"Incorrect API key provided: {request.headers.get('Authorization')}",
                          "type": "invalid_request_error", "code": "invalid_api_key"}}
        if self.mode == "ok":
            return web.json_response({"value": "ek_from_openai_123456", "expires_at": int(time.time()) + 600,
                                      "session": {"type": "realtime", "model": "gpt-realtime"}})
        if self.mode in ("401", "403", "400", "500", "503"):
            return web.json_response(leak, status=int(self.mode), headers={"Retry-After": "7"})
        if self.mode == "429":
            return web.json_response(leak, status=429, headers={"Retry-After": "9"})
        if self.mode == "garbage":
            return web.Response(text=f"<html>{request.headers.get('Authorization')}</html>")
        if self.mode == "slow":
            await asyncio.sleep(5)
            return web.json_response({})
        raise AssertionError(self.mode)

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def fake_openai():
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


@pytest.mark.parametrize("mode,status,code,retry_after", [
    ("ok", 200, None, None),
    ("401", 502, "upstream_auth", None),
    ("403", 502, "upstream_auth", None),
    ("400", 502, "upstream_error", "7"),
    ("429", 429, "rate_limit_exceeded", "9"),
    ("500", 502, "upstream_error", "7"),
    ("503", 502, "upstream_error", "7"),
    ("garbage", 502, "upstream_error", None),
    ("slow", 504, "upstream_timeout", None),
    ("unreachable", 502, "upstream_unreachable", None),
])
# upstream_timeout_s is 2 s, not 0.5: under `stress-ng --cpu 2` a loopback answer of the fake took
# over 0.5 s now and then (a 504 where 502 was due); the slow mode sleeps 5 s, well past it.
async def test_openai_upstream_against_a_fake(tmp_path, caplog, fake_openai, mode, status, code, retry_after):
    caplog.set_level(logging.DEBUG)
    fake_openai.mode = mode
    base = fake_openai.url
    if mode == "unreachable":
        runner, base = await serve_app(web.Application())
        await runner.cleanup()  # a port nobody listens on any more
    server = await AgentServer(tmp_path, upstream="openai", openai_mode="mint", openai_base_url=base,
                               openai_api_key=KEY, upstream_timeout_s=2.0, token_ttl_s=300).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/api/sandra/token", json={"session_id": "call-7"}) as r:
                text = await r.text()
                assert r.status == status, text
                assert r.headers.get("Retry-After") == retry_after
        assert KEY not in text and "SECRET" not in text
        data = json.loads(text)
        if status == 200:
            assert data["value"] == "ek_from_openai_123456"
            assert data["realtime_url"] == base + "/v1/realtime/calls"
            assert data["session_id"] == "call-7" and data["model"] == "gpt-realtime-2.1"
            assert data["ice_servers"] == []
        else:
            assert data["error"]["code"] == code and set(data["error"]) == {"message", "type", "code"}
        if mode != "unreachable":
            (sent,) = fake_openai.received
            assert sent["auth"] == f"Bearer {KEY}" and sent["ctype"] == "application/json"
            assert sent["body"] == {"expires_after": {"anchor": "created_at", "seconds": 300},
                                    "session": {"type": "realtime", "model": "gpt-realtime-2.1",
                                                "audio": {"output": {"voice": "marin"}}}}
        assert KEY not in caplog.text
        if status != 200:
            assert any(str(status) in rec.getMessage() for rec in caplog.records)  # one line per error
    finally:
        await server.stop()


async def test_an_openai_key_does_not_open_local_calls(tmp_path, fake_openai):
    server = await AgentServer(tmp_path, upstream="openai", openai_mode="mint", openai_base_url=fake_openai.url,
                               openai_api_key=KEY).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/api/sandra/token") as r:
                key = (await r.json())["value"]
            async with http.post(server.url + "/v1/realtime/calls", data="v=0\r\n",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}) as r:
                assert r.status == 401
    finally:
        await server.stop()
