"""The embedded Sandra agent: `sandra-tui serve` on a free loopback port, in a child process
(its media work then runs on the other core, away from the UI's event loop).

The agent must never outlive the client, however the client ends:
- its stdin is a pipe whose write end only we hold: when this process dies (even by SIGKILL)
  the kernel closes it, and `serve` exits on the EOF;
- `serve` also asks for PR_SET_PDEATHSIG (SIGTERM) at start (server/main.py, told by
  AGENT_PARENT_ENV). That signal fires when the *thread* that forked the child ends, so the
  child is forked from one long-lived thread of ours (`_Spawner`), never from the caller's:
  the TUI starts calls on its call thread, and a helper thread may be shorter-lived still;
- a normal interpreter exit (an exception anywhere in start-up included) kills what is left
  (atexit), and `stop()` always reaps, even when cancelled.

`start()` may be awaited by several tasks at once (one agent is started) and may be cancelled
or time out: then the child it spawned is killed and reaped before the error propagates.
`spawn()` forks the agent without waiting for it (the TUI does so first thing, call/early_agent.py,
so the agent's start-up overlaps its own); the next `start()` then waits for that child.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import queue
import shutil
import subprocess
import sys
import logging
import tempfile
import threading
from pathlib import Path

import platformdirs

from sandra_tui.parent import AGENT_PARENT_ENV  # the client's pid: serve follows its parent

log = logging.getLogger("sandra_tui.call")

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 3.0  # SIGTERM, then SIGKILL: serve closes its calls well within this
REAP_TIMEOUT_S = 5.0  # after SIGKILL; only a process stuck in the kernel takes longer

_LIVE: set[subprocess.Popen] = set()  # every agent not reaped yet, for the atexit backstop
_LIVE_LOCK = threading.Lock()


class EmbeddedAgentError(RuntimeError):
    pass


class AgentExited(EmbeddedAgentError):
    """It ended before writing its ready file."""


class _Spawner:
    """One daemon thread, alive as long as the process, that forks every agent (see above)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, function, *args, **kwargs) -> concurrent.futures.Future:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sandra-agent-spawner", daemon=True)
                self._thread.start()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((future, function, args, kwargs))
        return future

    def _run(self) -> None:
        while True:
            future, function, args, kwargs = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(exc)


_SPAWNER = _Spawner()


def _popen(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log, env=env,
                                # its own session: a terminal's hang-up or Ctrl+Z is ours to handle
                                start_new_session=True)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    return proc


def _kill_and_reap(proc: subprocess.Popen) -> None:
    """SIGKILL (if still running) and wait for it: nothing is left when this returns."""
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(REAP_TIMEOUT_S)
    with _LIVE_LOCK:
        _LIVE.discard(proc)


@atexit.register
def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        left = list(_LIVE)
    for proc in left:
        _kill_and_reap(proc)


class EmbeddedAgent:
    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None
        self._extra = list(extra_args or [])
        self._lock: asyncio.Lock | None = None
        self._early: tuple[concurrent.futures.Future, Path] | None = None  # spawn(), not started yet
        self.log_path = Path(platformdirs.user_log_dir("sandra-tui")) / "embedded-agent.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def spawn(self) -> None:
        """Fork the agent now and return at once; `start()` waits for its ready file."""
        if self._early is None and self._proc is None:
            self._early = self._fork()

    async def start(self) -> str:
        """The agent's base URL, starting it if needed. Concurrent callers share one agent."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.url and self.running:
                return self.url
            if self._proc is not None:  # it died since: reap it before starting another
                await self.stop()
            return await self._start()

    def _fork(self) -> tuple[concurrent.futures.Future, Path]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        ready_dir = Path(tempfile.mkdtemp(prefix="sandra-agent-"))
        argv = [sys.executable, "-m", "sandra_tui", "--log-level", "INFO", "serve",
                "--host", "127.0.0.1", "--port", "0", "--ready-file", str(ready_dir / "ready"), *self._extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", AGENT_PARENT_ENV: str(os.getpid())}
        return _SPAWNER.submit(_popen, argv, self.log_path, env), ready_dir

    async def _start(self) -> str:
        early, self._early = self._early, None
        if early is not None:
            try:
                return await self._wait_ready(*early)
            except AgentExited as exc:  # it died before the call wanted it: one more, as after a crash
                log.warning("the early agent failed (%s); starting another", exc)
        return await self._wait_ready(*self._fork())

    async def _wait_ready(self, spawn: concurrent.futures.Future, ready_dir: Path) -> str:
        ready = ready_dir / "ready"
        proc: subprocess.Popen | None = None
        try:
            try:
                proc = await asyncio.wrap_future(spawn)
            except asyncio.CancelledError:
                # Cancelled while the spawner forks (milliseconds): wait for the child, then kill it.
                with contextlib.suppress(Exception):
                    proc = spawn.result(REAP_TIMEOUT_S)
                if proc is None:
                    spawn.add_done_callback(
                        lambda f: None if f.cancelled() or f.exception() else _kill_and_reap(f.result()))
                raise
            self._proc = proc
            loop = asyncio.get_running_loop()
            deadline = loop.time() + START_TIMEOUT_S
            while not (ready.exists() and ready.read_text().strip()):
                if proc.poll() is not None:
                    raise AgentExited(f"the embedded agent exited ({proc.returncode}); see {self.log_path}")
                if self._proc is not proc:
                    raise EmbeddedAgentError("the embedded agent was stopped while starting")
                if loop.time() > deadline:
                    raise EmbeddedAgentError(
                        f"the embedded agent did not start in {START_TIMEOUT_S:g}s; see {self.log_path}")
                await asyncio.sleep(0.02)
            if self._proc is not proc:
                raise EmbeddedAgentError("the embedded agent was stopped while starting")
            self.url = ready.read_text().strip()
            return self.url
        except BaseException:
            # Timed out, failed or cancelled: the child we spawned goes with it, reaped here
            # (a short blocking wait after SIGKILL), so nothing is left when the error propagates.
            if proc is not None:
                if self._proc is proc:
                    self._proc, self.url = None, None
                _kill_and_reap(proc)
            raise
        finally:
            shutil.rmtree(ready_dir, ignore_errors=True)

    async def stop(self) -> None:
        """Stop and reap the agent: EOF and SIGTERM, SIGKILL after STOP_TIMEOUT_S. Safe to call
        twice, concurrently with start() (which then fails), and to cancel (it still reaps)."""
        proc, self._proc, self.url = self._proc, None, None
        early, self._early = self._early, None
        if early is not None:  # spawned, never started: the same stop
            spawn, ready_dir = early
            shutil.rmtree(ready_dir, ignore_errors=True)
            try:
                proc = await asyncio.wrap_future(spawn)
            except asyncio.CancelledError:
                spawn.add_done_callback(
                    lambda f: None if f.cancelled() or f.exception() else _kill_and_reap(f.result()))
                raise
            except Exception:  # noqa: BLE001 - the fork failed: nothing to stop
                proc = None
        if proc is None:
            return
        try:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # EOF: serve shuts down by itself
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            deadline = asyncio.get_running_loop().time() + STOP_TIMEOUT_S
            while proc.poll() is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
        finally:
            _kill_and_reap(proc)

    def kill(self) -> None:
        """Synchronous last resort (signal handlers, atexit): SIGKILL and reap."""
        proc, self._proc, self.url = self._proc, None, None
        early, self._early = self._early, None
        if early is not None:
            spawn, ready_dir = early
            with contextlib.suppress(Exception):
                proc = spawn.result(REAP_TIMEOUT_S)  # forked in milliseconds: wait for it, then kill it
            shutil.rmtree(ready_dir, ignore_errors=True)
        if proc is not None:
            _kill_and_reap(proc)
