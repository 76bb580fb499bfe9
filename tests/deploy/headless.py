"""`sandra-tui call --headless` as a process, against the stack's nginx URL (https)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CONFIG = """[ice]
stun = []
[telemetry]
batch_size = 1
flush_interval_s = 1
"""


def headless(home: Path, backend: str, *args: str, ca: Path | None = None) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
           "XDG_STATE_HOME": str(home / "state"), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CACHE_HOME": str(home / "cache")}
    env.pop("SANDRA_CA_FILE", None)
    if ca is not None:
        env["SANDRA_CA_FILE"] = str(ca)
    cmd = [sys.executable, "-m", "sandra_tui", "--log-level", "INFO", "--config", str(home / "config.toml"),
           "--backend", backend, "call", "--headless", *args]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, list[dict], str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return proc.returncode, events, err


def telemetry_counts(stderr: str) -> dict:
    """The uploader's own account at close (uploader.py logs `telemetry: {counts}; closed in`;
    headless logs to stderr)."""
    import ast
    import re

    found = re.findall(r"telemetry: (\{.*?\}); closed in", stderr)
    assert found, stderr[-3000:]
    return ast.literal_eval(found[-1])
