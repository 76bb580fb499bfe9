"""A fake of OpenAI's Realtime HTTP endpoints, written from the API reference and the openai SDK
(resources/realtime/calls.py, client_secrets.py; types/model.py), not from our server.

- POST /v1/realtime/client_secrets (standard key) -> {"value": "ek_...", "expires_at", "session"};
  `secret_shape = "beta"` answers the older {"client_secret": {"value", "expires_at"}, ...} instead.
- POST /v1/realtime/calls: a raw `application/sdp` body (ephemeral or standard key: the SDK sends
  the raw form when only `sdp` is given), or `multipart/form-data` with parts `sdp`
  (application/sdp) and `session` (application/json) with the standard key (the "unified
  interface"). 201, the answer in the layout of OpenAI's docs (ICE and DTLS attributes in the
  first m-section only, no a=end-of-candidates), `Location: /v1/realtime/calls/rtc_...`.
- POST /v1/realtime/calls/{call_id}/hangup (standard key).
- GET /v1/models/{model} (standard key) -> {"id", "object": "model", "created", "owned_by", "shutdown_date"}.

A wrong or missing key gets 401 with OpenAI's error JSON. The media side is our local agent's
engine (an aiortc peer): OpenAI's media is not what is under test here, the HTTP contract is.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web
from openai.types.realtime import RealtimeSessionCreateRequest  # imported up front: ~1 s the first time
from pydantic import ValidationError

from sandra_tui.server.calls import CallError, CallRegistry, docs_shaped
from sandra_tui.server.faults import Faults
from tests.helpers import serve_app

STANDARD_KEY = "sk-proj-FAKE-standard-key-0123456789abcdef"


def openai_error(status: int, message: str, code: str | None, param: str | None = None,
                 type_: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": type_, "param": param, "code": code}},
                             status=status)


def reference_layout(sdp: str) -> str:
    """As the answer printed in OpenAI's WebRTC docs: session attributes once, no end-of-candidates."""
    return re.sub(r"^a=end-of-candidates\r?\n", "", docs_shaped(sdp), flags=re.MULTILINE)


@dataclass
class Seen:
    method: str
    path: str
    auth: str
    content_type: str
    parts: dict = field(default_factory=dict)  # multipart: name -> (content type, text)
    body: dict = field(default_factory=dict)  # a JSON body


class FakeEndpoints:
    """What the fakes share: the requests seen, the local agent's calls behind them, the server."""

    def __init__(self, calls: CallRegistry) -> None:
        self.seen: list[Seen] = []
        self.hangups: list[str] = []
        self.calls = calls
        self.runner: web.AppRunner | None = None
        self.url = ""

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self):
        app = web.Application()
        self.add_routes(app)
        self.runner, self.url = await serve_app(app)
        self.calls.start_reaper()
        return self

    async def stop(self) -> None:
        await self.calls.close()
        if self.runner is not None:
            await self.runner.cleanup()

    def _record(self, request: web.Request, parts: dict | None = None, body: dict | None = None) -> None:
        self.seen.append(Seen(request.method, request.path, request.headers.get("Authorization", ""),
                              request.content_type, parts or {}, body or {}))


class FakeOpenAI(FakeEndpoints):
    def __init__(self, api_key: str = STANDARD_KEY, agent_mode: str = "mirror") -> None:
        self.faults = Faults(agent_mode=agent_mode)
        super().__init__(CallRegistry(self.faults, "gpt-realtime-2.1", "marin", max_per_client=64))
        self.api_key = api_key
        self.secret_shape = "ga"  # or "beta"
        self.models: dict[str, str | None] = {}  # model id -> shutdown_date (YYYY-MM-DD) or None
        self.ephemeral: dict[str, float] = {}  # ek_ value -> expires_at
        self.answer_ms: list[float] = []  # how long the fake's own peer took to answer each offer
        self.frames_at_hangup: dict[str, int] = {}  # call id -> caller audio frames decoded by then
        self.sessions: dict[str, dict] = {}  # call id -> the session config it was created with

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/realtime/client_secrets", self.client_secrets)
        app.router.add_post("/v1/realtime/calls", self.create_call)
        app.router.add_post("/v1/realtime/calls/{call_id}/hangup", self.hangup)
        app.router.add_get("/v1/models/{model}", self.model)

    # -- auth ------------------------------------------------------------------------------------
    def _key(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        return header[7:] if header.startswith("Bearer ") else ""

    def _unauthorized(self, key: str) -> web.Response:
        if not key:
            return openai_error(401, "You didn't provide an API key. You need to provide your API key in an "
                                     "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                                None)
        shown = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "****"
        return openai_error(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                 "https://platform.openai.com/account/api-keys.", "invalid_api_key")

    def _ephemeral_ok(self, key: str) -> bool:
        return self.ephemeral.get(key, 0) > time.time()

    # -- routes ----------------------------------------------------------------------------------
    async def client_secrets(self, request: web.Request) -> web.Response:
        self._record(request)
        key = self._key(request)
        if key != self.api_key:
            return self._unauthorized(key)
        try:
            body = await request.json()
        except ValueError:
            return openai_error(400, "We could not parse the JSON body of your request.", None)
        seconds = (body.get("expires_after") or {}).get("seconds", 600)
        if not isinstance(seconds, int) or not 10 <= seconds <= 7200:
            return openai_error(400, "Invalid 'expires_after.seconds'.", "invalid_value", "expires_after.seconds")
        value = "ek_" + secrets.token_hex(16)
        expires_at = int(time.time()) + seconds
        self.ephemeral[value] = expires_at
        session = {"type": "realtime", "object": "realtime.session", "id": "sess_" + secrets.token_hex(8),
                   "model": "gpt-realtime", **(body.get("session") or {})}
        if self.secret_shape == "beta":
            return web.json_response({**session, "client_secret": {"value": value, "expires_at": expires_at}})
        return web.json_response({"value": value, "expires_at": expires_at, "session": session})

    async def create_call(self, request: web.Request) -> web.Response:
        key = self._key(request)
        session: dict = {}
        if request.content_type == "multipart/form-data":
            parts = {}
            async for part in await request.multipart():
                parts[part.name] = (part.headers.get("Content-Type", ""), await part.text())
            self._record(request, parts)
            if key != self.api_key:  # the unified interface is for the application's server
                return self._unauthorized(key)
            if "sdp" not in parts:
                return openai_error(400, "Missing required parameter: 'sdp'.", "missing_required_parameter", "sdp")
            offer = parts["sdp"][1]
            if "session" in parts:
                try:
                    session = json.loads(parts["session"][1])
                except ValueError:
                    return openai_error(400, "Invalid 'session': not JSON.", "invalid_value", "session")
                problem = _session_problem(session)
                if problem:
                    return openai_error(400, problem, "invalid_value", "session")
        elif request.content_type == "application/sdp":
            self._record(request)
            if key != self.api_key and not self._ephemeral_ok(key):
                return self._unauthorized(key)
            offer = await request.text()
        else:
            self._record(request)
            return openai_error(400, "Unsupported content type.", "unsupported_content_type")
        started = time.monotonic()
        try:
            call_id, answer = await self.calls.answer(offer, key, request.remote or "?")
        except CallError:
            return openai_error(400, "Invalid SDP offer.", "invalid_offer", "sdp")
        self.answer_ms.append((time.monotonic() - started) * 1000)
        self.sessions[call_id] = session
        agent = self.calls.calls[call_id].agent
        for name in ("instructions", "tools"):
            if name in session:
                agent.session[name] = session[name]
        voice = session.get("audio", {}).get("output", {}).get("voice")
        if voice:
            agent.session["audio"]["output"]["voice"] = voice
        return web.Response(status=201, text=reference_layout(answer), content_type="application/sdp",
                            headers={"Location": f"/v1/realtime/calls/{call_id}"})

    async def hangup(self, request: web.Request) -> web.Response:
        self._record(request)
        key = self._key(request)
        if key != self.api_key:
            return self._unauthorized(key)
        call_id = request.match_info["call_id"]
        if call_id not in self.calls.calls:
            return openai_error(404, f"Call '{call_id}' not found.", "not_found")
        self.hangups.append(call_id)
        self.frames_at_hangup[call_id] = self.calls.calls[call_id].agent.frames_in
        await self.calls.end(call_id, reason="hangup")
        return web.Response(status=200)

    async def model(self, request: web.Request) -> web.Response:
        self._record(request)
        key = self._key(request)
        if key != self.api_key:
            return self._unauthorized(key)
        model = request.match_info["model"]
        if model not in self.models:
            return openai_error(404, f"The model '{model}' does not exist or you do not have access to it.",
                                "model_not_found", "model")
        return web.json_response({"id": model, "object": "model", "created": 1756339200, "owned_by": "system",
                                  "shutdown_date": self.models[model]})


def _session_problem(session) -> str | None:
    """The session part, checked against the SDK's own request model."""
    if not isinstance(session, dict) or session.get("type") != "realtime":
        return "Invalid 'session.type': expected 'realtime'."
    try:
        RealtimeSessionCreateRequest.model_validate(session)
    except ValidationError as exc:
        return f"Invalid 'session': {exc.errors()[0]['loc']}"
    return None
