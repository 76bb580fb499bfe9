"""The client against systems that are not ours: a token server shaped as OpenAI's WebRTC guide
has it (it hands back the client_secrets body as is), OpenAI's older `client_secret` shape, and
`serve --upstream openai` relaying to a fake of OpenAI written from its docs (tests/fake_openai.py).
Also: `call --headless` as a process through each of them, and a permanent error ends it within a
second with exit 1."""

import asyncio
import os
import subprocess
import sys
import time

import aiohttp
import pytest
from aiohttp import web

from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, ReconnectAttempt, Transcript
from tests.agent_server import AgentServer
from tests.call.test_controller import Recorder, leak_check, make_config  # noqa: F401 - fixture
from tests.fake_openai import STANDARD_KEY, FakeOpenAI
from tests.helpers import serve_routes


@pytest.fixture
async def fake_openai():
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


async def guide_token_server(fake: FakeOpenAI):
    """`/token` as in OpenAI's WebRTC guide: mint with the standard key, return the body as is."""
    async def token(request):
        body = {"session": {"type": "realtime", "model": "gpt-realtime-2.1"}}
        async with aiohttp.ClientSession() as http:
            async with http.post(fake.url + "/v1/realtime/client_secrets", json=body,
                                 headers={"Authorization": f"Bearer {STANDARD_KEY}"}) as r:
                return web.Response(status=r.status, body=await r.read(), content_type="application/json")

    return await serve_routes(("POST", "/token", token))


@pytest.mark.parametrize("shape", ["ga", "beta"])
async def test_connects_through_openai_token_shapes(fake_openai, leak_check, shape):
    fake_openai.secret_shape = shape
    runner, url = await guide_token_server(fake_openai)
    try:
        cfg = make_config(url)
        cfg.backend.token_path = "/token"
        cfg.backend.realtime_url = fake_openai.url + "/v1/realtime/calls"  # the reply names none
        controller = CallController(cfg)
        rec = Recorder(controller)
        await controller.start()
        await rec.wait_state(CallState.CONNECTED, timeout=15)
        assert controller.connection.token.model == "gpt-realtime-2.1"
        calls = [s for s in fake_openai.seen if s.path == "/v1/realtime/calls"]
        assert calls and calls[-1].content_type == "application/sdp" and calls[-1].auth.startswith("Bearer ek_")
        await controller.send_text("hello through the fake")
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final, timeout=20)
        assert rec.of(ReconnectAttempt) == []
        await controller.close()
    finally:
        await runner.cleanup()


async def test_connects_through_the_backend_relay(tmp_path, fake_openai, leak_check):
    server = await AgentServer(tmp_path, upstream="openai", openai_base_url=fake_openai.url,
                               openai_api_key=STANDARD_KEY).start()
    try:
        controller = CallController(make_config(server.url))
        rec = Recorder(controller)
        await controller.start()
        await rec.wait_state(CallState.CONNECTED, timeout=15)
        relayed = [s for s in fake_openai.seen if s.path == "/v1/realtime/calls"]
        assert relayed[-1].content_type == "multipart/form-data" and relayed[-1].auth == f"Bearer {STANDARD_KEY}"
        assert not controller.token_value.startswith("sk-")  # the client only ever holds our short key
        await controller.close()
        assert fake_openai.hangups  # hang-up went through the backend with the standard key
    finally:
        await server.stop()


def headless(url: str, *extra: str, timeout: float = 30) -> tuple[int, float, str]:
    """Exit code, seconds from the call's first event to the exit, and the output. Timed from the
    first event, not from the fork: Python's start-up and imports are not the error's time (they
    took 4-5 s of the 5 s bound at load average 8)."""
    env = {**os.environ, "SANDRA_CONFIG": "/nonexistent/sandra-config.toml"}
    proc = subprocess.Popen([sys.executable, "-m", "sandra_tui", "--backend", url, "call", "--headless", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        started = time.monotonic()
        rest, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, err = proc.communicate()
    return proc.returncode, time.monotonic() - started, first + rest + err


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_a_permanent_error_fails_at_once_with_exit_1(status):
    async def token(request):
        return web.json_response({"error": {"message": "no", "type": "invalid_request_error", "code": "x"}},
                                 status=status)

    runner, url = await serve_routes(("POST", "/api/sandra/token", token))
    try:
        rc, elapsed, out = await asyncio.to_thread(headless, url, "--duration", "20")
    finally:
        await runner.cleanup()
    assert rc == 1, out
    assert '"reconnect_attempt"' not in out
    # The "within 1 s", from the call's first event to the exit: one request, then the
    # close (0.05-0.09 s with stress-ng and the rest of the suite beside it).
    assert elapsed < 1.0, elapsed
    print(f"\nHTTP {status}: exit {rc} {elapsed:.2f} s after the call's first event")


async def test_a_malformed_token_reply_fails_at_once(leak_check):
    async def token(request):
        return web.Response(text="<html>proxy</html>", content_type="text/html")

    runner, url = await serve_routes(("POST", "/api/sandra/token", token))
    try:
        controller = CallController(make_config(url))
        rec = Recorder(controller)
        started = time.monotonic()
        await controller.start()
        failed, t = await rec.wait_state(CallState.FAILED, timeout=5)
        assert t - started < 1.0 and failed.reason == "signaling_error"
        assert rec.of(ReconnectAttempt) == []
        await controller.close()
    finally:
        await runner.cleanup()


def headless_events(out: str) -> list[dict]:
    import json

    events = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return events


def assert_headless_talked(rc: int, out: str) -> None:
    events = headless_events(out)
    states = [e.get("state") for e in events if e.get("event") == "state"]
    assert rc == 0 and "connected" in states, out[-2000:]
    replies = [e for e in events if e.get("event") == "transcript" and e.get("role") == "assistant" and e.get("final")]
    assert replies and "hello headless" in replies[-1]["text"], out[-2000:]
    assert not [e for e in events if e.get("event") == "reconnect_attempt"], out[-2000:]


@pytest.mark.parametrize("shape", ["ga", "beta"])
async def test_headless_process_connects_through_openai_token_shapes(tmp_path, fake_openai, shape):
    """`sandra-tui call --headless` itself (a process, as an operator runs it), not only the
    controller in this process: the guide's token server, no realtime_url in its reply."""
    fake_openai.secret_shape = shape
    runner, url = await guide_token_server(fake_openai)
    backend = (f'url = "{url}"\ntoken_path = "/token"\n'
               f'realtime_url = "{fake_openai.url}/v1/realtime/calls"\n')
    try:
        rc, out = await say_hello_headless(tmp_path, backend)
    finally:
        await runner.cleanup()
    assert_headless_talked(rc, out)
    calls = [s for s in fake_openai.seen if s.path == "/v1/realtime/calls"]
    assert calls and calls[-1].auth.startswith("Bearer ek_")  # the minted key, never the standard one
    assert STANDARD_KEY not in out


async def test_headless_process_connects_through_the_backend_relay(tmp_path, fake_openai):
    server = await AgentServer(tmp_path, upstream="openai", openai_base_url=fake_openai.url,
                               openai_api_key=STANDARD_KEY).start()
    try:
        rc, out = await say_hello_headless(tmp_path, f'url = "{server.url}"\n')
    finally:
        await server.stop()
    assert_headless_talked(rc, out)
    relayed = [s for s in fake_openai.seen if s.path == "/v1/realtime/calls"]
    assert relayed and relayed[-1].auth == f"Bearer {STANDARD_KEY}"  # the backend's key, on the backend
    assert fake_openai.hangups and STANDARD_KEY not in out


async def say_hello_headless(tmp_path, backend_toml: str, timeout: float = 60) -> tuple[int, str]:
    """`call --headless --say "hello headless"` with a config whose [backend] is `backend_toml`."""
    config = tmp_path / "config.toml"
    config.write_text(f"[backend]\n{backend_toml}[ice]\nstun = []\n[telemetry]\nenabled = false\n")
    env = {**os.environ, "SANDRA_CONFIG": str(config)}
    argv = [sys.executable, "-m", "sandra_tui", "call", "--headless", "--duration", "12", "--no-audio",
            "--say", "hello headless"]
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=timeout, env=env)
    return done.returncode, done.stdout + done.stderr
