"""`--upstream openai`: mint client keys with the server's own API key (which never leaves).

The key goes only into the Authorization header of `POST {base}/v1/realtime/client_secrets`.
Upstream answers are mapped to errors of our own and never echoed, since an upstream error
body may quote the request.

| upstream                     | our answer                                  |
|------------------------------|---------------------------------------------|
| 200 with a string `value`    | 200 token JSON (realtime_url at OpenAI)     |
| 401 / 403                    | 502 upstream_auth (the server's key is bad) |
| 429 (+ Retry-After)          | 429 rate_limit_exceeded (+ Retry-After)     |
| 5xx, other 4xx, no `value`   | 502 upstream_error (+ Retry-After if given) |
| unreachable                  | 502 upstream_unreachable                    |
| no answer within the timeout | 504 upstream_timeout                        |
"""

from __future__ import annotations

import aiohttp

from sandra_tui import secrets as masking
from sandra_tui.protocol.realtime import CLIENT_SECRETS_PATH


class UpstreamError(Exception):
    def __init__(self, status: int, message: str, code: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


def _retry_after(response: aiohttp.ClientResponse) -> str | None:
    value = response.headers.get("Retry-After", "")
    return value if value.isdigit() else None


async def mint_client_secret(http: aiohttp.ClientSession, base_url: str, api_key: str, model: str, voice: str,
                             ttl_s: int, instructions: str = "", timeout_s: float = 10.0) -> dict:
    """POST /v1/realtime/client_secrets -> {"value", "expires_at", "session"}."""
    body = {
        "expires_after": {"anchor": "created_at", "seconds": max(10, min(7200, ttl_s))},
        "session": {"type": "realtime", "model": model, "audio": {"output": {"voice": voice}}},
    }
    if instructions:
        body["session"]["instructions"] = instructions
    try:
        async with http.post(f"{base_url}{CLIENT_SECRETS_PATH}", json=body,
                             headers={"Authorization": f"Bearer {api_key}"},
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            status = response.status
            if status in (401, 403):
                raise UpstreamError(502, "the upstream rejected the server's API key", "upstream_auth")
            if status == 429:
                raise UpstreamError(429, "the upstream is rate limiting", "rate_limit_exceeded", _retry_after(response))
            if status >= 400:
                raise UpstreamError(502, f"the upstream refused or failed the request ({status})", "upstream_error",
                                    _retry_after(response))
            try:
                data = await response.json(content_type=None)
            except ValueError:
                data = None
    except aiohttp.ClientError as exc:
        raise UpstreamError(502, f"cannot reach the upstream: {type(exc).__name__}", "upstream_unreachable") from None
    except TimeoutError:
        raise UpstreamError(504, "the upstream did not answer in time", "upstream_timeout") from None
    if not isinstance(data, dict) or not isinstance(data.get("value"), str) or not data["value"]:
        raise UpstreamError(502, "the upstream answered without a key", "upstream_error")
    masking.register(data["value"])
    return data
