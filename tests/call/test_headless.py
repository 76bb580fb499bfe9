"""`sandra-tui call --headless` as a process against `sandra-tui serve` as a process."""

import json
import subprocess
import sys

import pytest

from tests.agent_server import ServeProcess


@pytest.fixture(scope="module")
def serve():
    proc = ServeProcess("--faults").start()
    yield proc
    proc.stop()


def call(*args, config=None, timeout=60):
    cmd = [sys.executable, "-m", "sandra_tui"]
    if config:
        cmd += ["--config", str(config)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout)


def test_headless_call_prints_json_events_and_exits_zero(serve, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ice]\nstun = []\n[telemetry]\nenabled = false\n")
    speaker = tmp_path / "heard.wav"
    r = call("--backend", serve.url, "call", "--headless", "--duration", "8", "--say", "hello headless",
             "--speaker-file", str(speaker), config=cfg)
    assert r.returncode == 0, r.stderr[-2000:]
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert all(isinstance(e["t"], float) and "event" in e for e in events)
    states = [e["state"] for e in events if e["event"] == "state"]
    assert states[:3] == ["acquiring_token", "connecting", "connected"] and states[-1] == "ended"
    latency = {e["name"]: e for e in events if e["event"] == "latency"}
    assert {"token_acquisition", "sdp_exchange", "ice_connect"} <= set(latency)
    assert all(e["class"] in ("GOOD", "MEDIUM", "HIGH") for e in latency.values())
    finals = [e for e in events if e["event"] == "transcript" and e["final"]]
    assert finals[0]["role"] == "user" and finals[0]["text"] == "hello headless"
    assert any(e["role"] == "assistant" and "hello headless" in e["text"] for e in finals)
    assert speaker.stat().st_size > 48000 * 2  # more than a second of Sandra's audio was written


def test_headless_call_failure_exits_non_zero(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[backend]\nurl = \"http://127.0.0.1:9\"\n[ice]\nstun = []\n"
                   "[reconnect]\nmax_attempts = 1\nbase_delay_ms = 10\njitter = 0.0\n[telemetry]\nenabled = false\n")
    r = call("call", "--headless", "--duration", "10", config=cfg)
    assert r.returncode == 1
    events = [json.loads(line) for line in r.stdout.splitlines()]
    attempts = [e for e in events if e["event"] == "reconnect_attempt"]
    assert attempts == [{**attempts[0], "attempt": 1, "max": 1, "delay_ms": 10, "reason": "backend_unreachable"}]
    assert events[-1]["event"] == "state" and events[-1]["state"] == "failed"
    assert "Reconnection attempt 1/1. Retrying in 10ms. Reason: backend_unreachable" in r.stderr


def test_headless_bad_arguments(tmp_path):
    r = call("call", "--headless", "--duration", "-1")
    assert r.returncode == 2 and "--duration" in r.stderr
    r = call("call", "--headless", "--mic-file", str(tmp_path / "missing.wav"), "--duration", "1",
             config=tmp_path / "none.toml")
    assert r.returncode == 2 and "missing.wav" in r.stderr and "Traceback" not in r.stderr
