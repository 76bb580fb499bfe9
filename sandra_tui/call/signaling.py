"""Signaling with the backend and the realtime endpoint: token, SDP offer/answer, hang-up."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import aiohttp

from sandra_tui import secrets
from sandra_tui.config.model import OPENAI_CALLS_URL

MAX_SDP_BYTES = 64 * 1024
TRANSIENT_4XX = (408, 409, 425)  # timeout, conflict (a call slot still held), too early


class SignalingError(Exception):
    """A failed signaling step. `reason` is the short code shown in logs and reconnect lines."""

    def __init__(self, reason: str, message: str, *, status: int | None = None,
                 retryable: bool = True, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass
class Token:
    value: str = field(repr=False)
    expires_at: float
    realtime_url: str
    model: str = ""
    ice_servers: list[dict] = field(default_factory=list, repr=False)
    session_id: str = ""
    notice: str = ""  # something the backend wants the operator to know (a model near its shutdown)
    api: str = "realtime"  # the dialect on the data channel: realtime | live (GPT-Live, #22: call/live_session.py)


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def _error_from(response: aiohttp.ClientResponse, step: str) -> SignalingError:
    status = response.status
    try:
        body = await response.json(content_type=None)
        detail = body.get("error", {}).get("message") or str(body)[:200]
    except Exception:  # noqa: BLE001 - any garbage body still yields a clear error
        detail = (await response.text(errors="replace"))[:200] if response.content else ""
    detail = secrets.redact(str(detail))
    if status in (401, 403):
        return SignalingError("credentials_rejected", f"{step}: credentials rejected ({status}): {detail}",
                              status=status, retryable=False)
    if status == 429:
        return SignalingError("rate_limited", f"{step}: rate limited (429): {detail}", status=status,
                              retry_after_s=_retry_after(response.headers))
    if status >= 500:
        return SignalingError("server_error", f"{step}: server error ({status}): {detail}", status=status,
                              retry_after_s=_retry_after(response.headers))
    if status in TRANSIENT_4XX:
        return SignalingError("signaling_error", f"{step}: HTTP {status}: {detail}", status=status,
                              retry_after_s=_retry_after(response.headers))
    # 400, 404, 405, 413, 422...: the same request will fail the same way; retrying only delays
    # the operator's answer.
    return SignalingError("signaling_error", f"{step}: the backend refused the request (HTTP {status}): {detail}",
                          status=status, retryable=False)


@contextlib.asynccontextmanager
async def _http_errors(step: str, target: str, timeout_s: float):
    """Transport failures of one signaling step as SignalingErrors: retryable, but for a
    certificate that does not verify (a retry would meet the same certificate)."""
    try:
        yield
    except aiohttp.ClientConnectorCertificateError as exc:
        why = getattr(exc.certificate_error, "verify_message", "") or str(exc.certificate_error)
        raise SignalingError("tls_certificate", f"{step}: the TLS certificate of {target} is not trusted: {why} "
                             f"(a private CA goes in SANDRA_CA_FILE)", retryable=False) from None
    except TimeoutError:
        raise SignalingError("signaling_timeout", f"{step}: no answer from {target} within {timeout_s:g}s") from None
    except aiohttp.ClientError as exc:
        raise SignalingError("backend_unreachable", f"{step}: cannot reach {target}: {exc}") from None


def parse_token(data, token_url: str, backend_cfg) -> Token:
    """A token reply in any of the shapes a backend may give: OpenAI's client_secrets body as is
    (`value`, `expires_at`, `session`), the older `{"client_secret": {"value", "expires_at"}}`,
    or ours (`realtime_url`, `model`, `ice_servers`, `session_id`, `notice`). Raises
    SignalingError (permanent) for anything else."""
    if not isinstance(data, dict):
        raise ValueError("not an object")
    secret = data.get("client_secret") if isinstance(data.get("client_secret"), dict) else data
    value = secret["value"]
    if not isinstance(value, str) or not value:
        raise ValueError("no key")
    session = data.get("session") if isinstance(data.get("session"), dict) else {}
    realtime_url = data.get("realtime_url") or backend_cfg.realtime_url or OPENAI_CALLS_URL
    if not isinstance(realtime_url, str):
        raise ValueError("bad realtime_url")
    ice = data.get("ice_servers") or []
    if not isinstance(ice, list):
        raise ValueError("bad ice_servers")
    return Token(
        value=value,
        expires_at=float(secret.get("expires_at") or time.time() + 60),
        realtime_url=urljoin(token_url, realtime_url),
        model=str(session.get("model") or data.get("model") or backend_cfg.model),
        ice_servers=[s for s in ice if isinstance(s, dict)],
        session_id=str(data.get("session_id") or ""),
        notice=str(data.get("notice") or ""),
        api="live" if data.get("api") == "live" else "realtime",  # GPT-Live (#22): the backend names the dialect
    )


async def fetch_token(http: aiohttp.ClientSession, backend_url: str, backend_cfg, body: dict | None = None,
                      resume_key: str | None = None) -> Token:
    """POST the backend's token endpoint. `body` may carry the call's session id and whether this
    is a reconnection, so the backend can bind the key to the session and count reconnects.
    `resume_key`, the call's previous key, proves the session is ours (the backend gives a
    session only to the key that created it)."""
    url = urljoin(backend_url + "/", backend_cfg.token_path.lstrip("/"))
    timeout_s = backend_cfg.request_timeout_s
    headers = {"Authorization": f"Bearer {resume_key}"} if resume_key else {}
    async with _http_errors("token", backend_url, timeout_s):
        async with http.post(url, json=body or {}, headers=headers,
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status not in (200, 201):
                raise await _error_from(response, "token")
            try:
                token = parse_token(await response.json(content_type=None), url, backend_cfg)
            except (ValueError, KeyError, TypeError, AttributeError):
                raise SignalingError("signaling_error", "token: the backend answered with malformed JSON",
                                     retryable=False) from None
    secrets.register(token.value)
    for server in token.ice_servers:
        secrets.register(server.get("credential"))
    return token


async def exchange_sdp(http: aiohttp.ClientSession, token: Token, offer_sdp: str,
                       timeout_s: float) -> tuple[str, str | None]:
    """POST the offer; return (answer SDP, call URL for hang-up)."""
    headers = {"Authorization": f"Bearer {token.value}", "Content-Type": "application/sdp"}
    async with _http_errors("sdp", "the realtime endpoint", timeout_s):
        async with http.post(token.realtime_url, data=offer_sdp.encode(), headers=headers,
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status not in (200, 201):
                raise await _error_from(response, "sdp")
            body = await response.content.read(MAX_SDP_BYTES + 1)
            location = response.headers.get("Location")
    if len(body) > MAX_SDP_BYTES:
        raise SignalingError("signaling_error", "sdp: the answer is larger than 64 KiB", retryable=False)
    answer = body.decode("utf-8", errors="replace")
    if not answer.startswith("v=0"):
        raise SignalingError("signaling_error", "sdp: the answer is not SDP", retryable=False)
    call_url = urljoin(token.realtime_url, location) if location else None
    return answer, call_url


async def hang_up(http: aiohttp.ClientSession, token: Token, call_url: str | None, timeout_s: float = 2.0) -> None:
    """Best-effort POST {call}/hangup; closing the peer connection ends the call anyway."""
    if not call_url:
        return
    try:
        async with http.post(call_url.rstrip("/") + "/hangup",
                             headers={"Authorization": f"Bearer {token.value}"},
                             timeout=aiohttp.ClientTimeout(total=timeout_s)):
            pass
    except (aiohttp.ClientError, TimeoutError):
        pass


_SESSION_LEVEL = ("a=ice-ufrag:", "a=ice-pwd:", "a=setup:", "a=fingerprint:")


def normalize_answer(sdp: str) -> str:
    """Copy ICE/DTLS attributes from the first m-section into those that lack them.

    Answers shaped like OpenAI's documentation carry ice-ufrag/pwd/setup only in the first
    (BUNDLE) section; aiortc wants them in every section.
    """
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.strip().split(newline)
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    session, media = sections[0], sections[1:]
    if len(media) < 1:
        return sdp
    source = {prefix: next((l for l in media[0] + session if l.startswith(prefix)), None) for prefix in _SESSION_LEVEL}
    for section in media[1:]:
        for prefix, line in source.items():
            if line and not any(l.startswith(prefix) for l in section):
                section.append(line)
    out = session + [l for section in media for l in section]
    return newline.join(out) + newline


def has_end_of_candidates(sdp: str) -> bool:
    return re.search(r"^a=end-of-candidates", sdp, re.MULTILINE) is not None
