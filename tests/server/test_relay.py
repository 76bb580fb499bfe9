"""`serve --upstream openai` (relay, the default) against tests/fake_openai.py: the caller posts its
offer to our backend with our key, the backend forwards it with the standard key (multipart
sdp + session), audio flows caller <-> "OpenAI", hang-up goes through any replica; the standard
key appears in no response and no log line."""

import asyncio
import json
import time

import aiohttp

from tests.agent_server import AgentServer, ServeProcess
from tests.fake_openai import STANDARD_KEY, FakeOpenAI
from tests.server.helpers import discard
from tests.server.relay_client import RelayClient
from tests.server.test_upstream_openai import KEY as OLD_FAKE_KEY
from tests.server.test_upstream_openai import FakeOpenAI as MintOnlyFake

SECRET = "relay-test-secret-0123456789abcdef"


def relay_env(fake: FakeOpenAI, **extra) -> dict:
    return {"OPENAI_API_KEY": fake.api_key, "SANDRA_OPENAI_BASE_URL": fake.url, "SANDRA_SECRET": SECRET, **extra}


async def test_relay_call_audio_both_ways_and_hangup_through_another_replica(tmp_path):
    fake = await FakeOpenAI().start()
    fake.models["gpt-realtime-2.1"] = None
    a = ServeProcess("--upstream", "openai", env=relay_env(fake))
    b = ServeProcess("--upstream", "openai", env=relay_env(fake))
    a.args[a.args.index("INFO")] = "DEBUG"  # even debug logging never shows the key
    seen_by_caller: list[str] = []
    client = RelayClient("")
    try:
        await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
        client.base_url = a.url
        await client.connect({"session_id": "relay-call-1"})
        seen_by_caller += [json.dumps(client.token), client.answer, client.call_url]
        assert client.token["realtime_url"] == a.url + "/v1/realtime/calls"  # ours, not OpenAI's
        assert client.token["value"].startswith("ek_sandra_") and "notice" not in client.token
        assert "a=end-of-candidates" not in client.answer  # OpenAI's layout reached the caller as is
        created = await client.wait_for("session.created")
        # the session is server policy, sent upstream as the multipart `session` part
        (post,) = [s for s in fake.seen if s.path == "/v1/realtime/calls"]
        assert post.auth == f"Bearer {STANDARD_KEY}" and post.content_type == "multipart/form-data"
        assert post.parts["sdp"][0] == "application/sdp" and post.parts["sdp"][1].startswith("v=0")
        assert post.parts["session"][0] == "application/json"
        session = json.loads(post.parts["session"][1])
        assert session["type"] == "realtime" and session["model"] == "gpt-realtime-2.1"
        assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        assert session["audio"]["input"]["transcription"]["model"] and session["instructions"]
        assert created["session"]["instructions"] == session["instructions"]
        # audio both ways: the fake's agent mirrors every frame it hears
        from tests.rtc_client import tone
        start = time.monotonic()
        client.mic.say(tone(2.0))
        deadline = time.monotonic() + 10
        while client.loud_frames(since=start) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        (call,) = fake.calls.calls.values()
        assert call.agent.frames_in >= 50, call.agent.frames_in  # caller -> OpenAI
        assert client.loud_frames(since=start) >= 50  # OpenAI -> caller (2 s of tone = 100 frames)
        assert client.invalid == []
        # hang-up through the other replica: the call id carries its own proof of ownership
        async with aiohttp.ClientSession() as http:
            async with http.post(b.url + client.call_url + "/hangup",
                                 headers={"Authorization": "Bearer " + (await _other_key(http, b.url))}) as r:
                seen_by_caller.append(await r.text())
                assert r.status == 401  # a key of another session may not end this call
            async with http.post(b.url + client.call_url + "/hangup",
                                 headers={"Authorization": f"Bearer {client.token['value']}"}) as r:
                seen_by_caller.append(await r.text())
                assert r.status == 200, await r.text()
            assert fake.hangups == [call.id] and fake.seen[-1].auth == f"Bearer {STANDARD_KEY}"
            async with http.get(a.url + "/healthz") as r:
                health = await r.json()
                assert health["model"] == "gpt-realtime-2.1" and "notice" not in health
        print(f"\nrelay: token {client.timings['token_ms']:.0f} ms, SDP through the relay "
              f"{client.timings['sdp_ms']:.0f} ms (the fake's own answer {fake.answer_ms[0]:.0f} ms), "
              f"data channel open {client.timings['connect_ms']:.0f} ms")
    finally:
        await client.close()
        a.stop()
        b.stop()
        await fake.stop()
        outputs = [a.output(), b.output()]
        discard(a, b)
    for text in seen_by_caller + outputs:
        assert STANDARD_KEY not in text and "FAKE-standard" not in text
    assert "relayed to the upstream" in outputs[0] and "hung up through the upstream" in outputs[1]


async def _other_key(http: aiohttp.ClientSession, url: str) -> str:
    async with http.post(url + "/api/sandra/token", json={"session_id": "someone-else"}) as r:
        return (await r.json())["value"]


async def test_relay_maps_upstream_refusals_and_never_echoes_them(tmp_path):
    fake = await FakeOpenAI().start()
    fake.api_key = "sk-the-fake-expects-another-key-000"  # so the server's key is refused upstream
    server = await AgentServer(tmp_path, upstream="openai", openai_base_url=fake.url, openai_api_key=STANDARD_KEY,
                               secret=SECRET).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/api/sandra/token") as r:
                key = (await r.json())["value"]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"}
            async with http.post(server.url + "/v1/realtime/calls", data="v=0\r\n", headers=headers) as r:
                body = await r.text()
                assert r.status == 502 and json.loads(body)["error"]["code"] == "upstream_auth"
            assert "Incorrect API key" not in body and STANDARD_KEY[-4:] not in body
            fake.api_key = STANDARD_KEY
            async with http.post(server.url + "/v1/realtime/calls", data="v=0\r\nnot an offer\r\n",
                                 headers=headers) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "upstream_invalid_request"
            headers["Authorization"] = "Bearer ek_sandra_forged.AAAA"
            async with http.post(server.url + "/v1/realtime/calls", data="v=0\r\n", headers=headers) as r:
                assert r.status == 401
            async with http.post(server.url + "/v1/realtime/calls/rtc_x.tag/hangup",
                                 headers={"Authorization": f"Bearer {key}"}) as r:
                assert r.status == 401  # not this session's call: never forwarded
        assert not [s for s in fake.seen if s.path.endswith("/hangup")]
    finally:
        await server.stop()
        await fake.stop()


async def test_mint_mode_with_both_openai_key_shapes(tmp_path):
    fake = await FakeOpenAI().start()
    server = await AgentServer(tmp_path, upstream="openai", openai_mode="mint", openai_base_url=fake.url,
                               openai_api_key=STANDARD_KEY).start()
    try:
        async with aiohttp.ClientSession() as http:
            for shape in ("ga", "beta"):
                fake.secret_shape = shape
                async with http.post(server.url + "/api/sandra/token", json={"session_id": f"mint-{shape}"}) as r:
                    t = await r.json()
                    assert r.status == 200, t
                assert t["value"] in fake.ephemeral and t["realtime_url"] == fake.url + "/v1/realtime/calls"
                # the OpenAI key posts metrics for its session on our side
                async with http.get(server.url + "/api/sandra/metrics", params={"sessionId": f"mint-{shape}"},
                                    headers={"Authorization": f"Bearer {t['value']}"}) as r:
                    assert r.status == 200
                # and opens a call at "OpenAI" with the raw application/sdp form
                client = RelayClient(server.url)
                try:
                    await client.connect(token=t)
                    await client.wait_for("session.created")
                finally:
                    await client.close()
    finally:
        await server.stop()
        await fake.stop()


async def test_the_fake_refuses_wrong_keys_like_openai():
    fake = await FakeOpenAI().start()
    try:
        async with aiohttp.ClientSession() as http:
            for path, kwargs in (("/v1/realtime/client_secrets", {"json": {}}),
                                 ("/v1/realtime/calls", {"data": "v=0\r\n",
                                                         "headers": {"Content-Type": "application/sdp"}}),
                                 ("/v1/realtime/calls/rtc_1/hangup", {})):
                for auth in (None, "Bearer sk-wrong-key-1234", "Bearer ek_not_minted_here"):
                    headers = dict(kwargs.get("headers", {}))
                    if auth:
                        headers["Authorization"] = auth
                    async with http.post(fake.url + path, **{**kwargs, "headers": headers}) as r:
                        body = await r.json()
                        assert r.status == 401 and set(body["error"]) == {"message", "type", "param", "code"}
            async with http.get(fake.url + "/v1/models/gpt-realtime-2.1",
                                headers={"Authorization": f"Bearer {STANDARD_KEY}"}) as r:
                assert r.status == 404 and (await r.json())["error"]["code"] == "model_not_found"
    finally:
        await fake.stop()


async def test_mint_only_fake_still_maps_like_before(tmp_path):
    """The older fake (no /v1/models) gives no model notice and no failure."""
    fake = await MintOnlyFake().start()
    server = await AgentServer(tmp_path, upstream="openai", openai_mode="mint", openai_base_url=fake.url,
                               openai_api_key=OLD_FAKE_KEY).start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/healthz") as r:
                health = await r.json()
                assert r.status == 200 and health["model"] == "gpt-realtime-2.1" and "notice" not in health
    finally:
        await server.stop()
        await fake.stop()
