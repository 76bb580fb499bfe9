"""Device health on real PortAudio streams (PulseAudio null sinks): a dead device is told from
late callbacks, the same device is never reopened in a loop, notices are coalesced, device work
runs on one thread, close() releases the streams whatever failed before, and the callbacks
allocate no sample arrays."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc

import numpy as np
import pytest

from sandra_tui.audio import device_audio
from sandra_tui.audio.device_audio import RETRY_S
from sandra_tui.audio.engine import AudioEngine, Notices


def test_late_callbacks_on_a_listed_device_are_reported_not_switched(devices):
    d = devices(input_device="pulse", output_device="pulse")
    mic, speaker = d.mic, d.speaker
    # What a starved CPU looks like from the check: no callback for over a second, while the
    # stream runs. (Really starving it here would race the check; the stress test does that.)
    mic.stalled = lambda after_s=1.0: True
    found = d.check()  # asks a fresh device list (a child process): "pulse" is still there
    assert [h.key for h in found] == ["late"]
    assert d.mic is mic and d.speaker is speaker and d.fallbacks == 0 and d.reopened == 0


def test_a_device_missing_from_a_fresh_list_falls_back(devices, monkeypatch):
    d = devices(input_device="pulse", output_device="pulse")
    # PulseAudio's ALSA devices cannot be unplugged; the fresh list is what would say so.
    monkeypatch.setattr(device_audio, "fresh_devices", lambda: [])
    d.speaker.stalled = lambda after_s=1.0: True
    found = d.check()
    assert [h.key for h in found] == ["output-fallback"] and d.output_name == "default"


def test_a_dead_default_device_is_reopened_with_a_back_off_not_in_a_loop(devices):
    d = devices()  # the default device: the fallback would be the same one
    for _ in range(5):
        d.speaker.abort()
        found = [h for h in d.check() if h.key != "late"]
        if d.reopened == 1:
            assert found == [] or found[0].key == "output-reopened"
    assert d.reopened == 1 and d.fallbacks == 0  # once; the next try waits RETRY_S, then doubles
    assert d._retry["output"][1] == 2 * RETRY_S


def test_notices_are_one_per_condition_per_window_with_a_count():
    sent, now = [], [0.0]
    notices = Notices(sent.append, window_s=30, clock=lambda: now[0])
    for second in range(65):
        now[0] = float(second)
        notices.add("late", "Audio is running late (the CPU is busy)")
        notices.flush()
    assert sent == ["Audio is running late (the CPU is busy)", "Audio is running late (the CPU is busy) x31",
                    "Audio is running late (the CPU is busy) x61"]
    now[0] = 200.0
    notices.flush()  # the last window's repeats, told once
    assert sent[-1] == "Audio is running late (the CPU is busy) x65" and len(sent) == 4
    now[0] = 240.0
    notices.flush()  # a whole quiet window closes the condition: the next one is news again
    notices.add("late", "again")
    assert sent[-1] == "again" and len(sent) == 5


async def test_switch_and_fallback_run_on_one_thread_never_at_once(devices):
    d = devices(input_device="pulse", output_device="pulse")
    engine = AudioEngine(d)
    inside, overlaps, threads = [0], [0], set()

    def watched(fn):
        def run(*args):
            threads.add(threading.get_ident())
            inside[0] += 1
            overlaps[0] += inside[0] > 1
            try:
                time.sleep(0.05)
                return fn(*args)
            finally:
                inside[0] -= 1
        return run

    d.switch, d.check = watched(d.switch), watched(d.check)
    try:
        await asyncio.gather(*[engine.switch_devices(name, name) for name in ("default", "pulse") * 3],
                             *[engine._monitor_once(d) for _ in range(6)])
        assert overlaps[0] == 0 and len(threads) == 1 and threading.get_ident() not in threads
    finally:
        await engine.close()


async def test_close_releases_the_streams_even_after_the_monitor_failed(devices):
    d = devices()
    engine = AudioEngine(d)

    async def broken():
        raise RuntimeError("monitor broke")

    engine._monitor = asyncio.ensure_future(broken())
    await asyncio.sleep(0)
    mic, speaker = d.mic, d.speaker
    await engine.close()  # does not raise
    assert d.mic is None and d.speaker is None and mic._stream is None and speaker._stream is None
    assert not engine._worker_open


class _Status:
    input_overflow = output_underflow = False


def _allocated(callback, data, n: int = 300) -> tuple[int, int]:
    for _ in range(20):
        callback(data, len(data), None, _Status)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(n):
            callback(data, len(data), None, _Status)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, current - base


@pytest.mark.parametrize("echo", [False, True])
def test_the_callbacks_allocate_no_sample_arrays(devices, echo):
    """Hundreds of callbacks of each stream (10 ms blocks, 48 kHz), echo canceller on and off: a
    block is 960 bytes, so a copy or concatenation per callback would show in the peak. What
    remains is small objects (views, an int counter past 256, ctypes' reply bytes)."""
    d = devices(echo_cancellation=echo)
    for stream in (d.mic, d.speaker):
        stream.abort()  # the real callbacks stop; these are called here, on this thread
    if echo:
        d.echo._silent_blocks = 0  # the speaker is "playing": capture goes through the module
    voice = (np.sin(np.arange(480) / 5) * 8000).astype(np.int16).reshape(-1, 1)
    for i in range(50):  # the buffer's capacity: 1 s
        d.playout.push(np.full(960, 1000, dtype=np.int16), i * 960)
    mic_peak, mic_kept = _allocated(d.mic._callback, voice.copy())
    # 20 + 60 blocks of 10 ms: 40 of the 50 frames played, none yet concealed
    spk_peak, spk_kept = _allocated(d.speaker._callback, np.zeros((480, 1), dtype=np.int16), n=60)
    print(f"echo {echo}: mic peak {mic_peak} B kept {mic_kept} B; speaker peak {spk_peak} B kept {spk_kept} B")
    # Before: mic 11.3 KB peak, 7 KB kept (a copy per block, frames sliced off a concatenation);
    # speaker 1.6-3.8 KB (a new block per pull, np.abs for peaks). Now 0.4-1.2 KB of small
    # objects: under a 20 ms frame (1920 B), so no frame-sized array is made per callback.
    assert mic_peak < 1400 and spk_peak < 1400
    assert mic_kept < 400 and spk_kept < 400
    assert len(d.mic.frames) == d.mic.frames.max_frames and d.playout.frames_played == 40 and d.playout.concealed == 0
