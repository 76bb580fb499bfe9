"""Events cross from the call thread to the UI coalesced: state-like ones at once and in order,
levels, stats and history changes at most STREAM_HZ a second, latest value kept.

Bursts are published on a real CallThread through a real CallController's bus; the UI side
is this test's loop. Rates are bounded from above by the elapsed time measured here, so load
(`stress-ng --cpu 2`) can only make the bound looser, never fail it.
"""

from __future__ import annotations

import asyncio
import time

from sandra_tui.call.call_thread import CallThread
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import AudioLevels, CallState, Notice, PlayoutStats, Quality, StateChanged
from sandra_tui.call.port import STREAM_HZ, Coalescer, HistorySnapshot
from sandra_tui.call.thread_port import ControllerPort
from sandra_tui.config.model import Config

BURST = 3000


def config() -> Config:
    return Config(backend={"url": "http://127.0.0.1:9"}, ice={"stun": []}, telemetry={"enabled": False})


async def publish_burst(controller: CallController) -> float:
    """On the call loop: BURST levels and playout stats, a Notice every 100, yielding now and
    then (as the media loop does). Returns how long it took."""
    started = time.monotonic()
    for i in range(BURST):
        controller._emit(AudioLevels(float(i), 0.0))
        if i % 3 == 0:
            controller._emit(PlayoutStats(float(i), 40.0, 0, 0))
        if i % 100 == 0:
            controller._emit(Notice(f"notice {i}"))
        if i % 10 == 0:
            await asyncio.sleep(0.001)
    return time.monotonic() - started


async def test_a_burst_crosses_at_most_ten_times_a_second_and_notices_at_once(capsys) -> None:
    call = CallThread(name="sandra-call-burst")
    try:
        controller = call.run(CallController, config())
        port = ControllerPort(controller, call)
        seen: list = []
        unsubscribe = port.subscribe(seen.append)
        started = time.monotonic()
        burst_s = await call.run_async(publish_burst, controller)
        await asyncio.sleep(2 / STREAM_HZ)  # the last flush
        elapsed = time.monotonic() - started
        unsubscribe()
        await port.close()
    finally:
        call.stop()
    levels = [e for e in seen if isinstance(e, AudioLevels)]
    notices = [e for e in seen if isinstance(e, Notice)]
    with capsys.disabled():
        print(f"\nburst of {BURST} levels over {burst_s:.2f} s: {len(levels)} crossed "
              f"({len(levels) / elapsed:.1f}/s), {len(notices)} notices, "
              f"{port.coalescer.flushes} flushes")
    # Every notice, in order; the newest level last.
    assert [n.message for n in notices] == [f"notice {i}" for i in range(0, BURST, 100)]
    assert levels[-1].input_dbfs == BURST - 1
    # At most one level per flush, and flushes at most STREAM_HZ/s (+1: the first goes at once).
    assert len(levels) <= port.coalescer.flushes
    assert port.coalescer.flushes <= elapsed * STREAM_HZ + 1, (port.coalescer.flushes, elapsed)
    assert len(levels) < BURST / 10
    # A notice is never held behind streams published after it: every level delivered before
    # notice n was published before it (its value is below n's index).
    for position, event in enumerate(seen):
        if isinstance(event, Notice):
            index = int(event.message.split()[1])
            before = [e.input_dbfs for e in seen[:position] if isinstance(e, AudioLevels)]
            assert all(v <= index for v in before), (index, before[-3:])


async def test_streaming_history_crosses_as_few_snapshots_with_the_whole_text() -> None:
    call = CallThread(name="sandra-call-history")
    try:
        controller = call.run(CallController, config())
        port = ControllerPort(controller, call)
        snapshots: list[HistorySnapshot] = []
        unsubscribe = port.subscribe(lambda e: snapshots.append(e) if isinstance(e, HistorySnapshot) else None)

        async def stream() -> None:
            from sandra_tui.call.events import Transcript

            for i in range(600):
                controller.history.append_delta("assistant", "item_1", f"w{i} ")
                controller._emit(Transcript("assistant", f"w{i} ", False, "item_1"))
                await asyncio.sleep(0.002)
            controller.history.finish("assistant", "item_1", "done")
            controller._emit(Transcript("assistant", "done", True, "item_1"))

        started = time.monotonic()
        await call.run_async(stream)
        await asyncio.sleep(2 / STREAM_HZ)
        elapsed = time.monotonic() - started
        unsubscribe()
        await port.close()
    finally:
        call.stop()
    assert 1 <= len(snapshots) <= elapsed * STREAM_HZ + 1, (len(snapshots), elapsed)
    assert port.history_snapshot().messages[-1].content == "done"
    # One key for the message while it streams: the UI updates its view instead of adding one.
    assert len({s.messages[0].key for s in snapshots}) == 1


def test_a_state_change_sends_the_held_figures_first() -> None:
    """A Quality held when the path drops must not land after RECONNECTING (it would put the
    old path's figures back on screen); without a state change it waits for its slot."""
    sent: list = []
    timers: list = []

    class Timer:
        cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def schedule(delay, function):
        timers.append(Timer())
        return timers[-1]

    coalescer = Coalescer(sent.extend, schedule)
    quality = Quality(40.0, 2.0, 0, 500, 0.0, 4.4)
    coalescer.push(quality)
    coalescer.push(Notice("not a state change"))
    assert sent == [Notice("not a state change")] and len(timers) == 1  # the figure waits
    outage = StateChanged(CallState.RECONNECTING, reason="ice_failed")
    coalescer.push(outage)
    assert sent[1:] == [quality, outage] and timers[0].cancelled
    coalescer.push(StateChanged(CallState.CONNECTED))  # nothing held: no flush of nothing
    assert coalescer.flushes == 1
