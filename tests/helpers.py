"""Small helpers shared by the tests: an aiohttp app on a free loopback port, stopping a child,
running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

from aiohttp import web


async def serve_app(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def serve_routes(*routes: tuple[str, str, object]) -> tuple[web.AppRunner, str]:
    """serve_routes(("POST", "/path", handler), ...)"""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return await serve_app(app)


def stop_process(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m sandra_tui ARGS` in a child with this environment plus `env`."""
    return subprocess.run([sys.executable, "-m", "sandra_tui", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)
