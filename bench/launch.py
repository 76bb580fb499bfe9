"""`python -m bench.launch [RUNS] [--pythonpath DIR]`: from `sandra-tui` to a connected call (issue #23).

Each run starts, in a tmux pane of its own (a real pty, 100x30), a bare Textual app (Header, one
Static, Footer) and then `sandra-tui --text-only` on its embedded agent, and reads the screen
(`tmux capture-pane`) every 10 ms: first paint is the first screen showing the app's own text
(the Static; sandra-tui's message box), connected is sandra-tui's status line saying so. Both
apps are measured in the same run, alternately, so they share the machine's load; the figures
are the medians, and the ratios sandra-tui / bare app (lower is better). `serve` start -> ready
is the time to its --ready-file, started as the TUI starts it. The aiortc floor is a bare process
that imports aiortc and connects two peers over loopback (FLOOR_APP): the least any aiortc
client can take to "connected" from a cold start, shown as a ratio to the bare paint as well.

--pythonpath DIR measures another checkout's code (the "before" figures: DIR=/work/main).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

POLL_S = 0.01
CAP_S = 30.0  # a run that shows nothing by then counts as failed
TAG = "SANDRA_LAUNCH_BENCH"
BARE_TEXT = "bare Textual app"
BARE_APP = f'''
from textual.app import App
from textual.widgets import Footer, Header, Static

class Bare(App):
    def compose(self):
        yield Header()
        yield Static("{BARE_TEXT}")
        yield Footer()

Bare().run()
'''
# The floor for "connected" with the call stack we ship (aiortc==1.16.0, pinned): a bare Python
# process that imports aiortc and connects two peers of its own over loopback (a data channel
# open: ICE and DTLS done), with no TUI, no agent, no config, no audio. Nothing that talks
# WebRTC through aiortc can show "connected" sooner from a cold start on this machine.
FLOOR_APP = '''
import asyncio, time
t0 = time.monotonic()
import aiortc
from sandra_tui.shims.aioice import loopback_from_here
imported = time.monotonic() - t0

async def main():
    loopback_from_here()
    cfg = aiortc.RTCConfiguration(iceServers=[])
    a, b = aiortc.RTCPeerConnection(cfg), aiortc.RTCPeerConnection(cfg)
    opened = asyncio.Event()
    b.on("datachannel", lambda ch: ch.on("open", opened.set) if ch.readyState != "open" else opened.set())
    a.createDataChannel("oai-events").on("open", opened.set)
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.wait_for(opened.wait(), 20)
    print(f"FLOOR import={imported:.3f}", flush=True)
    await a.close(); await b.close()

asyncio.run(main())
'''
PAINTED = re.compile(r"Type to Sandra")
CONNECTED = re.compile(r"● connected", re.IGNORECASE)


class Pane:
    """One command in a private tmux server's pane; read by its screen text."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.socket = f"sandra-launch-{uuid.uuid4().hex[:8]}"
        self.started = time.monotonic()
        # cwd: `python -m` puts it first on sys.path, before PYTHONPATH (--pythonpath must win)
        subprocess.run(["tmux", "-L", self.socket, "new-session", "-d", "-x", "100", "-y", "30", "-c", str(cwd),
                        " ".join(_quote(a) for a in command)], env=env, check=True)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p"], capture_output=True, text=True)
        return out.stdout

    def wait_for(self, pattern: re.Pattern) -> float | None:
        """Seconds from the start until `pattern` is on the screen (None: not within CAP_S)."""
        while time.monotonic() - self.started < CAP_S:
            if pattern.search(self.screen()):
                return time.monotonic() - self.started
            time.sleep(POLL_S)
        return None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def _home(root: Path, pythonpath: str | None) -> dict[str, str]:
    """An environment of its own: config (no STUN, no telemetry), state and logs in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text("[ice]\nstun = []\n[telemetry]\nenabled = false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDRA_", "REACT_APP_TURN", "TMUX"))}
    env.update({TAG: root.name, "SANDRA_CONFIG": str(root / "config.toml"), "HOME": str(root),
                "XDG_CONFIG_HOME": str(root / "config"), "XDG_STATE_HOME": str(root / "state"),
                "XDG_CACHE_HOME": str(root / "cache"), "XDG_DATA_HOME": str(root / "data"),
                "TERM": "xterm-256color"})
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def _tagged(tag: str) -> list[int]:
    """Processes (the TUI, its agent) started with our tag in their environment."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"{TAG}={tag}".encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found


def _reap(tag: str) -> None:
    """Wait (up to 10 s) for the TUI and its agent to end after the pane closed; kill what is left."""
    deadline = time.monotonic() + 10.0
    while _tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in _tagged(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def bare_paint(root: Path) -> float | None:
    env = _home(root, None)
    pane = Pane([sys.executable, "-c", BARE_APP], env, root)
    try:
        return pane.wait_for(re.compile(re.escape(BARE_TEXT)))
    finally:
        pane.close()
        _reap(root.name)


def aiortc_floor(root: Path, pythonpath: str | None) -> tuple[float | None, float | None]:
    """(launch -> two aiortc peers connected, of which importing aiortc) in a bare process."""
    env = _home(root, pythonpath or os.getcwd())
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", FLOOR_APP], env=env, cwd=root, capture_output=True, text=True,
                         timeout=CAP_S)
    elapsed = time.monotonic() - started
    found = re.search(r"FLOOR import=([0-9.]+)", out.stdout)
    return (elapsed, float(found.group(1))) if found else (None, None)


def tui_launch(root: Path, pythonpath: str | None) -> tuple[float | None, float | None]:
    env = _home(root, pythonpath)
    pane = Pane([sys.executable, "-m", "sandra_tui", "--text-only"], env, root)
    try:
        return pane.wait_for(PAINTED), pane.wait_for(CONNECTED)
    finally:
        pane.close()
        _reap(root.name)


def serve_ready(root: Path, pythonpath: str | None) -> float | None:
    """`serve` as the TUI starts it (port 0, ready file), start -> ready file."""
    env = _home(root, pythonpath)
    ready = root / "ready"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "sandra_tui", "--log-level", "INFO", "serve", "--host",
                             "127.0.0.1", "--port", "0", "--ready-file", str(ready)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=root)
    try:
        while time.monotonic() - started < CAP_S and proc.poll() is None:
            if ready.exists() and ready.read_text().strip():
                return time.monotonic() - started
            time.sleep(POLL_S)
        return None
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def measure(runs: int = 5, pythonpath: str | None = None) -> dict:
    if shutil.which("tmux") is None:
        raise SystemExit("bench.launch needs tmux")
    top = Path(tempfile.mkdtemp(prefix="sandra-launch-"))
    bare, paint, connected, ready, floor, floor_import = [], [], [], [], [], []
    try:
        for i in range(runs):
            bare.append(bare_paint(top / f"bare{i}"))
            f, fi = aiortc_floor(top / f"floor{i}", pythonpath)
            floor.append(f)
            floor_import.append(fi)
            p, c = tui_launch(top / f"tui{i}", pythonpath)
            paint.append(p)
            connected.append(c)
            ready.append(serve_ready(top / f"serve{i}", pythonpath))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    b, p, c, f = _median(bare), _median(paint), _median(connected), _median(floor)
    return {"runs": runs, "code": pythonpath or "this checkout",
            "bare_paint_s": b, "paint_s": p, "connected_s": c, "serve_ready_s": _median(ready),
            "paint_ratio": round(p / b, 2) if p and b else None,
            "connected_ratio": round(c / b, 2) if c and b else None,
            "aiortc_floor_s": f, "aiortc_import_s": _median(floor_import),
            "aiortc_floor_ratio": round(f / b, 2) if f and b else None,
            "raw": {"bare_paint": bare, "paint": paint, "connected": connected, "serve_ready": ready,
                    "aiortc_floor": floor, "aiortc_import": floor_import}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--pythonpath", metavar="DIR", help="measure the sandra_tui in DIR (e.g. /work/main)")
    args = parser.parse_args()
    print(json.dumps(measure(args.runs, args.pythonpath), indent=1))
