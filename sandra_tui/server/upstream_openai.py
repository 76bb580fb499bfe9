"""`--upstream openai`: mint client keys with the server's own API key (which never leaves)."""

from __future__ import annotations

import aiohttp

from sandra_tui import secrets as masking


class UpstreamError(Exception):
    def __init__(self, status: int, message: str, code: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


async def mint_client_secret(http: aiohttp.ClientSession, base_url: str, api_key: str, model: str, voice: str,
                             ttl_s: int, instructions: str = "") -> dict:
    """POST /v1/realtime/client_secrets -> {"value", "expires_at", "session"}."""
    body = {
        "expires_after": {"anchor": "created_at", "seconds": max(10, min(7200, ttl_s))},
        "session": {"type": "realtime", "model": model, "audio": {"output": {"voice": voice}}},
    }
    if instructions:
        body["session"]["instructions"] = instructions
    try:
        async with http.post(f"{base_url}/v1/realtime/client_secrets", json=body,
                             headers={"Authorization": f"Bearer {api_key}"},
                             timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status >= 400:
                # Map upstream errors without echoing anything that might contain the key.
                if response.status in (401, 403):
                    raise UpstreamError(502, "the upstream rejected the server's API key", "upstream_auth")
                if response.status == 429:
                    raise UpstreamError(429, "the upstream is rate limiting", "rate_limited",
                                        response.headers.get("Retry-After"))
                if response.status >= 500:
                    raise UpstreamError(502, f"the upstream failed ({response.status})", "upstream_error")
                raise UpstreamError(502, f"the upstream refused the request ({response.status})", "upstream_error")
            data = await response.json(content_type=None)
    except aiohttp.ClientError as exc:
        raise UpstreamError(502, f"cannot reach the upstream: {type(exc).__name__}", "upstream_unreachable") from None
    except TimeoutError:
        raise UpstreamError(504, "the upstream did not answer in time", "upstream_timeout") from None
    if not isinstance(data, dict) or not isinstance(data.get("value"), str):
        raise UpstreamError(502, "the upstream answered without a key", "upstream_error")
    masking.register(data["value"])
    return data
