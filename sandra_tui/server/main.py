"""`sandra-tui serve`: run the backend until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

from sandra_tui import secrets
from sandra_tui.protocol.loopback import is_loopback_host, pin_host_candidates_to_loopback

log = logging.getLogger("sandra_tui.server")


async def serve(args: argparse.Namespace, started: float) -> int:
    from sandra_tui.server.app import create_app
    from sandra_tui.server.settings import ServerSettings

    settings = ServerSettings.from_env(host=args.host, port=args.port, upstream=args.upstream, faults=args.faults)
    secrets.register(settings.openai_api_key)
    secrets.register(settings.turn_secret)
    if settings.upstream == "openai" and not settings.openai_api_key:
        print("sandra-tui serve: --upstream openai needs OPENAI_API_KEY in the environment", file=sys.stderr)
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
    port = site._server.sockets[0].getsockname()[1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{port}"
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.write_text(url + "\n")
        tmp.replace(args.ready_file)
    log.warning("serving on %s (upstream %s%s) after %.2fs", url, settings.upstream,
                ", faults on" if settings.faults else "", time.monotonic() - started)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.warning("shutting down")
    await runner.cleanup()
    return 0


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if not 0 <= args.port <= 65535:
        print("sandra-tui serve: --port must be 0-65535", file=sys.stderr)
        return 2
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("sandra_tui.server").setLevel(logging.INFO)  # one line per call and per error
    return asyncio.run(serve(args, started))
