"""`--upstream openai`: the server's own API key (which never leaves) talks to OpenAI.

- relay (default): the caller's SDP offer goes to `POST {base}/v1/realtime/calls` as multipart
  `sdp` + `session` (the SDK's `realtime.calls.create`), the answer comes back; hang-up is
  `POST {base}/v1/realtime/calls/{id}/hangup`.
- mint: `POST {base}/v1/realtime/client_secrets` gives the caller an OpenAI `ek_` key.
- at start: `GET {base}/v1/models/{model}` for its `shutdown_date`.

The key goes only into Authorization headers. Upstream answers are mapped to errors of our
own and never echoed, since an upstream error body may quote the request.

| upstream                     | our answer                                  |
|------------------------------|---------------------------------------------|
| 2xx with what we asked for   | the token JSON / 201 answer SDP             |
| 401 / 403                    | 502 upstream_auth (the server's key is bad) |
| 400 / 422 on an SDP offer    | 400 upstream_invalid_request (the offer)    |
| 429 (+ Retry-After)          | 429 rate_limit_exceeded (+ Retry-After)     |
| 5xx, other 4xx, bad body     | 502 upstream_error (+ Retry-After if given) |
| unreachable                  | 502 upstream_unreachable                    |
| no answer within the timeout | 504 upstream_timeout                        |
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging

import aiohttp

from sandra_tui.wire.realtime import CALLS_PATH, CLIENT_SECRETS_PATH, MODELS_PATH

log = logging.getLogger("sandra_tui.server")


class UpstreamError(Exception):
    def __init__(self, status: int, message: str, code: str, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after = status, code, retry_after


def _retry_after(response: aiohttp.ClientResponse) -> str | None:
    value = response.headers.get("Retry-After", "")
    return value if value.isdigit() else None


def _raise_for(response: aiohttp.ClientResponse, what: str, offer: bool = False) -> None:
    status = response.status
    if status in (401, 403):
        raise UpstreamError(502, "the upstream rejected the server's API key", "upstream_auth")
    if status == 429:
        raise UpstreamError(429, "the upstream is rate limiting", "rate_limit_exceeded", _retry_after(response))
    if offer and status in (400, 422):
        raise UpstreamError(400, f"the upstream refused the {what} ({status})", "upstream_invalid_request")
    if status >= 400:
        raise UpstreamError(502, f"the upstream refused or failed the {what} ({status})", "upstream_error",
                            _retry_after(response))


@contextlib.asynccontextmanager
async def _mapped_errors():
    try:
        yield
    except aiohttp.ClientError as exc:
        raise UpstreamError(502, f"cannot reach the upstream: {type(exc).__name__}", "upstream_unreachable") from None
    except TimeoutError:
        raise UpstreamError(504, "the upstream did not answer in time", "upstream_timeout") from None


async def mint_client_secret(http: aiohttp.ClientSession, base_url: str, api_key: str, model: str, voice: str,
                             ttl_s: int, instructions: str = "", timeout_s: float = 10.0) -> dict:
    """POST /v1/realtime/client_secrets -> {"value", "expires_at", "session"}."""
    body = {
        "expires_after": {"anchor": "created_at", "seconds": max(10, min(7200, ttl_s))},
        "session": {"type": "realtime", "model": model, "audio": {"output": {"voice": voice}}},
    }
    if instructions:
        body["session"]["instructions"] = instructions
    async with _mapped_errors():
        async with http.post(f"{base_url}{CLIENT_SECRETS_PATH}", json=body,
                             headers={"Authorization": f"Bearer {api_key}"},
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            _raise_for(response, "request")
            try:
                data = await response.json(content_type=None)
            except ValueError:
                data = None
    if isinstance(data, dict) and isinstance(data.get("client_secret"), dict):
        data = {**data, **data["client_secret"]}  # the older beta shape: {"client_secret": {"value", ...}}
    if not isinstance(data, dict) or not isinstance(data.get("value"), str) or not data["value"]:
        raise UpstreamError(502, "the upstream answered without a key", "upstream_error")
    return data


async def create_call(http: aiohttp.ClientSession, base_url: str, api_key: str, offer_sdp: str, session: dict,
                      timeout_s: float = 10.0) -> tuple[str, str]:
    """The "unified interface": POST /v1/realtime/calls, multipart sdp + session -> (call id, answer)."""
    form = aiohttp.FormData()
    form.add_field("sdp", offer_sdp, content_type="application/sdp")
    form.add_field("session", json.dumps(session), content_type="application/json")
    async with _mapped_errors():
        async with http.post(f"{base_url}{CALLS_PATH}", data=form,
                             headers={"Authorization": f"Bearer {api_key}", "Accept": "application/sdp"},
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            _raise_for(response, "SDP offer", offer=True)
            answer = await response.text()
            location = response.headers.get("Location", "")
    call_id = location.rstrip("/").rsplit("/", 1)[-1]
    if not answer.startswith("v=0") or not location.startswith(CALLS_PATH + "/") or not call_id:
        raise UpstreamError(502, "the upstream answered without an SDP answer and a call id", "upstream_error")
    return call_id, answer


async def hangup_call(http: aiohttp.ClientSession, base_url: str, api_key: str, call_id: str,
                      timeout_s: float = 10.0, path: str = CALLS_PATH) -> None:
    """POST {path}/{id}/hangup (Realtime calls, or GPT-Live sessions); one already gone upstream
    (404) counts as hung up."""
    async with _mapped_errors():
        async with http.post(f"{base_url}{path}/{call_id}/hangup",
                             headers={"Authorization": f"Bearer {api_key}"},
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 404:
                _raise_for(response, "hang-up")


async def model_shutdown_date(http: aiohttp.ClientSession, base_url: str, api_key: str, model: str,
                              timeout_s: float = 10.0) -> dt.date | None:
    """The model's `shutdown_date`, or None when unknown (no date, no such route, any failure)."""
    try:
        async with _mapped_errors():
            async with http.get(f"{base_url}{MODELS_PATH}/{model}", headers={"Authorization": f"Bearer {api_key}"},
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                if response.status != 200:
                    log.info("model %s: GET %s answered %d; no shutdown date known", model, MODELS_PATH,
                             response.status)
                    return None
                data = await response.json(content_type=None)
    except (UpstreamError, ValueError) as exc:
        log.info("model %s: no shutdown date known (%s)", model, exc)
        return None
    value = data.get("shutdown_date") if isinstance(data, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def shutdown_notice(model: str, shutdown: dt.date | None, today: dt.date, days: int = 30) -> str | None:
    """A line for the operator when the model shuts down within `days` or already has."""
    if shutdown is None:
        return None
    left = (shutdown - today).days
    if left < 0:
        return f"model {model} was shut down on {shutdown.isoformat()}; set SANDRA_MODEL to its replacement"
    if left <= days:
        return (f"model {model} shuts down on {shutdown.isoformat()} (in {left} days); "
                f"set SANDRA_MODEL to its replacement")
    return None
