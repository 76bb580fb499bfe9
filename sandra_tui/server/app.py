"""The `sandra-tui serve` application: `create_app(settings) -> web.Application`.

Routes (shapes in sandra_tui/wire/realtime.py)
- POST /api/sandra/token -> {"value", "expires_at", "realtime_url", "model", "ice_servers", "session_id"}
  (+ "notice" when the model is near or past its shutdown date)
  Body (optional JSON): {"session_id": "<the client's call id>", "reconnect": bool}. A session
  belongs to whoever first named it: to resume one, send its previous key (`Authorization:
  Bearer`, accepted within the metrics grace period); otherwise the reply names a new session
  (see _session_for). The key is short-lived; `realtime_url` is where the client posts its SDP offer with `Authorization:
  Bearer <value>`. `ice_servers` holds TURN REST credentials when SANDRA_TURN_SECRET is set,
  and is [] otherwise. Per client address: at most `tokens_per_min_per_client` keys a minute.
- POST /v1/realtime/calls: Bearer key, application/sdp offer in, 201 + answer SDP +
  `Location: /v1/realtime/calls/{call_id}` out. Local agent: at most `max_calls_per_client` calls
  at once, and one live call per key (409 for a second offer with the same key). `--upstream openai` (relay): the offer goes to OpenAI with the server's key and the
  session policy; the call id is OpenAI's plus a tag binding it to the caller's session, so any
  replica can relay the hang-up.
- POST /v1/realtime/calls/{call_id}/hangup (same key), POST /v1/realtime/client_secrets (a local
  mirror of OpenAI's key minting; loopback only).
- /api/sandra/metrics, /metrics, /healthz: see metrics/api.py.
- /_faults (GET, POST, DELETE): only with --faults and only from loopback; see faults.py.
  With --faults and SANDRA_TEST_PAGES=<dir>, GET /_test/{name} serves that dir's files (a
  same-origin page for browser tests).

Every error is `{"error": {"message", "type", "code"}}`; bodies over 64 KiB get 413, JSON
nested deeper than 32 levels 400, a body not complete within --body-timeout 408. Connection
hygiene (header timeout, per-address connection cap, accept errors): server/hygiene.py. Behind
a reverse proxy, SANDRA_TRUSTED_PROXIES says whose X-Forwarded-For / Forwarded to believe
(server/proxies.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import time

import aiohttp
from aiohttp import web

from sandra_tui import secrets
from sandra_tui.media.loopback import is_loopback_host
from sandra_tui.wire.realtime import CALLS_PATH, CLIENT_SECRETS_PATH, FAULTS_PATH, TOKEN_PATH
from sandra_tui.server import hygiene, ops, proxies
from sandra_tui.server.calls import CallError, CallRegistry
from sandra_tui.server.errors import ErrorLog, json_error, json_errors
from sandra_tui.server.faults import Faults
from sandra_tui.server.metrics.api import MetricsApi, MetricsSettings, Prom
from sandra_tui.server.metrics.ratelimit import SlidingWindowLimiter
from sandra_tui.server.metrics.storage import open_storage
from sandra_tui.server.settings import ServerSettings
from sandra_tui.server import upstream_openai as upstream
from sandra_tui.server import upstream_live  # GPT-Live (#22)
from sandra_tui.server.tokens import SESSION_ID, TokenStore, load_or_create_secret
from sandra_tui.server.upstream_openai import UpstreamError, mint_client_secret

log = logging.getLogger("sandra_tui.server")
OPENAI_CALLS_URL = CALLS_PATH

SETTINGS = web.AppKey("settings", ServerSettings)
FAULTS = web.AppKey("faults", Faults)
CALLS = web.AppKey("calls", CallRegistry)
TOKENS = web.AppKey("tokens", TokenStore)
METRICS = web.AppKey("metrics", MetricsApi)
TOKEN_LIMITER = web.AppKey("token_limiter", SlidingWindowLimiter)
HTTP = web.AppKey("http", aiohttp.ClientSession)
MODEL_STATUS = web.AppKey("model_status", dict)  # {"id", "shutdown_date", "notice"}
GUARD = web.AppKey("connection_guard", hygiene.ConnectionGuard)
EVENTS = web.AppKey("events", hygiene.RateLimitedLog)  # accept errors, refused connections


def _is_loopback(request: web.Request) -> bool:
    """The real client is on this machine (not a remote client through a local proxy)."""
    return proxies.is_local(request, request.app[SETTINGS].trusted_proxies)


def _bad_json(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                                         "code": "invalid_json"}}),
                              content_type="application/json")


async def _json_body(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    s = request.app[SETTINGS]
    raw = await hygiene.read_body(request, s.max_body_bytes, s.body_timeout_s)
    if not raw.strip():
        return {}
    try:
        data = hygiene.loads(raw)
    except ValueError as exc:
        raise _bad_json(f"invalid JSON body: {str(exc)[:100]}") from None
    if not isinstance(data, dict):
        raise _bad_json("the body must be a JSON object")
    return data


async def _session_for(request: web.Request, wanted: str | None) -> str | None:
    """The session this token request may have: `wanted` when the caller proves it (a key of
    that session, expired or not, within the grace period), or when nobody named it before
    (claimed in storage, so replicas sharing PostgreSQL agree); None means a new session."""
    if wanted is None or not SESSION_ID.match(wanted):
        return None
    proof = request.app[TOKENS].session_of(hygiene.bearer(request))
    if proof is not None and hmac.compare_digest(proof.encode(), wanted.encode()):
        return wanted
    if not wanted.startswith("sess_"):  # ids we named are only ever resumed with their key
        try:
            if await request.app[METRICS].storage.claim_session(wanted):
                return wanted
        except Exception as exc:  # noqa: BLE001 - without storage, no claim: a new session
            log.warning("could not record session %s: %s", wanted, exc)
            return None
    log.info("token request from %s for session %s without its key: a new session", request.remote, wanted)
    return None


async def token(request: web.Request) -> web.Response:
    s, faults, tokens = request.app[SETTINGS], request.app[FAULTS], request.app[TOKENS]
    wait = request.app[TOKEN_LIMITER].check(request.remote or "?")
    if wait is not None:
        return json_error(429, "too many token requests from this address", "rate_limit_exceeded",
                          {"Retry-After": str(int(wait) + 1)})
    if faults.token_status:
        status = faults.token_status
        headers = {"Retry-After": str(int(faults.retry_after_s))} if status in (429, 503) else None
        code = {401: "invalid_api_key", 403: "forbidden", 429: "rate_limit_exceeded"}.get(status, "injected_fault")
        return json_error(status, f"injected fault: the token endpoint answers {status}", code, headers)
    body = await _json_body(request)
    wanted = body.get("session_id") if isinstance(body.get("session_id"), str) else None
    wanted = await _session_for(request, wanted)
    reconnect = body.get("reconnect") is True
    if s.upstream == "openai" and s.openai_mode == "mint":
        if not s.openai_api_key:
            return json_error(503, "the server has no OPENAI_API_KEY", "upstream_not_configured")
        try:
            data = await mint_client_secret(request.app[HTTP], s.openai_base_url, s.openai_api_key, s.model,
                                            s.voice, s.token_ttl_s, timeout_s=s.upstream_timeout_s)
        except UpstreamError as exc:
            headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
            return json_error(exc.status, str(exc), exc.code, headers)
        value = data["value"]
        expires_at = data.get("expires_at")
        if not isinstance(expires_at, (int, float)) or isinstance(expires_at, bool):
            expires_at = time.time() + s.token_ttl_s
        _, issued = tokens.mint(wanted, reconnect)  # a session id of our own, for metrics
        tokens.remember(value, issued.session_id, float(expires_at))
        realtime_url = s.openai_base_url + OPENAI_CALLS_URL
    else:  # the local agent, or the relay: our own key, our own /v1/realtime/calls
        value, issued = tokens.mint(wanted, reconnect)
        expires_at = issued.expires_at
        realtime_url = str(request.url.origin()) + CALLS_PATH
    if reconnect:
        request.app[METRICS].prom.reconnects.inc()
    reply = {"value": value, "expires_at": int(expires_at), "realtime_url": realtime_url,
             "model": s.model, "ice_servers": s.ice_servers(issued.session_id), "session_id": issued.session_id}
    notice = request.app[MODEL_STATUS].get("notice")
    if notice:
        reply["notice"] = notice
    upstream_live.amend_token_reply(request, reply)  # GPT-Live (#22): the reply names the dialect ("api")
    return web.json_response(reply)


async def create_call(request: web.Request) -> web.Response:
    tokens, calls, faults = request.app[TOKENS], request.app[CALLS], request.app[FAULTS]
    key = hygiene.bearer(request)
    issued = tokens.check(key)
    if issued is None:
        return json_error(401, "missing, invalid or expired key", "invalid_api_key")
    if request.content_type != "application/sdp":
        return json_error(415, "Content-Type must be application/sdp", "unsupported_media_type")
    s = request.app[SETTINGS]
    raw = await hygiene.read_body(request, s.max_body_bytes, s.body_timeout_s)
    try:
        offer = raw.decode("utf-8")
    except UnicodeDecodeError:
        return json_error(400, "the SDP offer is not UTF-8", "invalid_sdp")
    if not offer.startswith("v=0"):
        return json_error(400, "the body is not an SDP offer", "invalid_sdp")
    if _relaying(request.app[SETTINGS]):
        return await _relay_call(request, offer, issued.session_id)
    if faults.answer_delay_ms:
        await asyncio.sleep(faults.answer_delay_ms / 1000)
    try:
        call_id, answer = await calls.answer(offer, key, request.remote or "?", issued.session_id)
    except CallError as exc:
        return json_error(exc.status, str(exc), exc.code)
    return web.Response(status=201, text=answer, content_type="application/sdp",
                        headers={"Location": f"{CALLS_PATH}/{call_id}"})


def _relaying(s: ServerSettings) -> bool:
    return s.upstream == "openai" and s.openai_mode == "relay"


async def _relay_call(request: web.Request, offer: str, session_id: str) -> web.Response:
    """The unified interface: the offer goes to OpenAI with the server's key; media then flows
    between the caller and OpenAI directly."""
    s, tokens = request.app[SETTINGS], request.app[TOKENS]
    started = time.monotonic()
    try:
        upstream_id, answer = await upstream.create_call(request.app[HTTP], s.openai_base_url, s.openai_api_key,
                                                         offer, s.session_policy(), s.upstream_timeout_s)
    except UpstreamError as exc:
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
        return json_error(exc.status, str(exc), exc.code, headers)
    request.app[METRICS].prom.calls.inc()
    call_id = f"{upstream_id}.{tokens.call_tag(upstream_id, session_id)}"
    log.info("call %s session %s from %s: relayed to the upstream, answered in %.0f ms", upstream_id,
             session_id, request.remote or "?", (time.monotonic() - started) * 1000)
    return web.Response(status=201, text=answer, content_type="application/sdp",
                        headers={"Location": f"{CALLS_PATH}/{call_id}"})


async def _relay_hangup(request: web.Request) -> web.Response:
    s, tokens = request.app[SETTINGS], request.app[TOKENS]
    upstream_id, _, tag = request.match_info["call_id"].rpartition(".")
    session_id = tokens.session_of(hygiene.bearer(request))  # an expired key still ends its own call
    if not upstream_id or session_id is None or not tokens.call_tag_ok(upstream_id, session_id, tag):
        return json_error(401, "this key did not create that call", "invalid_api_key")
    try:
        await upstream.hangup_call(request.app[HTTP], s.openai_base_url, s.openai_api_key, upstream_id,
                                   s.upstream_timeout_s)
    except UpstreamError as exc:
        return json_error(exc.status, str(exc), exc.code)
    log.info("call %s session %s: hung up through the upstream", upstream_id, session_id)
    return web.json_response({"id": request.match_info["call_id"], "status": "ended"})


async def hangup(request: web.Request) -> web.Response:
    if _relaying(request.app[SETTINGS]):
        return await _relay_hangup(request)
    calls = request.app[CALLS]
    call = calls.calls.get(request.match_info["call_id"])
    if call is None:
        return json_error(404, "no such call", "call_not_found")
    if not hmac.compare_digest((hygiene.bearer(request) or "").encode(), call.key.encode()):
        return json_error(401, "this key did not create that call", "invalid_api_key")
    call.hung_up = True
    await calls.end(call.id, reason="hangup")
    return web.json_response({"id": call.id, "status": "ended"})


async def client_secrets(request: web.Request) -> web.Response:
    """Local mirror of OpenAI's key minting, for scripts that follow the OpenAI flow."""
    if not _is_loopback(request):
        return json_error(403, "only from loopback", "forbidden")
    body = await _json_body(request)
    ttl = request.app[SETTINGS].token_ttl_s
    expires = body.get("expires_after")
    if expires is not None:
        seconds = expires.get("seconds") if isinstance(expires, dict) else None
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 10 <= seconds <= 7200:
            return json_error(400, "expires_after.seconds must be an integer from 10 to 7200", "invalid_value")
        ttl = seconds
    session = body.get("session", {"type": "realtime"})
    if not isinstance(session, dict):
        return json_error(400, "session must be an object", "invalid_type")
    value, issued = request.app[TOKENS].mint(ttl_s=ttl)
    session = {"type": "realtime", "model": request.app[SETTINGS].model, **session}
    return web.json_response({"value": value, "expires_at": int(issued.expires_at), "session": session})


async def faults_get(request: web.Request) -> web.Response:
    if not _is_loopback(request):
        return json_error(403, "the fault endpoint answers loopback only", "forbidden")
    calls = request.app[CALLS]
    mirror = {cid: list(call.agent.track.mirror_trace) for cid, call in calls.calls.items()
              if call.agent.track.mirror_trace}
    return web.json_response({"faults": request.app[FAULTS].to_dict(), "calls": sorted(calls.calls),
                              "mirror_trace": mirror})


async def faults_post(request: web.Request) -> web.Response:
    if not _is_loopback(request):
        return json_error(403, "the fault endpoint answers loopback only", "forbidden")
    body = await _json_body(request)
    calls, faults = request.app[CALLS], request.app[FAULTS]
    action = body.pop("action", None)
    call_id = body.pop("call_id", None)
    if action not in (None, "close_pc", "close_dc"):
        return json_error(400, "action must be close_pc or close_dc", "invalid_fault")
    if call_id is not None and call_id not in calls.calls:
        return json_error(404, "no such call", "call_not_found")
    errors = faults.update(body)
    if errors:
        return json_error(400, "; ".join(errors), "invalid_fault")
    affected = 0
    if action == "close_pc":
        affected = await calls.close_pc(call_id)
    elif action == "close_dc":
        affected = calls.close_dc(call_id)
    if body or action:
        log.warning("faults now %s%s", faults.active() or "off",
                    f"; {action} on {affected} call(s)" if action else "")
    return web.json_response({"faults": faults.to_dict(), "affected": affected})


async def faults_delete(request: web.Request) -> web.Response:
    if not _is_loopback(request):
        return json_error(403, "the fault endpoint answers loopback only", "forbidden")
    faults = request.app[FAULTS]
    faults.reset(agent_mode=request.app[SETTINGS].agent_mode)
    log.warning("faults off")
    return web.json_response({"faults": faults.to_dict()})


async def _check_model(app: web.Application) -> None:
    """The model's shutdown date, read once at start: a warning for the operator when near."""
    s = app[SETTINGS]
    shutdown = await upstream.model_shutdown_date(app[HTTP], s.openai_base_url, s.openai_api_key, s.model,
                                                  timeout_s=min(5.0, s.upstream_timeout_s))
    notice = upstream.shutdown_notice(s.model, shutdown, dt.date.today(), s.model_notice_days)
    app[MODEL_STATUS].update(shutdown_date=shutdown.isoformat() if shutdown else None, notice=notice)
    if notice:
        log.warning("%s", notice)


@web.middleware
async def _health_model(request: web.Request, handler):
    """/healthz (metrics/api.py) also tells the model and its shutdown notice."""
    response = await handler(request)
    if request.path != "/healthz" or not isinstance(response, web.Response) or response.content_type != \
            "application/json":
        return response
    try:
        body = json.loads(response.body)
    except (TypeError, ValueError):
        return response
    status = request.app[MODEL_STATUS]
    body["model"] = status["id"]
    for key in ("shutdown_date", "notice"):
        if status.get(key):
            body[key] = status[key]
    return web.json_response(body, status=response.status)


def create_app(settings: ServerSettings | None = None) -> web.Application:
    s = settings or ServerSettings()
    secrets.register(s.openai_api_key)  # masked in every log line, should one ever carry it
    secrets.register(s.turn_secret)
    app = web.Application(client_max_size=s.max_body_bytes, handler_args=hygiene.handler_args(s.header_timeout_s),
                          middlewares=[proxies.middleware(s.trusted_proxies), json_errors(ErrorLog(log)),
                                       _health_model])
    app[EVENTS] = hygiene.RateLimitedLog(log)
    app[GUARD] = hygiene.ConnectionGuard(s.max_connections_per_address, app[EVENTS], exempt=s.trusted_proxies)
    app[SETTINGS] = s
    app[FAULTS] = Faults(agent_mode=s.agent_mode)
    secret = s.secret or load_or_create_secret(s.data_dir)
    app[TOKENS] = TokenStore(s.token_ttl_s, s.metrics_token_grace_s, secret=secret, previous=s.secret_previous)
    app[MODEL_STATUS] = {"id": s.model}
    prom = Prom()
    app[CALLS] = CallRegistry(app[FAULTS], s.model, s.voice, s.max_calls_per_client, s.idle_call_timeout_s,
                              on_call=prom.calls.inc, on_drop=prom.drops.inc, max_calls=s.max_calls,
                              connect_timeout_s=s.connect_timeout_s, session_max_s=s.session_max_s,
                              loopback_only=is_loopback_host(s.host), replica_id=s.replica_id)
    prom.active_calls.set_function(lambda: len(app[CALLS].calls))
    app[TOKEN_LIMITER] = SlidingWindowLimiter(s.tokens_per_min_per_client)
    storage = open_storage(s.database_url, s.data_dir / "metrics.db")
    metrics = MetricsApi(storage, app[TOKENS].session_of,
                         MetricsSettings(per_client_per_min=s.metrics_per_client_per_min,
                                         global_per_min=s.metrics_global_per_min,
                                         cors_origins=s.cors_origins, admin_token=s.metrics_admin_token,
                                         body_timeout_s=s.body_timeout_s), prom)
    app[METRICS] = metrics
    metrics.install(app)
    # Shared rate limits and call caps across replicas (PostgreSQL), HTTP status and storage metrics.
    ops.install(app, s, prom=prom, calls=app[CALLS], check_key=app[TOKENS].check, storage=storage)
    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post(CALLS_PATH, create_call)
    app.router.add_post(CALLS_PATH + "/{call_id}/hangup", hangup)
    app.router.add_post(CLIENT_SECRETS_PATH, client_secrets)
    upstream_live.install(app)  # GPT-Live (#22): /v1/live/calls and the local agent's dialect
    if s.faults:
        app.router.add_get(FAULTS_PATH, faults_get)
        app.router.add_post(FAULTS_PATH, faults_post)
        app.router.add_delete(FAULTS_PATH, faults_delete)
        if s.test_pages is not None:
            app.router.add_static("/_test", s.test_pages)

    loop_handler = {}

    async def startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        loop_handler["previous"] = loop.get_exception_handler()
        loop.set_exception_handler(hygiene.loop_error_handler(app[EVENTS], loop_handler["previous"]))
        app[HTTP] = aiohttp.ClientSession()
        app[CALLS].start_reaper()
        if s.upstream == "openai" and s.openai_api_key:
            await _check_model(app)

    async def cleanup(app: web.Application) -> None:
        await app[CALLS].close()
        await app[HTTP].close()
        if "previous" in loop_handler:
            asyncio.get_running_loop().set_exception_handler(loop_handler.pop("previous"))

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app
