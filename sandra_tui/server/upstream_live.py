"""`--upstream openai` with `api = live` (SANDRA_API=live): GPT-Live through the backend.

GPT-Live has no ephemeral client keys, so the backend does the SDP exchange: the caller posts
its offer to our `POST /v1/live/calls` (application/sdp, our short key, as for the Realtime
relay), we send `POST {base}/v1/live/sessions` with the standard key and the session policy
(`{"session": {...}, "transport": {"type": "webrtc", "sdp"}}`) and hand back the answer from
`{"session": {"id"}, "transport": {"sdp"}}` with `Location: /v1/live/calls/{id}.{tag}`. The
tag binds the upstream session id to the caller's session, so any replica can relay the
hang-up (`POST /v1/live/sessions/{id}/hangup`, standard key). With the local upstream the same
route answers with the local agent, which then speaks Live (server/live_dialect.py).

Not built yet: the sideband (`wss://.../v1/live/sessions/{id}/attach`, standard key); the ids
kept in LIVE_SESSIONS are what it would attach to. Upstream errors are mapped as in
upstream_openai.py and never echoed.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import aiohttp
from aiohttp import web

from sandra_tui.wire import live
from sandra_tui.server import hygiene
from sandra_tui.server.errors import json_error
from sandra_tui.server.live_dialect import wire_api
from sandra_tui.server.upstream_openai import UpstreamError, _mapped_errors, _raise_for, hangup_call

log = logging.getLogger("sandra_tui.server")

LIVE_SESSIONS = web.AppKey("live_sessions", OrderedDict)  # upstream session id -> (our session id, created)
MAX_KEPT = 4096


async def create_session(http: aiohttp.ClientSession, base_url: str, api_key: str, body: dict,
                         timeout_s: float = 10.0) -> tuple[str, str]:
    """POST /v1/live/sessions (LiveCreateParams) -> (session id, answer SDP)."""
    async with _mapped_errors():
        async with http.post(f"{base_url}{live.LIVE_SESSIONS_PATH}", json=body,
                             headers={"Authorization": f"Bearer {api_key}"},
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            _raise_for(response, "SDP offer", offer=True)
            try:
                data = await response.json(content_type=None)
            except ValueError:
                data = None
    session = data.get("session") if isinstance(data, dict) else None
    transport = data.get("transport") if isinstance(data, dict) else None
    session_id = session.get("id") if isinstance(session, dict) else None
    answer = transport.get("sdp") if isinstance(transport, dict) else None
    if not isinstance(session_id, str) or not session_id or "/" in session_id or not isinstance(answer, str) \
            or not answer.startswith("v=0") or transport.get("type") != "webrtc":
        raise UpstreamError(502, "the upstream answered without a session id and an SDP answer", "upstream_error")
    return session_id, answer


def _keep(app: web.Application, session_id: str, ours: str) -> None:
    kept = app[LIVE_SESSIONS]
    kept[session_id] = (ours, time.time())
    while len(kept) > MAX_KEPT:  # bounded: sessions whose caller never hung up are forgotten
        kept.popitem(last=False)


async def create_call(request: web.Request) -> web.Response:
    from sandra_tui.server import app as server  # the app module imports this one

    s = request.app[server.SETTINGS]
    if s.upstream != "openai":
        return await server.create_call(request)  # the local agent (it speaks Live: see calls.py)
    if s.openai_mode != "relay":
        return json_error(503, "GPT-Live needs SANDRA_OPENAI_MODE=relay (it has no client keys)",
                          "upstream_not_configured")
    issued = request.app[server.TOKENS].check(hygiene.bearer(request))
    if issued is None:
        return json_error(401, "missing, invalid or expired key", "invalid_api_key")
    if request.content_type != "application/sdp":
        return json_error(415, "Content-Type must be application/sdp", "unsupported_media_type")
    raw = await hygiene.read_body(request, s.max_body_bytes, s.body_timeout_s)
    offer = raw.decode("utf-8", errors="replace")
    if not offer.startswith("v=0"):
        return json_error(400, "the body is not an SDP offer", "invalid_sdp")
    started = time.monotonic()
    body = live.create_body(offer, s.model, s.voice, s.instructions)
    try:
        session_id, answer = await create_session(request.app[server.HTTP], s.openai_base_url, s.openai_api_key,
                                                  body, s.upstream_timeout_s)
    except UpstreamError as exc:
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
        return json_error(exc.status, str(exc), exc.code, headers)
    request.app[server.METRICS].prom.calls.inc()
    _keep(request.app, session_id, issued.session_id)
    call_id = f"{session_id}.{request.app[server.TOKENS].call_tag(session_id, issued.session_id)}"
    log.info("live session %s session %s from %s: relayed to the upstream, answered in %.0f ms", session_id,
             issued.session_id, request.remote or "?", (time.monotonic() - started) * 1000)
    return web.Response(status=201, text=answer, content_type="application/sdp",
                        headers={"Location": f"{live.LIVE_CALLS_PATH}/{call_id}"})


async def hangup(request: web.Request) -> web.Response:
    from sandra_tui.server import app as server

    s, tokens = request.app[server.SETTINGS], request.app[server.TOKENS]
    if s.upstream != "openai":
        return await server.hangup(request)
    session_id, _, tag = request.match_info["call_id"].rpartition(".")
    ours = tokens.session_of(hygiene.bearer(request))  # an expired key still ends its own call
    if not session_id or ours is None or not tokens.call_tag_ok(session_id, ours, tag):
        return json_error(401, "this key did not create that call", "invalid_api_key")
    try:
        await hangup_call(request.app[server.HTTP], s.openai_base_url, s.openai_api_key, session_id,
                          s.upstream_timeout_s, path=live.LIVE_SESSIONS_PATH)
    except UpstreamError as exc:
        return json_error(exc.status, str(exc), exc.code)
    request.app[LIVE_SESSIONS].pop(session_id, None)
    log.info("live session %s session %s: hung up through the upstream", session_id, ours)
    return web.json_response({"id": request.match_info["call_id"], "status": "ended"})


def amend_token_reply(request: web.Request, reply: dict) -> None:
    """A Live dialect is named in the token reply (`"api": "live"`; absent means realtime, so
    the Realtime reply keeps its shape) and the caller posts its offer to our Live route."""
    from sandra_tui.server import app as server

    if wire_api(request.app[server.SETTINGS]) == "live":
        reply["api"] = "live"
        reply["realtime_url"] = str(request.url.origin()) + live.LIVE_CALLS_PATH


def install(app: web.Application) -> None:
    """The Live routes, and the local agent's dialect (calls.CallRegistry.dialect)."""
    from sandra_tui.server import app as server

    app[LIVE_SESSIONS] = OrderedDict()
    app[server.CALLS].dialect = wire_api(app[server.SETTINGS])
    app.router.add_post(live.LIVE_CALLS_PATH, create_call)
    app.router.add_post(live.LIVE_CALLS_PATH + "/{call_id}/hangup", hangup)
