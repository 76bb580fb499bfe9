"""`sandra-tui serve --dialect live` as an operator runs it, and `sandra-tui call --headless`
against it: the token reply names the dialect, a typed turn is answered over GPT-Live's events;
and a dropped data channel in a Live call reconnects with the history re-seeded."""

import asyncio
import json
import subprocess
import sys

import aiohttp

from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, ReconnectAttempt, Transcript
from sandra_tui.wire import live
from tests.agent_server import AgentServer, ServeProcess
from tests.call.test_controller import Recorder, leak_check, make_config  # noqa: F401 - fixture
from tests.live.test_live_calls import check_wire, wire  # noqa: F401 - fixture


async def test_serve_dialect_live_and_a_headless_call(tmp_path):
    serve = ServeProcess("--dialect", "live").start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(serve.url + "/api/sandra/token", json={}) as r:
                token = await r.json()
        assert r.status == 200 and token["api"] == "live"
        assert token["realtime_url"] == serve.url + live.LIVE_CALLS_PATH
        cfg = tmp_path / "c.toml"
        cfg.write_text("[ice]\nstun = []\n[telemetry]\nenabled = false\n")
        r = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "sandra_tui", "--config", str(cfg), "--backend", serve.url, "call", "--headless",
            "--duration", "8", "--say", "hello over live", "--no-audio"], capture_output=True, text=True, timeout=60)
    finally:
        serve.stop()
    assert r.returncode == 0, r.stderr[-2000:]
    events = [json.loads(line) for line in r.stdout.splitlines()]
    finals = [e for e in events if e["event"] == "transcript" and e["final"]]
    assert finals[0]["role"] == "user" and finals[0]["text"] == "hello over live"
    assert any(e["role"] == "assistant" and "You wrote: hello over live" in e["text"] for e in finals), finals
    assert not [e for e in events if e["event"] == "error"]


async def test_a_live_call_reconnects_with_its_history_reseeded(tmp_path, wire, leak_check):
    server = await AgentServer(tmp_path, dialect="live").start()
    controller = CallController(make_config(server.url, base_delay_ms=100))
    rec = Recorder(controller)
    try:
        await controller.start()
        await rec.wait_state(CallState.CONNECTED, timeout=15)
        await controller.send_text("remember the number 42")
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final, timeout=30)
        n = len(rec.events)
        await server.action("close_dc")
        attempt, _ = await rec.wait(lambda e: isinstance(e, ReconnectAttempt), after=n)
        assert attempt.reason == "datachannel_closed"
        await rec.wait_state(CallState.CONNECTED, after=n, timeout=15)
        for _ in range(100):
            reseeded = [e["content"] for d, e in wire if d == "in" and e["type"] == "session.thinking.append"]
            if len(reseeded) >= 2:
                break
            await asyncio.sleep(0.05)
        assert reseeded[:2] == [live.EARLIER_USER + "remember the number 42",
                                live.EARLIER_ASSISTANT + controller.history.messages()[1].content]
        agent = next(iter(server.calls.values())).agent
        texts = [c.get("text") for item in agent._items.values() for c in item.get("content", [])]
        assert live.EARLIER_USER + "remember the number 42" in texts  # the new session knows it
    finally:
        await controller.close()
        await server.stop()
    check_wire(wire)
