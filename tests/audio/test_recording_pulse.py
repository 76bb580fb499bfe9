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
from sandra_tui.call.thread_port import ControllerPort
from sandra_tui.config.model import Config
from sandra_tui.ui.app import SandraApp
from tests.ui.test_history_real import best_correlation, windowed_correlation

RATE = 48000


def chirp(seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(11)
    t = np.arange(int(RATE * seconds)) / RATE
    signal = 0.3 * np.sin(2 * np.pi * (300 + 400 * t) * t) + 0.05 * rng.standard_normal(len(t))
    return (signal * 32767).astype(np.int16)


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
    app = SandraApp(ControllerPort(controller, call), call_store=store, monitor_loop_lag=False)
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
