"""Benchmarks with real audio devices: a private PulseAudio server (tests/pulse.py), the agent in
mirror mode (every frame straight back) and each client on the ALSA "default" device.

- mouth-to-ear: bench/pulse_rig.py plays a click into the mic sink and times its return on
  the speaker monitor, with 0% and 2% packet loss on the agent's media;
- our client's stage breakdown from its edge trace plus the agent's mirror trace;
- CPU and RSS with audio both ways (speech looped into the microphone, mirrored back).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench import resources
from sandra_tui.audio.trace import breakdown, round_trips
from tests.agent_server import ServeProcess
from tests.pulse import MIC_SINK, SPK_SINK, Pulse, speech_like

RATE = 48000


def _faults(url: str, **patch) -> dict:
    request = urllib.request.Request(url + "/_faults", data=json.dumps(patch).encode() if patch else None,
                                     headers={"Content-Type": "application/json"},
                                     method="POST" if patch else "GET")
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def _client(kind: str, url: str, env: dict, seconds: float, trace: bool = False) -> subprocess.Popen:
    if kind == "ours":
        args = [sys.executable, "-m", "sandra_tui", "--backend", url, "call", "--headless", "--devices",
                "--duration", str(seconds)] + (["--trace-audio"] if trace else [])
    else:
        args = [sys.executable, "-m", "bench.baseline", url, str(seconds), "--devices"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE if trace else subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)


class AudioBench:
    def __init__(self) -> None:
        self.pulse = Pulse().start()
        self.serve = ServeProcess("--faults", "--agent-mode", "mirror").start()
        self.env = {**os.environ, **self.pulse.env, "SANDRA_CONFIG": "/nonexistent/sandra-bench.toml"}
        # A fresh PulseAudio server stalls the first streams opened on it for a few seconds (seen
        # as a growing playout buffer in whichever client goes first). Warm it up with the rig on
        # its own loop, which also tells the rig's own delay (expected: about 0).
        self.rig_self_ms = self._rig(4, MIC_SINK, f"{MIC_SINK}.monitor")

    def _rig(self, clicks: int, sink: str, source: str) -> list[float | None]:
        env = {**self.env, "PULSE_SINK": sink, "PULSE_SOURCE": source}
        out = subprocess.run([sys.executable, "-m", "bench.pulse_rig", str(clicks)], env=env,
                             capture_output=True, text=True, timeout=clicks * 2 + 30).stdout
        return [json.loads(line)["ms"] for line in out.splitlines() if line.startswith("{")]

    def close(self) -> None:
        self.serve.stop()
        self.pulse.stop()

    def mouth_to_ear(self, kind: str, clicks: int, loss: float) -> dict:
        _faults(self.serve.url, rtp_drop=loss, seed=11)
        client = _client(kind, self.serve.url, self.env, clicks * 0.6 + 20, trace=kind == "ours")
        try:
            time.sleep(2.5)  # connected, playout settled
            delays = self._rig(clicks, MIC_SINK, f"{SPK_SINK}.monitor")
            mirror = [e for entries in _faults(self.serve.url)["mirror_trace"].values() for e in entries]
        finally:
            client.terminate()
            trace_out, _ = client.communicate(timeout=15)
            _faults(self.serve.url, rtp_drop=0.0)
        stages = {}
        if trace_out:
            edges: dict[str, list[float]] = {}
            for line in trace_out.splitlines():
                if '"trace"' in line:
                    record = json.loads(line)
                    edges.setdefault(record["stage"], []).append(record["mono"])
            stages = breakdown(round_trips(edges, mirror))
        heard = [d for d in delays if d is not None]
        return {"ms": heard, "lost": len(delays) - len(heard), "stages": stages}

    def resources_both_ways(self, kind: str, seconds: float) -> dict:
        client = _client(kind, self.serve.url, self.env, seconds + 15)
        talk = self.pulse.play_into_mic(np.tile(np.concatenate([speech_like(1.5), np.zeros(RATE // 2, np.int16)]),
                                                int(seconds / 2) + 10))
        try:
            return resources.sample(client.pid, seconds + resources.WARMUP_S, lambda: client.poll() is None)
        finally:
            talk.kill()
            talk.wait()
            client.terminate()
            client.wait(15)

    def tui_call(self, seconds: float) -> dict:
        """The full TUI in tmux on the PulseAudio devices, the agent replying to spoken turns:
        event-loop lag and playout underruns, read from the TUI's log at exit."""
        if shutil.which("tmux") is None:
            return {}
        _faults(self.serve.url, agent_mode="reply")
        state = Path(tempfile.mkdtemp(prefix="sandra-bench-tui-"))
        session = f"sandra-bench-tui-{os.getpid()}"
        env = " ".join(f"{k}={v}" for k, v in {**self.pulse.env, "XDG_STATE_HOME": str(state),
                                               "SANDRA_CONFIG": "/nonexistent/sandra-bench.toml"}.items())
        exe = Path(sys.executable).with_name("sandra-tui")
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                        f"{env} exec {exe} --backend {self.serve.url}"], check=True)
        turns = np.concatenate([speech_like(1.5), np.zeros(RATE * 4, np.int16)])
        talk = self.pulse.play_into_mic(np.tile(turns, int(seconds / 5.5) + 1))
        try:
            time.sleep(seconds)
            subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=False)
            for _ in range(50):
                if subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode:
                    break
                time.sleep(0.2)
        finally:
            talk.kill()
            talk.wait()
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
            _faults(self.serve.url, agent_mode="mirror")
        text = "".join(p.read_text() for p in state.rglob("*.log"))
        shutil.rmtree(state, ignore_errors=True)
        result = {}
        for key, pattern in (("lag", r"event loop lag: (\{.*\})"), ("playout", r"playout: (\{.*\})")):
            found = re.findall(pattern, text)
            if found:
                result[key] = ast.literal_eval(found[-1])
        return result

    def long_call(self, seconds: float) -> dict:
        """Our headless client on the devices, the agent replying to spoken turns: the playout
        buffer's counters at the end (underruns, concealed) and its largest depth and target."""
        _faults(self.serve.url, agent_mode="reply")
        client = subprocess.Popen([sys.executable, "-m", "sandra_tui", "--backend", self.serve.url, "call",
                                   "--headless", "--devices", "--duration", str(seconds)],
                                  env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        turns = np.concatenate([speech_like(1.5), np.zeros(RATE * 5, np.int16)])
        talk = self.pulse.play_into_mic(np.tile(turns, int(seconds / 6.5) + 2))
        try:
            out, _ = client.communicate(timeout=seconds + 60)
        finally:
            talk.kill()
            talk.wait()
            _faults(self.serve.url, agent_mode="mirror")
        events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        playout = [e for e in events if e["event"] == "playout"]
        replies = sum(1 for e in events if e["event"] == "speech" and e["what"] == "reply_started")
        if not playout:
            return {"replies": replies}
        return {"replies": replies, "underruns": playout[-1]["underruns"], "concealed": playout[-1]["concealed"],
                "max_depth_ms": max(e["depth_ms"] for e in playout),
                "max_target_ms": max(e["target_ms"] for e in playout)}


if __name__ == "__main__":  # python -m bench.audio [SECONDS]: one long call on the devices
    bench = AudioBench()
    try:
        print(json.dumps(bench.long_call(float(sys.argv[1]) if len(sys.argv) > 1 else 120.0)))
    finally:
        bench.close()
