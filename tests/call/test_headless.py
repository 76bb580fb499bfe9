"""`sandra-tui call --headless` as a process against `sandra-tui serve` as a process."""

import json
import signal
import subprocess
import sys

import pytest

from tests.agent_server import ServeProcess
from tests.call.test_exits import APPEAR_S, BIN, Client


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


# -- exit codes of `call --headless` ---------------------------------------------------------------

def test_never_answering_backend_exits_one(tmp_path):
    """`--duration 3` against a backend that accepts and never answers: it never connected, so 1."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel's backlog; nobody ever reads them
        c = Client(tmp_path)
        c.proc = subprocess.Popen([str(BIN), "--backend", f"http://127.0.0.1:{silent.getsockname()[1]}",
                                   "call", "--headless", "--duration", "3"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env)
        rc, err = c.finish()
    assert rc == 1, err[-2000:]
    assert "Traceback" not in err


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, "stdout"])
def test_connected_call_ended_by_the_operator_exits_zero(serve, tmp_path, how):
    """Connected, then ended by a signal or by the reader closing stdout: 0, no traceback."""
    c = Client(tmp_path)
    c.proc = subprocess.Popen([str(BIN), "--backend", serve.url, "call", "--headless"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env)
    assert c.read_until("connected")[-1]["state"] == "connected"
    if how == "stdout":
        c.proc.stdout.close()  # the next event printed meets EPIPE
        rc, err = c.finish()
    else:
        c.proc.send_signal(how)
        rc, err = c.finish()
    assert rc == 0, err[-2000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]


def test_connected_call_ended_by_duration_exits_zero_and_by_failure_one(serve, tmp_path):
    c = Client(tmp_path)
    c.proc = subprocess.Popen([str(BIN), "--backend", serve.url, "call", "--headless", "--duration", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env)
    rc, err = c.finish()
    assert rc == 0, err[-2000:]
    (c.home / "config.toml").write_text("[ice]\nstun = []\n[telemetry]\nenabled = false\n"
                                        "[reconnect]\nmax_attempts = 1\nbase_delay_ms = 10\n")
    c.proc = subprocess.Popen([str(BIN), "--backend", "http://127.0.0.1:9", "call", "--headless"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env)
    rc, err = c.finish()
    assert rc == 1, err[-2000:]


def test_usage_errors_exit_two(tmp_path):
    c = Client(tmp_path)
    for args in (["call"], ["call", "--headless", "--duration", "0"], ["call", "--headless", "--nope"]):
        r = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=c.env, timeout=APPEAR_S)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
