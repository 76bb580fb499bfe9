"""Real PortAudio streams on a private PulseAudio server: capture, playout, resampling,
switching, fallback, the `devices` command and the text-only mode."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from sandra_tui.audio.device_audio import DeviceAudio
from sandra_tui.audio.devices import AudioUnavailable, list_devices
from sandra_tui.audio.engine import build_engine
from sandra_tui.audio.playout import FRAME
from sandra_tui.config.model import AudioConfig

RATE = 48000


def tone(seconds: float, hz: float = 440.0, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * hz * t) * amplitude).astype(np.int16)


def read_for(devices: DeviceAudio, seconds: float) -> np.ndarray:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.append(devices.read())
        time.sleep(0.02)
    return np.concatenate(out)


def push_tone(devices: DeviceAudio, samples: np.ndarray) -> None:
    for i in range(0, len(samples) - FRAME + 1, FRAME):
        devices.playout.push(samples[i : i + FRAME], i)


RATES_AND_BLOCKS = [(0, 10), (44100, 10), (0, 20)]  # (device rate, PortAudio block ms)


@pytest.mark.parametrize(("rate", "block_ms"), RATES_AND_BLOCKS)
def test_the_microphone_hears_what_is_played_into_the_mic_sink(pulse, devices, rate, block_ms):
    d = devices(device_rate=rate, block_ms=block_ms)
    assert d.mic.rate == (rate or RATE)
    player = pulse.play_into_mic(tone(0.6))
    started = time.monotonic()
    heard = read_for(d, 1.2)
    player.wait(5)
    assert np.abs(heard.astype(np.int32)).max() > 4000
    blocks = (time.monotonic() - started) * 1000 / block_ms
    assert 0.6 * blocks < d.mic.callbacks < 1.6 * blocks + 10  # PortAudio calls back once per block


@pytest.mark.parametrize(("rate", "block_ms"), RATES_AND_BLOCKS)
def test_the_speaker_plays_the_playout_buffer(pulse, devices, rate, block_ms):
    rec = pulse.recorder()
    try:
        d = devices(device_rate=rate, block_ms=block_ms)
        assert d.speaker.rate == (rate or RATE)
        time.sleep(0.2)
        start = time.monotonic()
        push_tone(d, tone(0.5, 1000))
        time.sleep(0.9)
        got = rec.since(start)
    finally:
        rec.stop()
    loud = np.abs(got.astype(np.int32)) > 4000
    assert loud.sum() > RATE * 0.5 * (2 / 3) * 0.8  # a sine is above half its peak 2/3 of the time
    spectrum = np.abs(np.fft.rfft(got.astype(np.float32)))
    peak_hz = np.argmax(spectrum) * RATE / len(got)
    assert abs(peak_hz - 1000) < 20  # resampled, not pitched
    assert d.playout.underruns <= 1  # the end of the tone


def test_switching_devices_mid_stream_keeps_audio_flowing(pulse, devices):
    d = devices(input_device="default", output_device="default")
    names = {dev.name for dev in list_devices()}
    assert {"pulse", "default"} <= names
    before = d.mic
    d.switch("pulse", "pulse")
    assert d.input_name == "pulse" and d.output_name == "pulse"
    assert before._stream is None  # the old stream is closed
    player = pulse.play_into_mic(tone(0.4))
    heard = read_for(d, 0.8)
    player.wait(5)
    assert np.abs(heard.astype(np.int32)).max() > 4000
    with pytest.raises(AudioUnavailable, match="no input device matches 'nonexistent'"):
        d.switch("nonexistent", None)
    assert d.input_name == "pulse"  # a failed switch changes nothing


def test_a_device_that_stops_falls_back_to_the_default(pulse, devices):
    d = devices(input_device="pulse", output_device="pulse")
    d.mic.abort()  # what an unplugged device looks like: PortAudio stops the stream
    found = d.check()
    assert [h.key for h in found] == ["input-fallback"] and found[0].switched
    assert "Microphone 'pulse'" in found[0].message and "switched to 'default'" in found[0].message
    assert d.input_name == "default" and d.fallbacks == 1
    player = pulse.play_into_mic(tone(0.4))
    heard = read_for(d, 0.8)
    player.wait(5)
    assert np.abs(heard.astype(np.int32)).max() > 4000
    assert [h for h in d.check() if h.key != "late"] == []


def test_an_unknown_configured_device_uses_the_default_with_a_notice(pulse, devices):
    d = devices(input_device="USB headset", output_device="")
    assert d.input_name == "default"
    assert d.notices == ["Microphone 'USB headset' not found; using 'default'"]


def test_devices_command_lists_the_pulse_devices_with_the_default_marked(pulse):
    env = {**os.environ, **pulse.env}
    out = subprocess.run([sys.executable, "-m", "sandra_tui", "devices", "--json"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    default = [d for d in listed if d["default_input"] and d["default_output"]]
    assert [d["name"] for d in default] == ["default"]
    text = subprocess.run([sys.executable, "-m", "sandra_tui", "devices"], env=env, capture_output=True,
                          text=True, timeout=30).stdout
    assert "(default input) (default output)" in text


def test_no_audio_server_gives_text_only_with_one_plain_message(pulse, monkeypatch):
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pulse/native")
    engine, message = build_engine(AudioConfig(echo_cancellation=False))
    assert engine.devices is None and engine.description == "no audio device (text only)"
    assert message.startswith("No audio device: ") and "Text chat and the transcript still work" in message
    assert "Traceback" not in message
