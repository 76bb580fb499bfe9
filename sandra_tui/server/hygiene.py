"""Connection hygiene of `sandra-tui serve`: header and body timeouts, a cap on open
connections per address, accept errors logged at most once a minute per kind, bodies read
whole, JSON with depth and size limits.

What aiohttp 3.14 offers and is used here:
- `keepalive_timeout` (a RequestHandler option, passed with `web.Application(handler_args=)`)
  also runs from the moment a connection opens, and data arriving does not reset it: a
  connection without a complete request head by then is closed. That is our header timeout
  (and the idle time allowed between two requests on a kept-alive connection).
- `lingering_time`: how long a body left unread after an error reply is drained (default 10 s).
- `web.Server.connection_made/connection_lost` (every RequestHandler reports to its Server):
  ConnectionGuard counts open connections per peer there and aborts those over the cap. It is
  installed on the runner's server (`runner.server`, after `runner.setup()`): see
  `start_site()`.
aiohttp has no body read timeout: `read_body()` reads under `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
from collections.abc import Sequence

from aiohttp import web

from sandra_tui.wire.realtime import error_body
from sandra_tui.server import proxies
from sandra_tui.server.errors import Throttle

log = logging.getLogger("sandra_tui.server")
MAX_JSON_DEPTH = 32
ACCEPT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def handler_args(header_timeout_s: float) -> dict:
    return {"keepalive_timeout": header_timeout_s, "lingering_time": 2.0, "max_headers": 64}


class RateLimitedLog:
    """One line per kind per interval; the lines held back are counted in the next one."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0, clock=time.monotonic) -> None:
        self.log, self.interval_s = logger, interval_s
        self._throttle = Throttle(interval_s, clock)
        self.total: dict[str, int] = {}

    def note(self, kind: str, detail: str = "") -> None:
        self.total[kind] = self.total.get(kind, 0) + 1
        held = self._throttle.admit(kind)
        if held is None:
            return
        self.log.warning("%s%s%s", kind, f": {detail}" if detail else "",
                         f" (+{held} more in the last {self.interval_s:.0f} s)" if held else "")


class ConnectionGuard:
    """At most `max_per_address` open connections per peer address (trusted proxies exempt:
    they carry everyone's)."""

    def __init__(self, max_per_address: int, events: RateLimitedLog,
                 exempt: Sequence[proxies.Network] = ()) -> None:
        self.max_per_address = max_per_address
        self.events = events
        self.exempt = exempt
        self.open: dict[str, int] = {}
        self._peer: dict[object, str] = {}  # handler -> its counted address
        self.refused = 0

    def install(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler, transport) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            addr = peer[0] if isinstance(peer, (tuple, list)) and peer else "?"
            if proxies.trusted(addr, self.exempt):
                return
            if self.open.get(addr, 0) >= self.max_per_address:
                self.refused += 1
                self.events.note("connections refused over the per-address cap",
                                 f"{addr} has {self.max_per_address} open")
                transport.abort()
                return
            self.open[addr] = self.open.get(addr, 0) + 1
            self._peer[handler] = addr

        def connection_lost(handler, exc=None) -> None:
            addr = self._peer.pop(handler, None)
            if addr is not None:
                left = self.open.get(addr, 1) - 1
                if left > 0:
                    self.open[addr] = left
                else:
                    self.open.pop(addr, None)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]


def loop_error_handler(events: RateLimitedLog, previous=None):
    """The event loop's exception handler: accept() out of file descriptors (asyncio logs a
    traceback each time, tens of thousands a minute under a flood) becomes one line per
    minute with a count; everything else goes to the previous handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        message = context.get("message", "")
        if "accept" in message or (isinstance(exc, OSError) and exc.errno in ACCEPT_ERRNOS):
            kind = f"accept failed: {type(exc).__name__}" + (f" ({errno.errorcode.get(exc.errno, exc.errno)})"
                                                            if isinstance(exc, OSError) and exc.errno else "")
            events.note(kind, str(exc)[:120] if exc else message)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    return handle


def _error(status: int, message: str, code: str) -> web.HTTPException:
    cls = {400: web.HTTPBadRequest, 408: web.HTTPRequestTimeout, 413: web.HTTPRequestEntityTooLarge}[status]
    kwargs = {"max_size": 0, "actual_size": 0} if status == 413 else {}
    return cls(**kwargs, text=json.dumps(error_body(message, code)), content_type="application/json")


def bearer(request: web.BaseRequest) -> str | None:
    """The token of an `Authorization: Bearer ...` header (the scheme is case-insensitive,
    RFC 7235 section 2.1), or None."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


async def read_body(request: web.BaseRequest, limit: int, timeout_s: float) -> bytes:
    """The whole body (plain or chunked) however it was segmented, up to `limit` bytes
    (413 beyond), within `timeout_s` (408: a client trickling its body)."""
    if request.content_length is not None and request.content_length > limit:
        raise _error(413, f"body larger than {limit} bytes", "payload_too_large")
    buf = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                buf += chunk
                if len(buf) > limit:
                    raise _error(413, f"body larger than {limit} bytes", "payload_too_large")
    except TimeoutError:
        raise _error(408, f"the body did not arrive within {timeout_s:g} s", "body_timeout") from None
    return bytes(buf)


def json_depth_ok(value, max_depth: int = MAX_JSON_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def loads(raw: bytes, max_depth: int = MAX_JSON_DEPTH):
    """JSON or ValueError (never RecursionError): nesting beyond `max_depth` is refused."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    if not json_depth_ok(data, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth}")
    return data


async def start_site(app: web.Application, host: str, port: int, **runner_kwargs) -> tuple[web.AppRunner, web.TCPSite]:
    """AppRunner + TCPSite with the app's ConnectionGuard on the server (see app.GUARD)."""
    from sandra_tui.server.app import GUARD

    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    if GUARD in app:
        app[GUARD].install(runner.server)
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site
