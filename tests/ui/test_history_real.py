"""Call history, export and recording against a real call on the in-process agent (loopback)."""

import asyncio
import json
import os
import subprocess
import sys
import wave

import numpy as np

from sandra_tui.audio.engine import AudioEngine
from sandra_tui.audio.sinks import WavFileSink
from sandra_tui.audio.sources import WavFileSource
from sandra_tui.call.call_log import CallLogger, CallStore, export
from sandra_tui.call.controller import CallController
from sandra_tui.call.events import CallState
from sandra_tui.config.model import Config


def read_wav(path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getnchannels(), w.getframerate()


def best_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Peak of the normalised cross-correlation (any lag): 1 = the same signal, shifted."""
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    return float(np.max(np.abs(xc)) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def windowed_correlation(haystack: np.ndarray, needle: np.ndarray, window_s: float = 0.1) -> float:
    """The median, over `window_s` pieces of `needle`, of each piece's best normalised match
    anywhere in `haystack` (energy-normalised locally). One lag for a whole signal is undone by
    a frame the capture or the playout dropped on a busy machine (measured under stress-ng
    --cpu 2: 0.16 whole, 0.49 with 0.5 s pieces); 100 ms pieces mostly hold none."""
    h = haystack.astype(np.float64)
    energy = np.concatenate([[0.0], np.cumsum(h * h)])
    n = int(48000 * window_s)
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


def mic_wav(path, seconds=3.0) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(int(48000 * seconds)) / 48000
    # A chirp plus noise: one alignment only, so a correlation peak means the same audio.
    signal = (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(len(t))) * 32767
    samples = signal.astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(samples.tobytes())
    return samples


async def wait_for(predicate, timeout=20.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_a_real_call_is_saved_exported_and_recorded(agent_server, tmp_path):
    mic = mic_wav(tmp_path / "mic.wav")
    engine = AudioEngine(WavFileSource(str(tmp_path / "mic.wav")), [WavFileSink(str(tmp_path / "speaker.wav"))])
    config = Config(backend={"url": agent_server.url}, ice={"stun": []}, telemetry={"enabled": False},
                    history={"calls_db": str(tmp_path / "calls.sqlite3")}, call={"recordings_dir": str(tmp_path)})
    controller = CallController(config, audio=engine)
    store = CallStore(tmp_path / "calls.sqlite3")
    logger = CallLogger(controller, store)
    try:
        await controller.start()
        await wait_for(lambda: controller.state == CallState.CONNECTED)
        path = controller.set_recording(True)
        await controller.send_text("hello, this is the history test")
        await wait_for(lambda: any(m.role == "assistant" and m.final for m in controller.history.messages()))
        await asyncio.sleep(3.5)  # the whole mic file has been sent, and Sandra's reply played
        await controller.hangup()
        await asyncio.to_thread(logger.close)
    finally:
        await controller.close()
    assert not controller.recording
    calls = store.calls()
    assert len(calls) == 1
    record = store.get(calls[0].id)
    assert record.end_state == "ended" and record.duration_s > 3 and record.recording == path
    assert {"user", "assistant"} <= {m["role"] for m in record.messages}
    assert "hello, this is the history test" in export(record, "md")
    assert "hello, this is the history test" in [m["text"] for m in json.loads(export(record, "json"))["messages"]]

    # The commands, on the same database.
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[history]\ncalls_db = "{tmp_path / "calls.sqlite3"}"\n')
    env = {**os.environ, "SANDRA_CONFIG": str(cfg)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "sandra_tui.cli", *a], capture_output=True,  # noqa: E731
                                    text=True, env=env, timeout=60)
    r = run("history", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["id"] == record.id
    r = run("export", str(record.id), "--format", "md")
    assert r.returncode == 0 and "**You**" in r.stdout and "hello, this is the history test" in r.stdout
    assert run("export", "999").returncode == 1

    # The recording: stereo 48 kHz, the microphone on the left, Sandra on the right.
    samples, channels, rate = read_wav(path)
    assert channels == 2 and rate == 48000
    left, right = samples[0::2], samples[1::2]
    speaker, _, _ = read_wav(tmp_path / "speaker.wav")
    assert np.abs(speaker).max() > 1000, "Sandra said nothing audible"
    # In 100 ms pieces: the right channel is on the wall clock (silence fills between frames)
    # while the speaker file is frames end to end, so one lag for the whole call does not hold
    # (0.52 measured, on the base commit too).
    mic_left, sandra_right = windowed_correlation(left, mic), windowed_correlation(right, speaker)
    crossed = windowed_correlation(left, speaker)
    print(f"recording: left~mic {mic_left:.3f}, right~speaker {sandra_right:.3f}, left~speaker {crossed:.3f}")
    assert mic_left > 0.8 and sandra_right > 0.8
    assert crossed < 0.5  # the channels are not mixed up
