"""OpenAI-shaped JSON errors for every status the server returns, and one log line per error."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from sandra_tui.wire.realtime import error_body

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
         404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
         415: "invalid_request_error", 429: "rate_limit_error"}
CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def json_error(status: int, message: str, code: str, headers: dict | None = None) -> web.Response:
    return web.json_response(error_body(message, code, TYPES.get(status, "server_error")), status=status,
                             headers=headers)


class Throttle:
    """One event per key per interval goes through; the ones held back meanwhile are counted."""

    def __init__(self, interval_s: float, clock=time.monotonic) -> None:
        self.interval_s, self.clock = interval_s, clock
        self._last: dict = {}
        self._held: dict = {}

    def admit(self, key) -> int | None:
        """None: hold this one back; otherwise how many were held back since the last one."""
        now = self.clock()
        if now - self._last.get(key, -1e18) < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class ErrorLog:
    """One line per error response; a burst of the same error (a 429 storm) is summarised
    at most once a second per route and status, with the number of lines held back."""

    def __init__(self, log: logging.Logger, interval_s: float = 1.0) -> None:
        self.log = log
        self.interval_s = interval_s
        self._throttle = Throttle(interval_s)

    def __call__(self, request: web.Request, response: web.StreamResponse) -> None:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
        held = self._throttle.admit((request.method, route, response.status))
        if held is None:
            return
        code = ""
        body = getattr(response, "body", None)
        if isinstance(body, bytes | bytearray) and body[:1] == b"{":
            try:
                code = json.loads(body)["error"]["code"] or ""
            except (ValueError, KeyError, TypeError):
                code = ""
        self.log.warning("%s %s from %s -> %d %s%s", request.method, request.path, request.remote,
                         response.status, code, f" (+{held} like it)" if held else "")


def json_errors(error_log: ErrorLog | None = None):
    """Middleware: aiohttp's own 404/405/413 pages become JSON errors too; unexpected
    exceptions become a JSON 500; every error response is logged (see ErrorLog)."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.content_type == "application/json":
                response = web.Response(status=exc.status, text=exc.text, content_type="application/json",
                                        headers={k: v for k, v in exc.headers.items()
                                                 if k.lower() in ("allow", "retry-after")})
            else:
                response = json_error(exc.status, exc.reason or "error", CODES.get(exc.status, "http_error"),
                                      headers={k: v for k, v in exc.headers.items()
                                               if k.lower() in ("allow", "retry-after")})
        except Exception:
            if error_log is not None:
                error_log.log.exception("%s %s: unexpected error", request.method, request.path)
            response = json_error(500, "internal error", "server_error")
        if response.status >= 400 and error_log is not None:
            error_log(request, response)
        return response

    return middleware
