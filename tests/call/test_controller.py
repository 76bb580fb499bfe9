"""The call controller against the real agent app over loopback, with every fault."""

import asyncio
import json
import logging
import time

import pytest
from aiohttp import web

from sandra_tui.call.controller import CallController, open_peer_connections
from sandra_tui.call.events import CallState, LatencySample, RateLimits, ReconnectAttempt, StateChanged, Transcript
from sandra_tui.config.model import Config
from tests.helpers import serve_routes


def make_config(url: str, **reconnect) -> Config:
    rc = {"jitter": 0.0, **reconnect}
    return Config(backend={"url": url, "connect_timeout_s": 5}, ice={"stun": []}, reconnect=rc,
                  telemetry={"enabled": False})


class Recorder:
    def __init__(self, controller: CallController) -> None:
        self.events = []
        self.times = []
        controller.subscribe(self._on)

    def _on(self, event) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]

    def states(self):
        return [e.state for e in self.of(StateChanged)]

    async def wait(self, predicate, timeout=10.0, after=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events[after:], start=after):
                if predicate(e):
                    return e, self.times[i]
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out; last events: {self.events[-8:]}")

    async def wait_state(self, state, timeout=10.0, after=0):
        return await self.wait(lambda e: isinstance(e, StateChanged) and e.state == state, timeout, after)


@pytest.fixture
async def leak_check():
    before = set(asyncio.all_tasks())
    yield
    def leftovers():
        # The server's keep-alive handlers belong to the agent app, not to the client.
        return [t for t in asyncio.all_tasks() if t not in before and not t.done()
                and t is not asyncio.current_task() and "RequestHandler" not in repr(t.get_coro())]

    for _ in range(100):
        extra = leftovers()
        if not extra and not open_peer_connections():
            break
        await asyncio.sleep(0.05)
    assert not open_peer_connections()
    assert extra == [], [t.get_name() for t in extra]


async def start(url, **reconnect):
    controller = CallController(make_config(url, **reconnect))
    rec = Recorder(controller)
    await controller.start()
    await rec.wait_state(CallState.CONNECTED)
    return controller, rec


async def test_call_text_transcript_latency_and_hangup(agent_server, leak_check):
    controller, rec = await start(agent_server.url)
    try:
        await controller.send_text("hello Sandra")
        final, _ = await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final,
                                  timeout=20)
        assert "You wrote: hello Sandra" in final.text
        assert [m.role for m in controller.history] == ["user", "assistant"]
        names = {e.name for e in rec.of(LatencySample)}
        assert {"token_acquisition", "sdp_exchange", "ice_connect", "time_to_first_audio",
                "text_response_latency"} <= names
        assert all(e.cls in ("GOOD", "MEDIUM", "HIGH") for e in rec.of(LatencySample))
        # rate_limits.updated at the start of the response reaches the port as RateLimits (#15 item 7)
        limits = rec.of(RateLimits)
        assert limits and {name for name, *_ in limits[-1].limits} == {"requests", "tokens"}
        assert all(remaining < limit for _, remaining, limit, _ in limits[-1].limits)
        assert rec.states()[:3] == [CallState.ACQUIRING_TOKEN, CallState.CONNECTING, CallState.CONNECTED]
    finally:
        await controller.close()
    assert controller.state == CallState.ENDED
    assert agent_server.calls == {}  # the hang-up reached the server


async def test_dead_media_detected_within_two_seconds_and_recovered(agent_server, leak_check, caplog):
    caplog.set_level(logging.INFO)
    controller, rec = await start(agent_server.url)
    try:
        await asyncio.sleep(0.5)
        n = len(rec.events)
        await agent_server.faults(path_dead=True)
        fault_at = time.monotonic()
        attempt, t_attempt = await rec.wait(lambda e: isinstance(e, ReconnectAttempt), timeout=5, after=n)
        await agent_server.faults(path_dead=False)  # the network comes back
        assert t_attempt - fault_at < 2.0, t_attempt - fault_at
        assert (attempt.attempt, attempt.max, attempt.delay_ms, attempt.reason) == (1, 5, 1000, "media_timeout")
        _, t_connected = await rec.wait_state(CallState.CONNECTED, timeout=10, after=n)
        assert t_connected - fault_at < 2.0 + 1.0 + 1.0, t_connected - fault_at
        print(f"dead path: reconnect_attempt after {(t_attempt - fault_at) * 1000:.0f} ms, "
              f"connected again after {(t_connected - fault_at) * 1000:.0f} ms")
        assert "Reconnection attempt 1/5. Retrying in 1000ms. Reason: media_timeout" in caplog.text
        assert "Reconnection successful!" in caplog.text
        assert any(e.name == "reconnect_total" for e in rec.of(LatencySample))
    finally:
        await controller.close()


@pytest.mark.parametrize("action,reason", [("close_pc", "pc_closed"), ("close_dc", "datachannel_closed")])
async def test_peer_or_channel_closed_reconnects(agent_server, leak_check, action, reason):
    controller, rec = await start(agent_server.url, base_delay_ms=200)
    try:
        n = len(rec.events)
        await agent_server.action(action)
        attempt, _ = await rec.wait(lambda e: isinstance(e, ReconnectAttempt), after=n)
        assert attempt.reason == reason and attempt.delay_ms == 200
        await rec.wait_state(CallState.CONNECTED, after=n)
        await agent_server.wait_calls(1)
    finally:
        await controller.close()


async def test_history_is_reseeded_after_reconnect(agent_server, leak_check):
    controller, rec = await start(agent_server.url, base_delay_ms=100)
    try:
        await controller.send_text("remember the number 42")
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final, timeout=20)
        n = len(rec.events)
        seen = []
        original = __import__("sandra_tui.server.agent", fromlist=["LocalAgentCall"]).LocalAgentCall
        real = original._client_conversation_item_create

        def spy(self, event):
            seen.append(event["item"])
            return real(self, event)

        original._client_conversation_item_create = spy
        try:
            await agent_server.action("close_pc")
            await rec.wait_state(CallState.CONNECTED, after=n)
            await asyncio.sleep(0.3)
        finally:
            original._client_conversation_item_create = real
        texts = [c["text"] for item in seen for c in item["content"]]
        assert "remember the number 42" in texts
        assert any("You wrote" in t for t in texts)
        assert {item["role"] for item in seen} == {"user", "assistant"}
    finally:
        await controller.close()


async def test_credentials_rejected_fails_without_retry(agent_server, leak_check):
    await agent_server.faults(token_status=401)
    controller = CallController(make_config(agent_server.url))
    rec = Recorder(controller)
    await controller.start()
    failed, _ = await rec.wait_state(CallState.FAILED)
    assert failed.reason == "credentials_rejected" and failed.retryable is False
    assert rec.of(ReconnectAttempt) == []
    await controller.close()


async def test_rate_limited_honours_retry_after(agent_server, leak_check):
    await agent_server.faults(token_status=429, retry_after_s=2)
    controller = CallController(make_config(agent_server.url, base_delay_ms=100))
    rec = Recorder(controller)
    await controller.start()
    attempt, _ = await rec.wait(lambda e: isinstance(e, ReconnectAttempt))
    assert attempt.reason == "rate_limited" and attempt.delay_ms == 2000
    await agent_server.faults(token_status=None)
    await rec.wait_state(CallState.CONNECTED, timeout=6)
    await controller.close()


async def test_gives_up_after_max_attempts_then_one_key_retry(agent_server, leak_check):
    await agent_server.faults(token_status=500)
    controller = CallController(make_config(agent_server.url, max_attempts=3, base_delay_ms=50, max_delay_ms=100))
    rec = Recorder(controller)
    await controller.start()
    failed, _ = await rec.wait_state(CallState.FAILED)
    assert failed.reason == "server_error" and failed.retryable
    assert [(a.attempt, a.delay_ms) for a in rec.of(ReconnectAttempt)] == [(1, 50), (2, 100), (3, 100)]
    await agent_server.faults(token_status=None)
    await controller.retry()
    await rec.wait_state(CallState.CONNECTED)
    await controller.close()


async def test_server_not_running(leak_check):
    controller = CallController(make_config("http://127.0.0.1:9", max_attempts=2, base_delay_ms=50))
    rec = Recorder(controller)
    await controller.start()
    failed, _ = await rec.wait_state(CallState.FAILED)
    assert failed.reason == "backend_unreachable"
    await controller.close()


async def test_slow_answer_hits_connect_timeout(agent_server, leak_check):
    await agent_server.faults(answer_delay_ms=1500)
    cfg = make_config(agent_server.url, base_delay_ms=100)
    cfg.backend.connect_timeout_s = 1.0
    cfg.backend.request_timeout_s = 5.0
    controller = CallController(cfg)
    rec = Recorder(controller)
    await controller.start()
    attempt, _ = await rec.wait(lambda e: isinstance(e, ReconnectAttempt))
    assert attempt.reason == "connect_timeout"
    await agent_server.faults(answer_delay_ms=0)
    await rec.wait_state(CallState.CONNECTED)
    await controller.close()


async def test_two_percent_loss_keeps_the_call_up(agent_server, leak_check):
    controller, rec = await start(agent_server.url)
    try:
        await agent_server.faults(rtp_drop=0.02, seed=3)
        await asyncio.sleep(3)
        assert rec.of(ReconnectAttempt) == []
        assert controller.state == CallState.CONNECTED
    finally:
        await controller.close()


async def test_docs_shaped_answer_is_normalised(agent_server, leak_check):
    await agent_server.faults(answer_shape="openai_docs")
    controller, rec = await start(agent_server.url)
    assert controller.state == CallState.CONNECTED
    await controller.close()


async def garbage_backend(kind: str):
    async def token(request):
        if kind == "json":
            return web.Response(text="<html>", content_type="application/json")
        return web.json_response({"value": "ek_x", "expires_at": 9e9, "realtime_url": "/calls"})

    async def calls(request):
        return web.Response(status=201, text="v=0\r\ngarbage\r\n", content_type="application/sdp")

    return await serve_routes(("POST", "/api/sandra/token", token), ("POST", "/calls", calls))


@pytest.mark.parametrize("kind", ["json", "sdp"])
async def test_garbage_from_the_server(leak_check, kind):
    runner, url = await garbage_backend(kind)
    try:
        controller = CallController(make_config(url, max_attempts=1, base_delay_ms=10))
        rec = Recorder(controller)
        await controller.start()
        failed, _ = await rec.wait_state(CallState.FAILED)
        assert failed.reason == "signaling_error"
        await controller.close()
    finally:
        await runner.cleanup()


async def test_event_burst_keeps_history_capped():
    controller = CallController(make_config("http://127.0.0.1:9"))
    session = controller._make_session(lambda raw: None, lambda reason: None)
    for i in range(3000):
        item = f"item_{i}"
        session.handle(json.dumps({"type": "response.output_audio_transcript.delta", "item_id": item,
                                   "delta": "word ", "response_id": "r"}))
        session.handle(json.dumps({"type": "response.output_audio_transcript.done", "item_id": item,
                                   "transcript": f"reply {i}", "response_id": "r"}))
        session.handle("{broken")
        session.handle(json.dumps({"type": "response.output_audio_transcript.delta"}))
    assert len(controller.history) == 50
    assert controller.history.messages()[-1].content == "reply 2999"
    await controller.close()


async def test_mute_and_push_to_talk_gate_the_uplink():
    controller = CallController(make_config("http://127.0.0.1:9"))
    assert controller.audio.sending()
    controller.set_muted(True)
    assert not controller.audio.sending()
    controller.set_muted(False)
    controller.set_push_to_talk(True)
    assert not controller.audio.sending()
    controller.talk(True)
    assert controller.audio.sending()
    await controller.close()


async def test_six_silent_stun_servers_still_connect_under_a_second(agent_server, coturn, silent_udp, leak_check):
    from sandra_tui.call.probe_adapter import make_probe

    silent = [silent_udp().stun_url for _ in range(6)]
    cfg = make_config(agent_server.url)
    cfg.ice.stun = silent + [coturn.stun_url]
    controller = CallController(cfg, probe=make_probe())
    rec = Recorder(controller)
    started = time.monotonic()
    await controller.start()
    _, t_connected = await rec.wait_state(CallState.CONNECTED)
    assert t_connected - started < 1.0, t_connected - started
    print(f"connected in {(t_connected - started) * 1000:.0f} ms with six silent STUN servers first")
    assert [s.url for s in controller.plan.servers] == [coturn.stun_url]
    await controller.close()


async def test_relay_only_fallback_through_coturn(agent_server, coturn, leak_check):
    from sandra_tui.call.probe_adapter import make_probe
    from sandra_tui.config.model import TurnServer
    from tests.coturn import PASSWORD, USER

    cfg = make_config(agent_server.url, base_delay_ms=100)
    cfg.ice.turn = [TurnServer(url=coturn.turn_url, username=USER, credential=PASSWORD)]
    controller = CallController(cfg, probe=make_probe())
    rec = Recorder(controller)
    await controller.start()
    await rec.wait_state(CallState.CONNECTED)
    assert not controller.plan.relay_only
    n = len(rec.events)
    controller.connection.mark_dead("ice_failed")  # as if ICE had failed on host candidates
    await rec.wait_state(CallState.CONNECTED, after=n, timeout=10)
    assert controller.plan.relay_only
    gatherer = controller.connection.pc.getTransceivers()[0].sender.transport.transport.iceGatherer
    assert {c.type for c in gatherer.getLocalCandidates()} == {"relay"}  # media goes through coturn
    await controller.close()


async def test_embedded_agent_is_started_and_stopped(leak_check):
    cfg = Config(ice={}, telemetry={"enabled": False})  # default backend: embedded; default STUN list
    controller = CallController(cfg)
    rec = Recorder(controller)
    await controller.start()
    await rec.wait_state(CallState.CONNECTED, timeout=20)
    assert controller.backend_base.startswith("http://127.0.0.1:")
    assert controller.plan.servers == []  # a loopback agent needs no STUN: the public list is not used
    proc = controller.embedded._proc
    await controller.close()
    assert proc.returncode is not None


@pytest.mark.parametrize("stable_after_s,expected_attempt", [(0.5, 1), (600, 2)])
async def test_counter_resets_only_after_a_stable_call(agent_server, leak_check, stable_after_s, expected_attempt):
    controller, rec = await start(agent_server.url, base_delay_ms=100, stable_after_s=stable_after_s)
    try:
        await agent_server.action("close_pc")
        first, _ = await rec.wait(lambda e: isinstance(e, ReconnectAttempt))
        assert first.attempt == 1
        n = len(rec.events)
        await rec.wait_state(CallState.CONNECTED, after=n)
        await asyncio.sleep(1.0)
        n = len(rec.events)
        await agent_server.action("close_pc")
        second, _ = await rec.wait(lambda e: isinstance(e, ReconnectAttempt), after=n)
        assert second.attempt == expected_attempt  # a flapping link does not get fresh attempts
        await rec.wait_state(CallState.CONNECTED, after=n)
    finally:
        await controller.close()


async def test_stop_key_cancels_a_reply_and_is_quiet_otherwise(agent_server, leak_check):
    from sandra_tui.call.events import ErrorEvent, Speech

    controller, rec = await start(agent_server.url)
    try:
        await controller.cancel_response()  # nothing playing: no error comes back
        await controller.send_text("tell me something long " * 4)
        await rec.wait(lambda e: isinstance(e, Speech) and e.what == "reply_started", timeout=15)
        n = len(rec.events)
        await controller.cancel_response()
        await rec.wait(lambda e: isinstance(e, Speech) and e.what == "reply_cancelled", after=n)
        await asyncio.sleep(0.5)
        assert rec.of(ErrorEvent) == []
    finally:
        await controller.close()
