"""Abrupt exits of the real `sandra-tui` (TUI in a pty, and `call --headless`) on the embedded
agent: whatever way the client ends, no `sandra-tui serve` of its own is left behind.

Every scenario runs with its own tag in the environment (SANDRA_EXIT_TEST), which the embedded
agent inherits, so the check finds only this test's processes and never touches the serve
processes of other tests running beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import require

BIN = Path(sys.executable).with_name("sandra-tui")
TAG = "SANDRA_EXIT_TEST"
GRACE_S = 2.0  # the bound: no agent of ours may be alive this long after the client died
# Waits for a process to show up or print a line. They are generous because the machine may be
# loaded (stress-ng beside the suite); they bound a hang, they do not measure speed.
APPEAR_S = 30.0

# Test-side fault injection, loaded by the client through PYTHONPATH (no hook in the product):
# the failure is raised once the embedded agent has been spawned, the worst moment for a leak.
SITE = textwrap.dedent('''
    import asyncio, importlib.abc, importlib.machinery, os, sys

    def _spawned():
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/children") as f:
                    if f.read().strip():
                        return True
            except OSError:
                pass
        return False

    async def _after_spawn():
        for _ in range(600):
            if _spawned():
                return
            await asyncio.sleep(0.05)

    def _patch(module):
        where = os.environ.get("SANDRA_TEST_FAIL")
        if module.__name__ == "sandra_tui.ui.app" and where == "app_mount":
            original = module.SandraApp.on_main_screen_ready
            async def on_main_screen_ready(self):
                await original(self)
                await _after_spawn()
                raise RuntimeError("injected: app mount failed")
            module.SandraApp.on_main_screen_ready = on_main_screen_ready
        if module.__name__ == "sandra_tui.call.controller" and where == "call_start":
            original_start = module.CallController.start
            async def start(self):
                await original_start(self)
                await _after_spawn()
                raise RuntimeError("injected: start-up failed")
            module.CallController.start = start

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in ("sandra_tui.ui.app", "sandra_tui.call.controller"):
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None:
                return None
            exec_module = spec.loader.exec_module
            def run(module):
                exec_module(module)
                _patch(module)
            spec.loader.exec_module = run
            return spec

    sys.meta_path.insert(0, _Finder())
''')


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def tagged(tag: str) -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of every live process started with our tag."""
    found = []
    needle = f"{TAG}={tag}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        if needle not in _read(f"/proc/{name}/environ").split(b"\0"):
            continue
        argv = _read(f"/proc/{name}/cmdline").split(b"\0")
        if argv and argv != [b""]:
            found.append((int(name), argv))
    return found


def agents(tag: str) -> list[int]:
    return [pid for pid, argv in tagged(tag)
            if any(b"sandra_tui" in a or a.endswith(b"sandra-tui") for a in argv) and b"serve" in argv]


def clients(tag: str) -> list[int]:
    """The sandra-tui client itself (not the agent, not `script`)."""
    return [pid for pid, argv in tagged(tag)
            if any(a.endswith(b"sandra-tui") for a in argv) and b"serve" not in argv and argv[0] != b"script"]


def wait_for(predicate, timeout: float = APPEAR_S, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


class Client:
    """One client process with a tag and a home (config, state, logs) of its own."""

    def __init__(self, root: Path, *, fail: str | None = None) -> None:
        self.tag = uuid.uuid4().hex
        self.home = root / self.tag[:8]
        self.home.mkdir()
        (self.home / "config.toml").write_text("[ice]\nstun = []\n[telemetry]\nenabled = false\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SANDRA_", "REACT_APP_TURN"))}
        env.update({TAG: self.tag, "SANDRA_CONFIG": str(self.home / "config.toml"), "HOME": str(self.home),
                    "XDG_CONFIG_HOME": str(self.home / "config"), "XDG_STATE_HOME": str(self.home / "state"),
                    "XDG_CACHE_HOME": str(self.home / "cache"), "XDG_DATA_HOME": str(self.home / "data"),
                    "TERM": "xterm-256color"})
        if fail:
            site = self.home / "site"
            site.mkdir()
            (site / "sitecustomize.py").write_text(SITE)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
            env["SANDRA_TEST_FAIL"] = fail
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.is_tui = False

    def tui(self) -> "Client":
        # `script` gives the TUI a real pty as its controlling terminal, as a person's terminal would;
        # the shell in it stays after the TUI ends (a closing terminal would hang up the agent too).
        self.is_tui = True
        self.proc = subprocess.Popen(["script", "-qfec", f"stty rows 30 cols 100; {BIN}; echo $? > {self.home}/rc; exec sleep 60", "/dev/null"],
                                     stdin=subprocess.PIPE, stdout=open(self.home / "screen", "wb"),
                                     stderr=subprocess.STDOUT, env=self.env)
        wait_for(lambda: clients(self.tag))  # the shell in the pty has started the TUI
        return self

    def headless(self, *args: str, shell: str | None = None) -> "Client":
        if shell is not None:
            cmd = ["bash", "-c", f"set -o pipefail; {BIN} call --headless {shell}"]
        else:
            cmd = [str(BIN), "call", "--headless", *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.env)
        return self

    def read_until(self, state: str) -> list[dict]:
        """Headless events up to and including the state `state` (or all of them at EOF)."""
        events = []
        for line in self.proc.stdout:
            events.append(json.loads(line))
            if events[-1].get("event") == "state" and events[-1].get("state") == state:
                break
        return events

    def finish(self, timeout: float = APPEAR_S) -> tuple[int, str]:
        if self.is_tui:  # the terminal stays; the TUI in it ends
            if wait_for(lambda: not clients(self.tag), timeout):
                rc = wait_for(lambda: _read(f"{self.home}/rc").strip(), 5)
                return int(rc or -1), ""
            for pid in clients(self.tag):
                os.kill(pid, signal.SIGKILL)
            return -9, ""
        if self.proc.returncode is not None:
            return self.proc.returncode, ""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        text = err.decode(errors="replace") if isinstance(err, bytes) else (err or "")
        return self.proc.returncode, text

    def orphans(self) -> int:
        """Agents of ours still alive GRACE_S after the client is gone; they are then killed."""
        self.finish()
        time.sleep(GRACE_S)
        left = agents(self.tag)
        if left:  # say how late they were (the cause differs: slow to close, or never going)
            gone = wait_for(lambda: not agents(self.tag), 10.0)
            print(f"{len(left)} agent(s) alive {GRACE_S} s after the client; "
                  + ("gone within 10 s more" if gone else "still alive 10 s later"))
        for pid, _argv in tagged(self.tag):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        return len(left)


def tui_sigkill(root: Path, problems: list[str]) -> Client:
    c = Client(root).tui()
    if not wait_for(lambda: agents(c.tag)):
        problems.append("the TUI never started its agent")
    time.sleep(1.0)  # the agent is up and the call connecting or connected
    for pid in clients(c.tag):
        os.kill(pid, signal.SIGKILL)
    return c


def tui_sigterm_connecting(root: Path, problems: list[str]) -> Client:
    c = Client(root).tui()
    if not wait_for(lambda: agents(c.tag)):
        problems.append("the TUI never started its agent")
    for pid in clients(c.tag):
        os.kill(pid, signal.SIGTERM)
    rc, _ = c.finish()
    if rc != 128 + signal.SIGTERM:  # it quit through its own handler, not by the default action
        problems.append(f"TUI after SIGTERM: exit {rc}")
    return c


def tui_startup_exception(root: Path, problems: list[str]) -> Client:
    c = Client(root, fail="app_mount").tui()
    rc, _ = c.finish()
    if rc != 1:
        problems.append(f"TUI after a start-up exception: exit {rc}")
    time.sleep(0.3)  # the screen file: `script` copies the TUI's last output
    if b"injected: app mount failed" not in (c.home / "screen").read_bytes():
        problems.append("the injected failure did not happen")
    return c


def headless_sigkill(root: Path, problems: list[str]) -> Client:
    c = Client(root).headless()
    if c.read_until("connected")[-1:][0].get("state") != "connected":
        problems.append("headless never connected")
    c.proc.kill()
    return c


def headless_sigterm_connecting(root: Path, problems: list[str]) -> Client:
    c = Client(root).headless()
    if not wait_for(lambda: agents(c.tag)):
        problems.append("headless never started its agent")
    c.proc.send_signal(signal.SIGTERM)
    rc, err = c.finish()
    if rc != 1 or "Traceback" in err:  # it never connected: exit 1, and no traceback
        problems.append(f"headless SIGTERM while connecting: exit {rc}: {err[-1500:]}")
    return c


def headless_head2(root: Path, problems: list[str]) -> Client:
    c = Client(root).headless(shell="--duration 4 | head -2")
    rc, err = c.finish()
    if rc not in (0, 1) or "Traceback" in err:  # pipefail: the client's own code, not head's
        problems.append(f"| head -2: exit {rc}: {err[-1500:]}")
    return c


def headless_startup_exception(root: Path, problems: list[str]) -> Client:
    c = Client(root, fail="call_start").headless()
    rc, err = c.finish()
    if "injected: start-up failed" not in err:
        problems.append(f"the injected failure did not happen: {err[-1500:]}")
    return c


def run_scenario(scenario, root: Path) -> tuple[str, int, list[str]]:
    problems: list[str] = []
    client = None
    try:
        client = scenario(root, problems)
        client.finish()
    except Exception as exc:  # noqa: BLE001 - reported with the others, the orphans still counted
        problems.append(f"{scenario.__name__}: {exc!r}")
    left = client.orphans() if client is not None else 0
    return scenario.__name__, left, problems


SCENARIOS = ([tui_sigkill] * 5 + [headless_sigkill] * 4 + [headless_head2] * 4
             + [tui_sigterm_connecting] * 2 + [headless_sigterm_connecting] * 2
             + [tui_startup_exception] * 2 + [headless_startup_exception])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_twenty_abrupt_exits_leave_no_agent(tmp_path):
    require(shutil.which("script") is not None, "util-linux `script` (a pty for the TUI)")
    assert len(SCENARIOS) == 20
    # Three at a time: the machine has two cores shared with other tests; each scenario mostly waits.
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda s: run_scenario(s, tmp_path), SCENARIOS))
    per_scenario: dict[str, int] = {}
    problems = []
    for name, left, found in results:
        per_scenario[name] = per_scenario.get(name, 0) + left
        problems += found
    print("orphans per scenario:", per_scenario)
    assert sum(per_scenario.values()) == 0 and not problems, (per_scenario, problems)


# -- serve as an embedded agent -----------------------------------------------------------------

def start_agent(tmp_path: Path, *, parent_pid: int, stdin) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / "ready"
    env = {**Client(tmp_path).env, "SANDRA_AGENT_PARENT": str(parent_pid)}
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([str(BIN), "--log-level", "INFO", "serve", "--port", "0", "--ready-file", str(ready)],
                                stdin=stdin, stdout=subprocess.DEVNULL, stderr=log, env=env)
    assert wait_for(lambda: ready.exists() or proc.poll() is not None), "serve did not start"
    return proc, ready


def test_serve_with_a_call_exits_zero_at_stdin_eof(tmp_path):
    """The parent holds the pipe: its end (the parent's death included) stops serve, which closes
    the call and exits 0."""
    proc, ready = start_agent(tmp_path, parent_pid=os.getpid(), stdin=subprocess.PIPE)
    url = ready.read_text().strip()
    c = Client(tmp_path)
    call = subprocess.Popen([str(BIN), "--backend", url, "call", "--headless"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=c.env)
    c.proc = call
    assert c.read_until("connected")[-1]["state"] == "connected"
    proc.stdin.close()
    proc.wait(APPEAR_S)
    err = (tmp_path / "serve.log").read_bytes()
    assert proc.returncode == 0, err[-2000:]
    assert b"shutting down (stdin closed), closing 1 call(s)" in err
    assert not ready.exists()
    call.send_signal(signal.SIGTERM)
    c.finish()


def test_serve_follows_its_parent_by_pdeathsig(tmp_path):
    """With stdin held open elsewhere, only PR_SET_PDEATHSIG can tell serve its parent died."""
    ready = tmp_path / "ready"
    r, w = os.pipe()  # we keep the write end: no EOF
    c = Client(tmp_path)
    parent = subprocess.Popen(
        [sys.executable, "-c", "import os, subprocess, sys, time\n"
         "subprocess.Popen([sys.argv[1], 'serve', '--port', '0', '--ready-file', sys.argv[2]], stdin=int(sys.argv[3]),"
         " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,"
         " env={**os.environ, 'SANDRA_AGENT_PARENT': str(os.getpid())})\ntime.sleep(120)",
         str(BIN), str(ready), str(r)], pass_fds=[r], env=c.env)
    os.close(r)
    try:
        assert wait_for(ready.exists), "serve did not start"
        assert len(agents(c.tag)) == 1
        parent.kill()
        parent.wait()
        assert wait_for(lambda: not agents(c.tag), GRACE_S + 3), "serve outlived its parent"
    finally:
        os.close(w)
        c.proc = parent
        c.orphans()


def test_serve_exits_when_its_parent_is_gone_before_it_starts(tmp_path):
    proc, ready = start_agent(tmp_path, parent_pid=1, stdin=subprocess.PIPE)  # not our parent: gone already
    proc.wait(APPEAR_S)
    err = (tmp_path / "serve.log").read_bytes()
    assert proc.returncode == 0 and not ready.exists(), err[-2000:]
    assert b"the parent 1 is gone before start-up" in err


# -- EmbeddedAgent ----------------------------------------------------------------------------------

OUR_TAG = uuid.uuid4().hex  # set in this process's environment by agent_home, inherited by its agents


def our_agents() -> list[int]:
    """Live `serve` children of this test process started by the tests below."""
    found = []
    for pid in agents(OUR_TAG):
        stat = _read(f"/proc/{pid}/stat").rsplit(b")", 1)[-1].split()
        if len(stat) > 2 and int(stat[1]) == os.getpid() and stat[0] != b"Z":
            found.append(pid)
    return found


@pytest.fixture
def agent_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("SANDRA_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv(TAG, OUR_TAG)
    assert not our_agents()
    yield
    assert not our_agents()


async def test_concurrent_starts_share_one_agent_and_stop_is_idempotent(agent_home):
    import asyncio

    from sandra_tui.call.embedded import EmbeddedAgent

    agent = EmbeddedAgent()
    urls = await asyncio.gather(*(agent.start() for _ in range(4)))
    assert len(set(urls)) == 1 and len(our_agents()) == 1
    await agent.stop()
    await agent.stop()
    assert not our_agents()


async def test_a_cancelled_or_timed_out_start_leaves_nothing(agent_home, monkeypatch):
    import asyncio

    from sandra_tui.call import embedded

    for delay in (0.0, 0.01, 0.3):  # before, around and after the fork
        agent = embedded.EmbeddedAgent()
        task = asyncio.ensure_future(agent.start())
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not our_agents(), delay
    monkeypatch.setattr(embedded, "START_TIMEOUT_S", 0.2)  # far below serve's start-up
    with pytest.raises(embedded.EmbeddedAgentError, match="did not start"):
        await embedded.EmbeddedAgent().start()
    assert not our_agents()


async def test_stop_reaps_even_when_cancelled(agent_home):
    import asyncio

    from sandra_tui.call.embedded import EmbeddedAgent

    agent = EmbeddedAgent()
    await agent.start()
    task = asyncio.ensure_future(agent.stop())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not our_agents()


def test_an_agent_started_from_a_short_lived_thread_outlives_that_thread(agent_home):
    """PR_SET_PDEATHSIG fires when the forking *thread* ends: the spawner thread forks, not the caller."""
    import asyncio
    import threading

    from sandra_tui.call.embedded import EmbeddedAgent

    agent = EmbeddedAgent()
    thread = threading.Thread(target=lambda: asyncio.run(agent.start()))
    thread.start()
    thread.join(APPEAR_S)
    time.sleep(1.0)  # a PDEATHSIG'd agent would be gone by now
    assert agent.running and our_agents() == [agent.pid]
    asyncio.run(agent.stop())


@pytest.mark.parametrize("how", ["ctrl+q", "sighup"])
def test_tui_quit_and_hang_up_stop_the_agent(tmp_path, how):
    require(shutil.which("script") is not None, "util-linux `script` (a pty for the TUI)")
    c = Client(tmp_path).tui()
    assert wait_for(lambda: agents(c.tag)), "the TUI never started its agent"
    # The agent now starts before the TUI imports Textual (issue #23): wait for the screen, or
    # Ctrl+Q reaches a pty still in cooked mode, where it is XON and nobody sees it.
    assert wait_for(lambda: b"connected" in _read(f"{c.home}/screen"), APPEAR_S), "the TUI never connected"
    if how == "ctrl+q":
        c.proc.stdin.write(b"\x11")  # `script` passes it through the pty as a key press
        c.proc.stdin.flush()
    else:
        for pid in clients(c.tag):
            os.kill(pid, signal.SIGHUP)
    rc, _ = c.finish()
    assert rc == (0 if how == "ctrl+q" else 128 + signal.SIGHUP)
    assert c.orphans() == 0
