"""CPU and memory of a client process over a call: sampled from /proc once a second.

CPU is % of one core over the sampled window; the RSS slope is a least-squares fit of RSS over
time after a warm-up, in MB per hour (the guide's "memory of a 1 h call", read as growth).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_S = 10.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sample(pid: int, seconds: float, alive=lambda: True) -> dict:
    times, rss = [], []
    start = time.monotonic()
    cpu0, t0 = None, None
    while time.monotonic() - start < seconds and alive():
        try:
            now, cpu, mem = time.monotonic(), _cpu_seconds(pid), _rss_mb(pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        if now - start >= WARMUP_S:
            if cpu0 is None:
                cpu0, t0 = cpu, now
            times.append(now - start)
            rss.append(mem)
        time.sleep(1.0)
    if cpu0 is None or len(times) < 3:
        return {"cpu_pct": None, "rss_mb": None, "rss_slope_mb_per_h": None}
    cpu_pct = 100 * (cpu - cpu0) / (now - t0)
    slope = float(np.polyfit(np.array(times) / 3600, np.array(rss), 1)[0])
    return {"cpu_pct": round(cpu_pct, 2), "rss_mb": round(rss[-1], 1), "rss_slope_mb_per_h": round(slope, 2)}


def _run_and_sample(args: list[str], seconds: float, env: dict | None = None) -> dict:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        return sample(proc.pid, seconds, lambda: proc.poll() is None)
    finally:
        proc.terminate()
        proc.wait(10)


def headless(url: str, seconds: float, extra: tuple[str, ...] = (), env: dict | None = None) -> dict:
    """`call --headless` (`extra`: more arguments, e.g. --devices; `env`: more variables)."""
    return _run_and_sample([sys.executable, "-m", "sandra_tui", "--backend", url, "call", "--headless",
                            "--duration", str(seconds + 2), *extra], seconds,
                           {**os.environ, "SANDRA_CONFIG": "/nonexistent/sandra-bench.toml", **(env or {})})


def baseline(url: str, seconds: float) -> dict:
    return _run_and_sample([sys.executable, "-m", "bench.baseline", url, str(seconds + 2)], seconds)


def with_tui(url: str, seconds: float, extra: tuple[str, ...] = (), env: dict | None = None) -> dict:
    """The full TUI in a tmux pseudo-terminal, as an operator runs it (`extra`: more arguments,
    e.g. --text-only; `env`: more variables)."""
    if shutil.which("tmux") is None:
        return {"cpu_pct": None, "rss_mb": None, "rss_slope_mb_per_h": None}
    session = f"sandra-bench-{os.getpid()}"
    # A server of our own (-L): a running tmux server would start the pane with its environment,
    # not ours (PYTHONPATH names the checkout under test).
    tmux = ["tmux", "-L", session]
    exe = Path(sys.executable).with_name("sandra-tui")
    variables = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "SANDRA_CONFIG": "/nonexistent/sandra-bench.toml",
                 **(env or {})}
    assign = " ".join(f"{name}={shlex.quote(value)}" for name, value in variables.items())
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
                    f"{assign} exec {exe} --backend {url} {shlex.join(extra)}"], check=True)
    try:
        pid = int(subprocess.run([*tmux, "list-panes", "-t", session, "-F", "#{pane_pid}"],
                                 capture_output=True, text=True, check=True).stdout.split()[0])
        return sample(pid, seconds)
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
