"""OpenAI-shaped JSON errors, for every status the server returns."""

from __future__ import annotations

from aiohttp import web

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
         404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
         415: "invalid_request_error", 429: "rate_limit_error"}


def json_error(status: int, message: str, code: str, headers: dict | None = None) -> web.Response:
    body = {"error": {"message": message, "type": TYPES.get(status, "server_error"), "code": code}}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler):
    """aiohttp's own 404/405/413 pages become JSON errors too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "http_error")
        return json_error(exc.status, exc.reason or "error", code, headers={
            k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")})
