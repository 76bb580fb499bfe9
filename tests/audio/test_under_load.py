"""Issue #16, audio under contention: a 60 s call on PulseAudio null sinks with speech both ways
(spoken turns into the microphone, the local agent replying) while `stress-ng --cpu 2` keeps
both cores busy. No device fallback, no notice repeated within its 30 s window, and the
playout depth held within target + 60 ms (the accelerate rule) at the 99th percentile."""

from __future__ import annotations

import asyncio
import re
import time

import numpy as np
import pytest

from sandra_tui.audio.engine import NOTICE_WINDOW_S
from tests.audio.test_call_audio import Call
from tests.pulse import RATE, speech_like
from tests.stress import cpu_stress  # noqa: F401 - the fixture

CALL_S = 60.0
SETTLE_S = 2.0  # the playout buffer's own settle time: its first bursts are handshakes
SAMPLE_S = 0.1  # depth polled ~10 times a second
BOUND_MS = 60  # the accelerate rule: more than target + 60 ms queued is shed at once


def pct(values, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


@pytest.mark.slow
@pytest.mark.timeout(CALL_S + 90)  # the call, connecting and closing on a loaded machine
async def test_a_call_under_cpu_stress_keeps_its_device_notices_and_playout_depth(pulse, agent_server, cpu_stress):
    turns = np.concatenate([speech_like(1.5), np.zeros(int(RATE * 4.5), np.int16)])
    rec = pulse.recorder()
    talk = None
    samples: list[tuple[float, float, int]] = []  # (t, depth ms, target ms)
    notices: list[tuple[float, str]] = []
    try:
        call = Call(agent_server, echo_cancellation=True)
        # What the audio engine tells the operator (the controller turns each into a Notice),
        # from before the first one can be sent.
        call.engine.notice_listeners.append(lambda message: notices.append((time.monotonic(), message)))
        async with call:
            devices, playout = call.engine.devices, call.engine.playout
            talk = pulse.play_into_mic(np.tile(turns, int(CALL_S / 6) + 1))
            started = time.monotonic()
            while (now := time.monotonic()) - started < CALL_S:
                if now - started >= SETTLE_S:
                    samples.append((now, playout.depth_ms, playout.target_ms))
                await asyncio.sleep(SAMPLE_S)
            assert cpu_stress.running  # the load lasted the whole call
            stats = playout.stats()
            said, replied = len(call.speech("user_started")), len(call.speech("reply_started"))
            sent = call.engine.notices.sent
            fallbacks, reopened, late_checks = devices.fallbacks, devices.reopened, devices.late_checks
            input_name, output_name = devices.input_name, devices.output_name
        heard = [t for t in rec.loud_times(-30) if t >= started]
    finally:
        if talk is not None:
            talk.kill()
            talk.wait()
        rec.stop()

    depth = [d for _, d, _ in samples]
    target = [t for _, _, t in samples]
    excess = [d - t for _, d, t in samples]
    print(f"\nunder stress-ng --cpu 2, {CALL_S:.0f} s call, {len(samples)} depth samples: "
          f"depth p50 {pct(depth, 50):.0f} ms, p99 {pct(depth, 99):.0f} ms, max {max(depth):.0f} ms; "
          f"target p50 {pct(target, 50):.0f} ms, max {max(target)} ms; depth - target p99 {pct(excess, 99):.0f} ms; "
          f"underruns {stats['underruns']}, concealed {stats['concealed']}, accelerated {stats['accelerated']}, "
          f"dropped {stats['dropped']}, late {stats['late']}, frames played {stats['frames_played']}, "
          f"jitter peak {playout.jitter_peak_ms:.0f} ms; turns {said}, replies {replied}, "
          f"speaker loud {len(heard) * 10} ms; fallbacks {fallbacks}, reopened {reopened}, "
          f"late checks {late_checks}; notices {sent}: {[m for _, m in notices]}")

    # Speech went both ways the whole time: spoken turns reached the agent, its replies the speaker.
    assert said >= 5 and replied >= 5, (said, replied)
    assert len(heard) > 500  # over 5 s of Sandra's voice on the speaker monitor
    # Busy CPU, same devices: late callbacks are not a dead device.
    assert fallbacks == 0 and reopened == 0, (fallbacks, reopened)
    assert (input_name, output_name) == ("default", "default")
    assert not [m for _, m in notices if "switched to" in m or "reopened" in m], notices
    # Each condition told at most once per window (a repeat is the count at the window's end).
    assert len(notices) == sent
    by_condition: dict[str, list[float]] = {}
    for t, message in notices:
        by_condition.setdefault(re.sub(r" x\d+$", "", message), []).append(t)
    for condition, times in by_condition.items():
        gaps = np.diff(times)
        # 1 s of slack: the window is closed by the engine's once-a-second monitor
        assert all(g >= NOTICE_WINDOW_S - 1.0 for g in gaps), (condition, times)
    # The depth bound: more than target + 60 ms is shed; p99 of the samples holds it.
    assert pct(excess, 99) <= BOUND_MS, pct(excess, 99)
