"""A call with real audio devices (PulseAudio null sinks) against the real agent on loopback:
what the operator says reaches Sandra, her reply reaches the speaker, mute, barge-in, the
round trip through the agent's mirror mode and playout under packet loss."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest

from sandra_tui.audio.engine import build_engine
from sandra_tui.audio.playout import FRAME_MS, JITTER_MARGIN_MS
from sandra_tui.audio.trace import EdgeTrace, breakdown
from sandra_tui.audio.trace import round_trips as trace_round_trips
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState, Speech
from sandra_tui.config.model import AudioConfig, Config
from tests.pulse import speech_like

RATE = 48000


def click(ms: int = 20, amplitude: int = 20000) -> np.ndarray:
    n = RATE * ms // 1000
    return (np.sin(2 * np.pi * 1000 * np.arange(n) / RATE) * amplitude).astype(np.int16)


class Call:
    def __init__(self, server, echo_cancellation: bool = False, **audio) -> None:
        engine, problem = build_engine(AudioConfig(echo_cancellation=echo_cancellation, **audio))
        assert problem is None, problem
        self.engine = engine
        self.controller = CallController(
            Config(backend={"url": server.url}, ice={"stun": []}, telemetry={"enabled": False},
                   session={"voice": "marin"}), audio=engine)
        self.events: list[tuple[float, object]] = []
        self.controller.subscribe(lambda e: self.events.append((time.monotonic(), e)))

    async def __aenter__(self) -> "Call":
        await self.controller.start()
        await self.wait(lambda: self.controller.state == CallState.CONNECTED, 15)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.controller.close()

    async def wait(self, predicate, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.02)

    def speech(self, what: str) -> list[float]:
        return [t for t, e in self.events if isinstance(e, Speech) and e.what == what]


async def play(pulse, samples: np.ndarray) -> None:
    proc = pulse.play_into_mic(samples)
    await asyncio.to_thread(proc.wait, 30)


async def test_operator_speech_reaches_sandra_and_her_reply_reaches_the_speaker(pulse, agent_server):
    rec = pulse.recorder()
    try:
        async with Call(agent_server) as call:
            await asyncio.sleep(0.5)
            await play(pulse, speech_like(1.0))
            await call.wait(lambda: call.speech("user_stopped"), 10)
            assert call.speech("user_started")
            await call.wait(lambda: call.speech("reply_stopped"), 20)
            replied_at = call.speech("reply_started")[0]
            await asyncio.sleep(0.3)
            loud = [t for t in rec.loud_times(-30) if t >= replied_at]
            assert len(loud) > 50  # over half a second of Sandra's voice reached the speaker
            stats = call.engine.playout.stats()
            late_checks = call.engine.devices.late_checks
            assert stats["frames_played"] > 100
            # An underrun is a gap in arrivals longer than the buffer holds: on a quiet machine at
            # most 2 (the reply's start and end). On a loaded one this process's own stalls make
            # more (stress-ng --cpu 2 plus other suites: 4 with the playout code before and after
            # the depth bound alike), and the devices' health check sees the same stalls: one more
            # underrun is allowed per check that found the callbacks running late.
            assert stats["underruns"] <= 2 + late_checks, (stats, late_checks)
            assert call.engine.devices.input_name == "default"
    finally:
        rec.stop()


async def test_mute_silences_the_uplink(pulse, agent_server):
    async with Call(agent_server) as call:
        call.controller.set_muted(True)
        await asyncio.sleep(0.3)
        agent = next(iter(agent_server.calls.values())).agent
        await play(pulse, speech_like(1.0))
        await asyncio.sleep(1.0)
        assert not call.speech("user_started")
        assert agent.turns == 0 and agent.vad.speaking is False
        call.controller.set_muted(False)
        await play(pulse, speech_like(1.0))
        await call.wait(lambda: call.speech("user_started"), 10)


async def test_barge_in_stops_playout_within_100_ms(pulse, agent_server):
    rec = pulse.recorder()
    try:
        async with Call(agent_server) as call:
            await asyncio.sleep(0.5)
            await call.controller.send_text("please say something long enough to interrupt " * 3)
            await call.wait(lambda: call.speech("reply_started"), 15)
            await asyncio.sleep(1.0)  # her voice is on the speaker now
            assert rec.loud_times(-30)[-1] > time.monotonic() - 0.2
            player = pulse.play_into_mic(speech_like(1.0))
            await call.wait(lambda: call.speech("user_started"), 10)
            interrupted_at = call.speech("user_started")[0]
            await asyncio.sleep(0.6)
            await asyncio.to_thread(player.wait, 10)
            after = [t for t in rec.loud_times(-30) if t >= interrupted_at]
            stop_ms = ((after[-1] - interrupted_at) * 1000) if after else 0.0
            tail = call.controller.audio.playout.discarded  # the cancelled reply's frames still in flight
            print(f"barge-in: speaker silent {stop_ms:.0f} ms after speech_started reached the client; "
                  f"{tail} late frames of the reply dropped")
            assert stop_ms < 100
    finally:
        rec.stop()


async def round_trips(pulse, agent_server, call, clicks: int) -> list[dict]:
    """Clicks into the mic, mirrored by the agent; stage times from the client's edge trace
    and the agent's mirror trace (one clock: time.monotonic())."""
    trace = EdgeTrace()
    call.engine.set_trace(trace)
    gap = np.zeros(RATE * 6 // 10, dtype=np.int16)
    await play(pulse, np.concatenate([np.concatenate([click(), gap]) for _ in range(clicks)]))
    await asyncio.sleep(0.5)
    async with agent_server._http.get(agent_server.url + "/_faults") as r:
        mirror = [entry for entries in (await r.json())["mirror_trace"].values() for entry in entries]
    return trace_round_trips(trace.edges, mirror)


async def test_round_trip_through_the_mirror_agent_is_measured_by_stage(pulse, agent_server):
    await agent_server.faults(agent_mode="mirror")
    async with Call(agent_server) as call:
        await asyncio.sleep(1.0)
        trips = await round_trips(pulse, agent_server, call, 6)
    assert len(trips) >= 5
    for trip in trips:
        order = [trip[k] for k in ("adc", "captured", "sent", "agent_in", "agent_out", "received", "played", "dac")]
        assert order == sorted(order), trip
    totals = sorted((t["dac"] - t["adc"]) * 1000 for t in trips)
    print(f"round trip ms: {[round(x) for x in totals]}; median by stage {breakdown(trips)}")
    assert totals[len(totals) // 2] < 400  # generous: the figure itself goes to the benchmarks


async def test_two_percent_loss_keeps_playout_delay_bounded(pulse, agent_server):
    await agent_server.faults(agent_mode="mirror", rtp_drop=0.02, seed=7)
    async with Call(agent_server) as call:
        await asyncio.sleep(1.0)
        trips = await round_trips(pulse, agent_server, call, 12)
        playout = call.engine.playout
        stats, jitter_peak = playout.stats(), playout.jitter_peak_ms
    assert stats["concealed"] > 0  # packets were lost and concealed, not waited for
    # Loss must not raise the target: only lateness (jitter, which a busy CPU adds: both ends
    # of this call share one loaded event loop) and underruns may. So the target is at most
    # what the measured jitter peak asks (its rule: peak + 10 ms, in 20 ms frames) plus one
    # frame per underrun, and at least the starting 40 ms. (A fixed 120 ms failed under
    # stress-ng --cpu 2: targets of 160, 300 and 200 ms in three runs, each one asked by jitter.)
    explained = max(40, math.ceil((jitter_peak + JITTER_MARGIN_MS) / FRAME_MS) * FRAME_MS) + \
        FRAME_MS * stats["underruns"]
    buffered = sorted((t["played"] - t["received"]) * 1000 for t in trips)
    totals = sorted((t["dac"] - t["adc"]) * 1000 for t in trips)
    print(f"round trip with 2% loss ms: {[round(x) for x in totals]}; in the playout buffer "
          f"{[round(x) for x in buffered]}; jitter peak {jitter_peak:.0f} ms; playout {stats}")
    assert stats["target_ms"] <= min(300, explained), (stats["target_ms"], jitter_peak)
    assert len(trips) >= 8
    assert totals[-1] < 500  # no permanent +300 ms (aiortc's own buffer would keep it)
