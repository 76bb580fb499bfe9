"""Issue #20 item 2 end to end: `[call] record = true` in the TUI, a real call on the agent
over loopback, real PortAudio streams on PulseAudio null sinks. The WAV is stereo 48 kHz, its
left channel is what was played into the microphone, its right what Sandra said (as the
speaker played it), and the history row names the file."""

import time
import wave

import numpy as np
from textual.widgets import Input

from sandra_tui.audio.device_audio import DeviceAudio
from sandra_tui.audio.engine import AudioEngine
from sandra_tui.call.call_log import CallStore
from sandra_tui.call.call_thread import CallThread
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState
from sandra_tui.config.model import Config
from sandra_tui.ui.app import SandraApp
from tests.ui.test_history_real import best_correlation

RATE = 48000


def chirp(seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(11)
    t = np.arange(int(RATE * seconds)) / RATE
    signal = 0.3 * np.sin(2 * np.pi * (300 + 400 * t) * t) + 0.05 * rng.standard_normal(len(t))
    return (signal * 32767).astype(np.int16)


def windowed_correlation(haystack: np.ndarray, needle: np.ndarray, window_s: float = 0.1) -> float:
    """The median, over `window_s` pieces of `needle`, of each piece's best normalised match
    anywhere in `haystack` (energy-normalised locally). One lag for a whole signal is undone by
    a frame the capture or the playout dropped on a busy machine (measured under stress-ng
    --cpu 2: 0.16 whole, 0.49 with 0.5 s pieces); 100 ms pieces mostly hold none."""
    h = haystack.astype(np.float64)
    energy = np.concatenate([[0.0], np.cumsum(h * h)])
    n = int(RATE * window_s)
    size = 1 << (len(h) + n - 1).bit_length()
    spectrum = np.fft.rfft(h, size)
    scores = []
    for start in range(0, len(needle) - n + 1, n):
        piece = needle[start:start + n].astype(np.float64)
        if np.sqrt(np.mean(piece * piece)) < 100:
            continue  # (near) silence matches nothing
        xc = np.fft.irfft(spectrum * np.conj(np.fft.rfft(piece, size)), size)[: len(h) - n + 1]
        local = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-9))
        scores.append(float(np.max(np.abs(xc) / (local * np.linalg.norm(piece)))))
    return float(np.median(scores)) if scores else 0.0


async def wait_until(predicate, pilot, timeout=20.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not met in time")


async def test_record_true_writes_a_stereo_wav_mic_left_sandra_right_named_in_history(pulse, agent_server, tmp_path):
    config = Config(backend={"url": agent_server.url}, ice={"stun": []}, telemetry={"enabled": False},
                    call={"record": True, "recordings_dir": str(tmp_path / "rec")},
                    history={"calls_db": str(tmp_path / "calls.sqlite3")})
    # As `sandra-tui` runs it: the call on its own thread (its audio is not held up by the UI).
    call = CallThread()
    # No echo canceller: the left channel is the microphone itself.
    controller = call.run(lambda: CallController(config, audio=AudioEngine(DeviceAudio(echo_cancellation=False))))
    store = CallStore(tmp_path / "calls.sqlite3")
    app = SandraApp(call.bind(controller), call_store=store, monitor_loop_lag=False)
    speaker = pulse.recorder()
    mic = chirp(3.0)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(lambda: controller.state == CallState.CONNECTED and controller.recording, pilot)
            t0 = time.monotonic()
            player = pulse.play_into_mic(mic)
            app.query_one(Input).value = "hello, this call is recorded"
            await pilot.press("enter")
            await wait_until(lambda: any(m.role == "assistant" and m.final for m in controller.history.messages()),
                             pilot)
            await pilot.pause(3.5)  # the chirp is over and Sandra's reply has played
            player.wait(5)
            path = controller._recorder.path
            await pilot.press("f2")  # hang up: the recording ends with the call
            await wait_until(lambda: controller.state == CallState.ENDED and not controller.recording, pilot)
            await wait_until(lambda: bool(store.calls()), pilot)
            await pilot.press("ctrl+q")
        played = speaker.since(t0)
    finally:
        speaker.stop()
        call.stop(controller.close)
    record = store.get(store.calls()[0].id)
    assert record.recording == str(path)
    with wave.open(str(path), "rb") as w:
        channels, rate, width = w.getnchannels(), w.getframerate(), w.getsampwidth()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert (channels, rate, width) == (2, 48000, 2)
    left, right = samples[0::2], samples[1::2]
    assert np.abs(played).max() > 1000, "the speaker played nothing of Sandra"
    mic_left = windowed_correlation(left, mic)
    sandra_right = windowed_correlation(right, played)
    crossed = windowed_correlation(left, played)
    print(f"recording {len(left) / RATE:.1f} s: left~mic {mic_left:.3f} (whole signal, one lag: "
          f"{best_correlation(left, mic):.3f}), right~speaker {sandra_right:.3f} "
          f"({best_correlation(right, played):.3f}), left~speaker {crossed:.3f}")
    assert mic_left > 0.8 and sandra_right > 0.8
    assert crossed < 0.5  # the channels are not mixed up
