"""`sandra-tui serve`: run the backend until SIGINT/SIGTERM.

Once listening, the base URL (e.g. `http://127.0.0.1:8750`) is written to --ready-file
(atomically; removed again on exit), so launchers and tests can wait for it.

Started as the TUI's embedded agent (SANDRA_AGENT_PARENT holds the client's pid, see
call/embedded.py), it also follows its parent: PR_SET_PDEATHSIG delivers SIGTERM when the
parent goes, and the end of stdin (a pipe only the parent writes to) is a stop as well; SIGHUP
too. Every stop closes the open calls and exits 0 within SHUTDOWN_S (ORPHAN_SHUTDOWN_S once the
client is gone; `ParentWatch` sees that on a thread of its own, whatever the loop is doing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import select
import signal
import stat
import sys
import threading
import time
from pathlib import Path

from aiohttp import web

from sandra_tui import secrets
from sandra_tui.heap import freeze_long_lived
from sandra_tui.media.loopback import is_loopback_host
from sandra_tui.parent import AGENT_PARENT_ENV, die_with_parent

log = logging.getLogger("sandra_tui.server")

CLEANUP_S = 5.0  # closing the calls (each a peer connection close and a log line)
SHUTDOWN_S = 8.0  # from the stop to the exit, whatever hangs: the process ends by then
# An embedded agent whose client died has no one left to close calls for (its store commits
# each write): it ends within the 2 s even on a starved CPU (at load average 10-18
# the graceful close took over 2 s for 5 of 5 agents of a SIGKILLed TUI).
ORPHAN_SHUTDOWN_S = 1.0
STDIN_CLOSED = "stdin closed"
PARENT_GONE = "parent gone"


def follow_parent(env=os.environ) -> bool:
    """As an embedded agent, die with the parent. Returns whether we have one."""
    parent = env.pop(AGENT_PARENT_ENV, None)  # not inherited further
    if not parent:
        return False
    die_with_parent(parent)  # again: main() did it already when run through the CLI
    return True


class ParentWatch:
    """An embedded agent's watch on its client, on a thread of its own, not on the loop.

    The loop may be held for a second or more on a loaded machine (a call's media, the GC,
    the warm-up's imports contending for the GIL), and a stop it only sees then let an agent
    outlive its SIGKILLed client by over 2 s (test_exits, 1 in 20 under stress-ng). So the
    thread notices the end by itself: EOF (or an error) on stdin, the pipe only the client
    writes to, or a new parent (the kernel reparents us before PR_SET_PDEATHSIG's SIGTERM).
    It then starts the exit deadline at once and tells the loop (`stop`) to close the calls.
    """

    POLL_S = 0.05  # how often getppid() is read while stdin stays quiet

    def __init__(self, loop: asyncio.AbstractEventLoop, stop, on_orphan, parent: int, fd: int | None = None) -> None:
        self.loop, self.stop, self.on_orphan, self.parent = loop, stop, on_orphan, parent
        self.fd = fd if fd is not None else (sys.stdin.fileno() if sys.stdin is not None else -1)
        self._done = threading.Event()
        self.watching_stdin = self._pollable()
        self.thread = threading.Thread(target=self._run, name="parent-watch", daemon=True)

    def _pollable(self) -> bool:
        # A pipe or a socket only: a file or /dev/null reads as EOF at once (PDEATHSIG only then).
        try:
            mode = os.fstat(self.fd).st_mode
        except (OSError, ValueError):
            return False
        return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)

    def start(self) -> "ParentWatch":
        self.thread.start()
        return self

    def close(self) -> None:
        self._done.set()

    def _ended(self, poller) -> str | None:
        if os.getppid() != self.parent:
            return PARENT_GONE
        if poller is None or not poller.poll(0):
            return None
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        return None if data else STDIN_CLOSED

    def _run(self) -> None:
        poller = None
        if self.watching_stdin:
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            with contextlib.suppress(OSError):
                os.set_blocking(self.fd, False)
        while not self._done.wait(self.POLL_S):
            reason = self._ended(poller)
            if reason is None:
                continue
            self.on_orphan()  # the deadline runs from now, whatever the loop is doing
            with contextlib.suppress(RuntimeError):  # the loop is closed: we are exiting anyway
                self.loop.call_soon_threadsafe(self.stop, reason)
            return


def _exit_deadline(seconds: float, before_exit=lambda: None) -> None:
    """Whatever the shutdown is stuck on, the process ends `seconds` from now, with 0
    (`before_exit` first: it removes the ready file). Of several deadlines the first to fall wins."""
    def force() -> None:
        log.error("shutdown took over %.1fs; exiting now", seconds)
        with contextlib.suppress(Exception):
            before_exit()
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


def settings_from_args(args: argparse.Namespace, env=None):
    from sandra_tui.server.settings import ServerSettings

    s = ServerSettings.from_env(env, host=args.host, port=args.port, upstream=args.upstream, faults=args.faults)
    if getattr(args, "agent_mode", None):
        s.agent_mode = args.agent_mode
    if getattr(args, "turn_url", None):
        s.turn_urls = [u.strip() for u in args.turn_url if u.strip()]
    if getattr(args, "turn_ttl", None) is not None:
        s.turn_ttl_s = args.turn_ttl
    if getattr(args, "token_ttl", None) is not None:
        s.token_ttl_s = args.token_ttl
    if getattr(args, "max_calls_per_client", None) is not None:
        s.max_calls_per_client = max(1, args.max_calls_per_client)
    if getattr(args, "session_max_s", None) is not None:
        s.session_max_s = args.session_max_s
    s.dialect = getattr(args, "dialect", None) or s.dialect  # GPT-Live (#22): serve --dialect
    return s


async def serve(args: argparse.Namespace, started: float, embedded: bool = False) -> int:
    from sandra_tui.server.app import CALLS, create_app
    from sandra_tui.server.hygiene import start_site

    # Stops are taken from the first moment: a SIGTERM during start-up still ends in a clean exit 0.
    stopped = asyncio.Event()
    why: list[str] = []
    loop = asyncio.get_running_loop()
    parent = os.getppid()

    ready_holder: list[tuple[Path, str]] = []  # (ready file, url) once written

    def remove_ready() -> None:
        for path, url in ready_holder:
            with contextlib.suppress(OSError):
                if path.read_text().strip() == url:
                    path.unlink()

    def orphaned_now() -> None:
        _exit_deadline(ORPHAN_SHUTDOWN_S, remove_ready)

    def stop(reason: str) -> None:
        if not why:
            why.append(reason)
            # The end of stdin counts as the client gone even while getppid() still names it: the
            # kernel closes a dying process's files before it reparents its children, so a SIGKILLed
            # client's EOF often arrives first (2 of 4 headless SIGKILLs in CI under stress-ng then
            # took the 8 s deadline). A client stopping us on purpose closes stdin too and waits.
            orphaned = embedded and (os.getppid() != parent or reason in (STDIN_CLOSED, PARENT_GONE))
            if orphaned:
                orphaned_now()
            else:
                _exit_deadline(SHUTDOWN_S, remove_ready)
        stopped.set()

    for sig in (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if embedded else ()):
        loop.add_signal_handler(sig, stop, signal.Signals(sig).name)
    watch = None
    if embedded:
        watch = ParentWatch(loop, stop, orphaned_now, parent).start()
        if not watch.watching_stdin:
            log.warning("stdin cannot be watched; relying on the parent-death signal")
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"sandra-tui serve: bad setting in the environment: {exc}", file=sys.stderr)
        return 2
    secrets.register(settings.openai_api_key)
    secrets.register(settings.turn_secret)
    problems = settings.problems()
    if problems:
        for problem in problems:
            print(f"sandra-tui serve: {problem}", file=sys.stderr)
        return 2
    if not is_loopback_host(settings.host) and settings.faults:
        print("sandra-tui serve: note: the fault endpoint still answers loopback clients only", file=sys.stderr)
    app = create_app(settings)
    try:
        # The connection guard (per-address cap, header and body timeouts) sits on the server.
        runner, _site = await start_site(app, settings.host, settings.port, access_log=None, handle_signals=False)
    except OSError as exc:
        print(f"sandra-tui serve: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 1
    freeze_long_lived()  # the agent's media shares this loop: no 100 ms collector pauses mid-call
    port = runner.addresses[0][1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{port}"
    ready = Path(args.ready_file) if args.ready_file else None
    if ready is not None:
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text(url + "\n")
        tmp.replace(ready)
        ready_holder.append((ready, url))
    log.warning("serving on %s (upstream %s%s%s) after %.2fs", url, settings.upstream,
                ", faults on" if settings.faults else "",
                ", echo agent" if settings.agent_mode == "echo" else "", time.monotonic() - started)
    if settings.upstream == "local" and not why:
        # On a thread: imports on the loop (1-3 s on a loaded machine) held back the stop
        # handlers, and an orphaned agent outlived its client by that long (test_exits).
        threading.Thread(target=_warm, args=(started,), name="warm-up", daemon=True).start()
    try:
        await stopped.wait()
        log.warning("shutting down (%s), closing %d call(s)", why[0] if why else "?", len(app[CALLS].calls))
    finally:
        try:
            async with asyncio.timeout(CLEANUP_S):  # not wait_for: 3.11's can swallow a cancel
                await runner.cleanup()
        except TimeoutError:
            log.error("closing the calls took over %.0fs; exiting anyway", CLEANUP_S)
        remove_ready()
        if watch is not None:
            watch.close()
    return 0


def _warm(started: float) -> None:
    """The local agent's call stack and speech model, after the ready file (issue #23): the
    client's own start-up overlaps this; a request meanwhile waits for it (calls.warm)."""
    from sandra_tui.server.calls import warm

    try:
        warm()
    except Exception:  # noqa: BLE001 - the first call then loads it and reports what fails
        log.exception("warming up the call stack failed")
    log.info("call stack and speech model loaded after %.2fs", time.monotonic() - started)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    embedded = follow_parent()
    if not 0 <= args.port <= 65535:
        print("sandra-tui serve: --port must be 0-65535", file=sys.stderr)
        return 2
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("sandra_tui.server").setLevel(logging.INFO)  # one line per call and per error
    return asyncio.run(serve(args, started, embedded))
