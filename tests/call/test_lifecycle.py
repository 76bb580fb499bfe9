"""The call lifecycle against the real agent app on loopback: hang-up at any await point leaks
nothing; sessions renew make-before-break before the server's cap; an expired session
reconnects at once; typed text is queued, never lost, answered in order."""

import asyncio
import json
import logging
import time

import aiohttp
import pytest

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.playout import PlayoutBuffer
from sandra_tui.call.controller import CallController, open_peer_connections
from sandra_tui.call.events import (
    CallState,
    ErrorEvent,
    LatencySample,
    ReconnectAttempt,
    SessionRenewed,
    StateChanged,
    Transcript,
)
from sandra_tui.call.session import RealtimeSession, plain_error
from sandra_tui.config.model import Config
from tests.agent_server import AgentServer, ServeProcess
from tests.call.test_controller import Recorder, leak_check, make_config  # noqa: F401 - fixture


def answers(rec) -> list[str]:
    return [e.text for e in rec.of(Transcript) if e.role == "assistant" and e.final]


@pytest.mark.parametrize("delay_ms", [0, 1, 3, 6, 10, 15, 25, 40, 60, 90, 130, 200])
async def test_hang_up_at_any_point_leaks_nothing(agent_server, leak_check, delay_ms):
    """Token, ICE, SDP and data channel each take a few ms here: these delays land the hang-up
    inside each of them (and after), and nothing of the attempt may survive."""
    controller = CallController(make_config(agent_server.url))
    rec = Recorder(controller)
    await controller.start()
    await asyncio.sleep(delay_ms / 1000)
    await controller.close()
    assert controller.state in (CallState.ENDED, CallState.IDLE), rec.states()
    assert not open_peer_connections()
    await agent_server.wait_calls(0)  # every call that reached the server was hung up


async def test_hang_up_during_backoff_and_close_twice(agent_server, leak_check):
    await agent_server.faults(token_status=500)
    controller = CallController(make_config(agent_server.url, base_delay_ms=5000))
    rec = Recorder(controller)
    await controller.start()
    await rec.wait_state(CallState.RECONNECTING)
    started = time.monotonic()
    await controller.close()
    await controller.close()
    assert time.monotonic() - started < 2.0  # the 5 s backoff sleep is cancelled, not waited out
    assert controller.state == CallState.ENDED


def test_events_reach_only_their_own_handlers():
    sent, emitted = [], []
    history = Config().history
    from sandra_tui.call.history import ConversationHistory

    session = RealtimeSession(sent.append, emit=emitted.append,
                              history=ConversationHistory(history.max_messages, history.max_memory_mb,
                                                          history.trim_to),
                              audio=AudioEngine(), latency=lambda *a: None)
    for kind in ("output_frame", "on_output_frame", "handle", "send", "__init__", "barge_in", "_error", 7, None):
        session.handle(json.dumps({"type": kind, "samples": [1, 2]}))
    assert emitted == [] and sent == []
    session.handle(json.dumps({"type": "error", "error": {"code": "weird", "message": "bad thing in item_abc123"}}))
    assert isinstance(emitted[-1], ErrorEvent) and "item_abc123" not in emitted[-1].message


def test_plain_errors_never_show_ids():
    message = plain_error({"code": "conversation_already_has_active_response",
                           "message": "Conversation already has an active response in progress: resp_X1y2"})
    assert "resp_" not in message and "waits its turn" in message
    assert "resp_" not in plain_error({"message": "Response 'resp_abc' is not in progress."})


async def test_typed_messages_while_sandra_replies_are_all_answered_in_order(agent_server, leak_check):
    controller = CallController(make_config(agent_server.url))
    rec = Recorder(controller)
    await controller.start()
    await rec.wait_state(CallState.CONNECTED)
    try:
        for i in range(5):
            await controller.send_text(f"message number {i}")
            await asyncio.sleep(1.0 if i == 0 else 0.3)
        for _ in range(200):
            if len(answers(rec)) >= 5:
                break
            await asyncio.sleep(0.2)
        got = answers(rec)
        assert [a.split("You wrote: ")[1] for a in got] == [f"message number {i}" for i in range(5)], got
        assert rec.of(ErrorEvent) == []
        statuses = [(e.text, e.status) for e in rec.of(Transcript) if e.role == "user"]
        assert ("message number 1", "queued") in statuses and ("message number 1", "sent") in statuses
        text_latencies = [e.ms for e in rec.of(LatencySample) if e.name == "text_response_latency"]
        assert len(text_latencies) == 5
    finally:
        await controller.close()


async def test_text_typed_before_the_call_is_sent_on_connect(agent_server, leak_check):
    controller = CallController(make_config(agent_server.url))
    rec = Recorder(controller)
    await controller.send_text("typed while idle")
    assert controller.history.messages()[-1].status == "queued"
    await asyncio.sleep(1.0)  # idle time must not count as latency
    await controller.start()
    try:
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final, timeout=20)
        assert answers(rec)[0].endswith("You wrote: typed while idle")
        latency = next(e.ms for e in rec.of(LatencySample) if e.name == "text_response_latency")
        assert latency < 1000, latency  # counted from the send on connect, not from the typing
        assert controller.history.messages()[0].status == ""
    finally:
        await controller.close()


async def _renewing_call(tmp_path, seconds: float, max_s: float, renew_after_s: float, process: bool = False,
                         **call):
    if process:  # the agent in its own process, as the TUI runs it (call/embedded.py)
        server = await asyncio.to_thread(ServeProcess("--session-max-s", str(max_s)).start, 60)
    else:
        server = await AgentServer(tmp_path, session_max_s=max_s).start()
    cfg = make_config(server.url)
    cfg.call.renew_after_s = renew_after_s
    for key, value in call.items():
        setattr(cfg.call, key, value)
    audio = AudioEngine(playout=PlayoutBuffer(target_ms=40))  # decode on arrival, as with a speaker
    controller = CallController(cfg, audio=audio)
    rec = Recorder(controller)
    arrivals: list[float] = []
    audio.output_listeners.append(lambda samples: arrivals.append(time.monotonic()))
    await controller.start()
    await rec.wait_state(CallState.CONNECTED)
    return server, controller, rec, arrivals


async def _active_calls(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as r:
        text = await r.text()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "sandra_active_calls")
    return family.samples[0].value


async def test_sessions_renew_before_the_cap_without_a_gap(tmp_path, leak_check):
    # 8 s sessions renewed after 5 s: three renewals inside 20 s; 3 minutes with 40 s sessions
    # is the same code path (README, "Session renewal", has that run's figures: bench/renewal.py).
    # The agent runs in its own process, as the TUI's does: in this one it doubled the work of each
    # renewal on the client's loop (both peers' set-up and DTLS handshakes), and at load 8 a
    # renewal then stalled the frames by 129 ms.
    server, controller, rec, arrivals = await _renewing_call(tmp_path, 20, max_s=8, renew_after_s=5,
                                                             process=True)
    try:
        await controller.send_text("remember the number 42")
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final, timeout=20)
        before = [(m.role, m.content) for m in controller.history]
        deadline = time.monotonic() + 20
        while len(rec.of(SessionRenewed)) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        renewals = rec.of(SessionRenewed)
        assert len(renewals) >= 3, rec.events[-10:]
        assert rec.of(ReconnectAttempt) == []
        assert [s for s in rec.states() if s != CallState.CONNECTED][:2] == [CallState.ACQUIRING_TOKEN,
                                                                               CallState.CONNECTING]
        assert CallState.RECONNECTING not in rec.states()
        steady = [t for t in arrivals if t > arrivals[0] + 1.0]
        # Each renewal's window: from opening the new connection to a second after the switch.
        windows = [(at - r.switch_ms / 1000 - 0.1, at + 1.0)
                   for r, (_, at) in zip(renewals, [(e, t) for e, t in zip(rec.events, rec.times)
                                                   if isinstance(e, SessionRenewed)])]
        near, away = [], []
        for a, b in zip(steady, steady[1:]):
            (near if any(lo <= b and a <= hi for lo, hi in windows) else away).append(b - a)
        print(f"\nrenewals: {[r.switch_ms for r in renewals]} ms; largest gap between received frames "
              f"{max(near) * 1000:.0f} ms around a renewal, {max(away, default=0) * 1000:.0f} ms elsewhere, "
              f"over {len(steady)} frames")
        # A frame every 20 ms; 100 ms is the bound for an audible gap. Under heavy load the
        # whole process (the in-process agent included) stalls now and then, renewal or not
        # (330 ms seen once): a renewal must then add no gap beyond what the machine does anyway.
        assert max(near) < max(0.100, max(away, default=0) * 1.2), (near, max(away, default=0))
        await controller.send_text("what number")
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "assistant" and e.final
                       and "what number" in e.text, timeout=20)
        after = [(m.role, m.content) for m in controller.history]
        assert after[:len(before)] == before  # the history is intact across renewals
        assert await _active_calls(server.url) == 1  # every old session was hung up
    finally:
        await controller.close()
        await asyncio.to_thread(server.stop)


async def test_session_expired_reconnects_at_once_reseeded(tmp_path, leak_check, caplog):
    caplog.set_level(logging.INFO, logger="sandra_tui.call")
    server, controller, rec, _ = await _renewing_call(tmp_path, 10, max_s=4, renew_after_s=0)
    try:
        await controller.send_text("remember the number 42")
        await rec.wait(lambda e: isinstance(e, Transcript) and e.role == "user" and e.status == "sent")
        n = len(rec.events)
        expired_at = time.monotonic()
        await rec.wait(lambda e: isinstance(e, StateChanged) and e.state == CallState.RECONNECTING, timeout=10,
                       after=n)
        _, t = await rec.wait_state(CallState.CONNECTED, after=n, timeout=10)
        reconnecting = [e for e in rec.of(StateChanged) if e.state == CallState.RECONNECTING]
        assert reconnecting[0].reason == "session_expired" and reconnecting[0].delay_ms == 0
        assert rec.of(ReconnectAttempt) == []  # not a failure: no attempt spent, no backoff
        assert t - expired_at < 6
        reseeded = [r.getMessage() for r in caplog.records if "re-seeded" in r.getMessage()]
        assert reseeded and not reseeded[-1].startswith("re-seeded the new session with 0"), reseeded
    finally:
        await controller.close()
        await server.stop()


async def test_a_reconnect_resumes_the_same_session_with_the_previous_key(agent_server, leak_check):
    """The backend gives a session only to the key that created it: the client proves it on reconnect,
    so one call's telemetry stays under one session id."""
    controller = CallController(make_config(agent_server.url, base_delay_ms=100))
    rec = Recorder(controller)
    await controller.start()
    await rec.wait_state(CallState.CONNECTED)
    try:
        first = controller.session_id
        n = len(rec.events)
        await agent_server.action("close_pc")
        await rec.wait(lambda e: isinstance(e, ReconnectAttempt), after=n)
        await rec.wait_state(CallState.CONNECTED, after=n)
        assert controller.session_id == first
    finally:
        await controller.close()
