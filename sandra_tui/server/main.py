"""`sandra-tui serve`: run the backend until SIGINT/SIGTERM.

Once listening, the base URL (e.g. `http://127.0.0.1:8750`) is written to --ready-file
(atomically; removed again on exit), so launchers and tests can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

from sandra_tui import secrets
from sandra_tui.heap import freeze_long_lived
from sandra_tui.protocol.loopback import is_loopback_host, pin_host_candidates_to_loopback

log = logging.getLogger("sandra_tui.server")


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
    return s


async def serve(args: argparse.Namespace, started: float) -> int:
    from sandra_tui.server.app import create_app

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
    if is_loopback_host(settings.host):
        pin_host_candidates_to_loopback()  # both ends on this machine: keep ICE on 127.0.0.1
    elif settings.faults:
        print("sandra-tui serve: note: the fault endpoint still answers loopback clients only", file=sys.stderr)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"sandra-tui serve: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 1
    freeze_long_lived()  # the agent's media shares this loop: no 100 ms collector pauses mid-call
    port = site._server.sockets[0].getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{port}"
    ready = Path(args.ready_file) if args.ready_file else None
    if ready is not None:
        tmp = ready.with_name(ready.name + ".tmp")
        tmp.write_text(url + "\n")
        tmp.replace(ready)
    log.warning("serving on %s (upstream %s%s%s) after %.2fs", url, settings.upstream,
                ", faults on" if settings.faults else "",
                ", echo agent" if settings.agent_mode == "echo" else "", time.monotonic() - started)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.warning("shutting down")
    finally:
        await runner.cleanup()
        if ready is not None:
            with contextlib.suppress(OSError):
                if ready.read_text().strip() == url:
                    ready.unlink()
    return 0


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if not 0 <= args.port <= 65535:
        print("sandra-tui serve: --port must be 0-65535", file=sys.stderr)
        return 2
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("sandra_tui.server").setLevel(logging.INFO)  # one line per call and per error
    return asyncio.run(serve(args, started))
