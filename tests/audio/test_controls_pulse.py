"""Issue #20, audio item 8 on real PortAudio streams (a private PulseAudio with null sinks):
rescan, the microphone test, output volume and microphone gain."""

import asyncio
import os
import time
import tracemalloc

import numpy as np
import pytest

from sandra_tui.audio.device_audio import DeviceAudio
from sandra_tui.audio.devices import AudioUnavailable, list_devices
from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.gain import Gain
from sandra_tui.audio.playout import FRAME
from tests.pulse import speech_like

RATE = 48000


def tone(seconds: float, hz: float = 440.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16)


def best_correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    size = 1 << (len(a) + len(b) - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    return float(np.max(np.abs(xc)) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


@pytest.fixture
def asoundrc(pulse):
    """An ALSA device defined after PortAudio started: what plugging in a headset looks like
    to PortAudio (ALSA re-reads its config when PortAudio starts again)."""
    path = os.path.join(os.environ["HOME"], ".asoundrc")
    yield lambda: open(path, "w").write("pcm.sandra_headset { type pulse }\nctl.sandra_headset { type pulse }\n")
    if os.path.exists(path):
        os.unlink(path)
    from sandra_tui.audio.devices import reinitialize

    reinitialize()  # the next test sees the list without it


def test_gain_scales_saturates_and_allocates_nothing():
    g = Gain(2.0)
    frame = np.array([1000, -1000, 20000, -20000, 0] + [0] * (FRAME - 5), dtype=np.int16)
    g.apply(frame)
    assert list(frame[:5]) == [2000, -2000, 32767, -32768, 0]  # clipped, not wrapped
    assert Gain(9.0).value == 4.0 and Gain(-1).value == 0.0  # the config's limits
    block = np.full(FRAME, 1234, dtype=np.int16)
    g.set(0.5)
    g.apply(block)  # warm up
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            g.apply(block)
        grown, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"gain: 2000 frames, traced memory grew {grown - before} B, peak {peak - before} B")
    assert peak - before < FRAME  # not even one int16 frame: nothing per call


async def test_rescan_lists_a_device_added_after_start_and_the_streams_keep_flowing(pulse, asoundrc):
    engine = AudioEngine(DeviceAudio(echo_cancellation=False))
    try:
        devices = engine.devices
        assert "sandra_headset" not in {d.name for d in list_devices()}
        asoundrc()
        assert "sandra_headset" not in {d.name for d in list_devices()}  # PortAudio keeps its list
        old_mic = devices.mic
        t0 = time.monotonic()
        await engine.rescan_devices()
        took = time.monotonic() - t0
        assert "sandra_headset" in {d.name for d in list_devices()}
        assert devices.mic is not old_mic and devices.input_name == "default" and devices.output_name == "default"
        # The reopened microphone hears what is played into it.
        player = pulse.play_into_mic(tone(0.6))
        heard = []
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            if await devices.wait_frame(0.1):
                heard.append(devices.read())
        player.wait(5)
        print(f"rescan: {took * 1000:.0f} ms with the streams closed and reopened, "
              f"{len(heard)} frames heard after it")
        assert heard and np.abs(np.concatenate(heard).astype(np.int32)).max() > 4000
        await engine.switch_devices("sandra_headset", None)  # the new device can be used
        assert devices.input_name == "sandra_headset"
        # Unplugged again: the rescan falls back to the default, and says so once.
        notices = []
        engine.notice_listeners.append(notices.append)
        os.unlink(os.path.join(os.environ["HOME"], ".asoundrc"))
        await engine.rescan_devices()
        assert devices.input_name == "default" and devices.mic is not None and devices.speaker is not None
        assert notices == ["no input device matches 'sandra_headset'; using the default input"]
    finally:
        await engine.close()


async def test_mic_test_records_three_seconds_and_plays_them_back(pulse):
    engine = AudioEngine(DeviceAudio(echo_cancellation=False), mic_gain=1.0, output_volume=1.0)
    rec = pulse.recorder()
    phases = []
    try:
        voice = speech_like(2.0)
        player = pulse.play_into_mic(voice)
        result = await engine.mic_test(3.0, on_phase=phases.append)
        player.wait(5)
        played = rec.since(0)
    finally:
        rec.stop()
        await engine.close()
    print(f"mic test: recorded {result.seconds:.2f} s in {result.record_s:.2f} s, played "
          f"{result.played_frames} frames in {result.play_s:.2f} s; peak {result.peak_dbfs:.1f} dBFS; "
          f"'{result.verdict}'")
    assert phases == ["recording", "playing"]
    assert result.seconds == 3.0 and len(result.samples) == 3 * RATE
    assert result.played_frames >= 145  # (nearly) every recorded frame reached the speaker
    assert result.peak_dbfs > -20 and result.verdict == "Level is fine."
    # What the speaker played is the recording (the speaker's monitor heard it).
    from tests.audio.test_recording_pulse import windowed_correlation

    match = windowed_correlation(played, result.samples)
    print(f"mic test: the speaker played the recording: correlation {match:.3f} (median of 100 ms pieces)")
    assert match > 0.8


async def test_mic_test_says_why_when_it_cannot_run():
    engine = AudioEngine()  # text only
    with pytest.raises(AudioUnavailable, match="text only"):
        await engine.mic_test(3.0)
    await engine.close()


async def test_mic_gain_and_output_volume_act_on_the_real_streams(pulse):
    engine = AudioEngine(DeviceAudio(echo_cancellation=False))
    devices = engine.devices
    rec = pulse.recorder()
    try:
        peaks = {}
        for gain in (1.0, 0.25):
            engine.set_mic_gain(gain)
            track = engine.new_mic_track()
            player = pulse.play_into_mic(tone(0.8))
            sent = []
            for _ in range(40):
                samples, _ = await track.next_frame()
                sent.append(samples.copy())
            player.wait(5)
            track.stop()
            peaks[gain] = int(np.abs(np.concatenate(sent).astype(np.int32)).max())
        heard = {}
        for volume in (1.0, 0.25):
            engine.set_output_volume(volume)
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            signal = tone(0.5, 1000)
            for i in range(0, len(signal) - FRAME + 1, FRAME):
                engine._on_remote(signal[i:i + FRAME].copy(), i)
                await asyncio.sleep(0.018)
            await asyncio.sleep(0.3)
            heard[volume] = int(np.abs(rec.since(t0).astype(np.int32)).max())
            devices.playout.flush()
    finally:
        rec.stop()
        await engine.close()
    print(f"mic gain 1 -> 0.25: sent peak {peaks[1.0]} -> {peaks[0.25]}; "
          f"volume 1 -> 0.25: speaker peak {heard[1.0]} -> {heard[0.25]}")
    assert 0.2 < peaks[0.25] / peaks[1.0] < 0.3
    assert 0.2 < heard[0.25] / heard[1.0] < 0.3


def _devices_cmd(env, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "sandra_tui", "devices", *args], env=env, capture_output=True,
                          text=True, timeout=30)


def test_devices_and_devices_json_agree_and_say_why(pulse, tmp_path):
    import json

    # No sound server: whatever ALSA has, both forms exit alike, and an empty list says why.
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket"}
    text, js = _devices_cmd(env), _devices_cmd(env, "--json")
    assert text.returncode == js.returncode
    assert isinstance(json.loads(js.stdout), list)
    if not json.loads(js.stdout):  # this machine has no sound card (the CI box, a container)
        assert text.returncode == 1
        for out in (text, js):
            assert f"PulseAudio is not running (no socket at {tmp_path}/no-such-socket)" in out.stderr
            assert "start PulseAudio or PipeWire" in out.stderr and "Traceback" not in out.stderr
    # With the private server: both list it, both exit 0.
    env = {**os.environ, **pulse.env}
    text, js = _devices_cmd(env), _devices_cmd(env, "--json")
    assert text.returncode == js.returncode == 0, (text.stderr, js.stderr)
    assert "default" in text.stdout and any(d["name"] == "default" for d in json.loads(js.stdout))


def test_why_no_devices_tells_a_running_server_from_a_stale_socket(pulse, tmp_path, monkeypatch):
    import socket

    from sandra_tui.audio.devices import sound_server

    monkeypatch.setenv("PULSE_SERVER", pulse.env["PULSE_SERVER"])
    assert sound_server().startswith("PulseAudio is running")
    stale = tmp_path / "native"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # the file stays, nobody listens: what a crashed server leaves
    monkeypatch.setenv("PULSE_SERVER", f"unix:{stale}")
    assert sound_server().startswith(f"PulseAudio is not running ({stale}: ")


async def test_the_audio_dialog_drives_the_real_engine_by_keys(pulse, asoundrc, tmp_path):
    """F8 on the real controller and devices: Ctrl+R finds a device defined after start, the
    levels typed reach the engine, Ctrl+T records and plays back through PulseAudio."""
    from textual.widgets import Input

    from sandra_tui.call.controller import CallController
    from sandra_tui.call.thread_port import ControllerPort
    from sandra_tui.config.model import Config
    from sandra_tui.ui.app import SandraApp
    from sandra_tui.ui.screens.mic_test import MicTestScreen
    from tests.ui.helpers import wait_until

    engine = AudioEngine(DeviceAudio(echo_cancellation=False))
    controller = CallController(Config(ice={"stun": []}, telemetry={"enabled": False}), audio=engine)
    app = SandraApp(ControllerPort(controller), autostart=False, monitor_loop_lag=False)
    app.config_path = tmp_path / "config.toml"
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("f8")
            picker = app.screen
            asoundrc()
            await pilot.press("ctrl+r")
            await wait_until(lambda: any(d.name == "sandra_headset" for d in picker.devices), pilot, timeout=10)
            field = picker.query_one("#devices-gain", Input)
            field.focus()
            await pilot.press("end", "backspace", "backspace", "backspace", "1", "5", "0")
            await pilot.pause()
            assert engine.gain.value == 1.5
            player = pulse.play_into_mic(speech_like(2.0, amplitude=6000))
            await pilot.press("ctrl+t")
            await wait_until(lambda: isinstance(app.screen, MicTestScreen), pilot)
            await wait_until(lambda: app.screen.result is not None or app.screen.error, pilot, timeout=20)
            player.wait(5)
            result, error = app.screen.result, app.screen.error
            await pilot.press("escape")
            await pilot.press("ctrl+s")
            await pilot.pause()
    finally:
        await controller.close()
    assert not error, error
    print(f"mic test by keys: {result.summary()} ({result.played_frames} frames played back)")
    assert result.played_frames >= 145 and result.peak_dbfs > -20  # 6000 at gain 1.5: -11 dBFS
    assert "mic_gain = 1.5" in (tmp_path / "config.toml").read_text()
