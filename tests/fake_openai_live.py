"""A fake of OpenAI's GPT-Live HTTP endpoints, written from the openai SDK (resources/live/live.py
`create`, resources/live/sessions.py `hangup`; types/live/live_create_params.py,
live_create_response.py), not from our server.

- POST /v1/live/sessions (standard key, JSON LiveCreateParams: `session` with a `model`, and
  `transport` {"type": "webrtc", "sdp"}) -> 200 LiveCreateResponse {"session": {"id": "live_..."},
  "transport": {"type": "webrtc", "sdp": <answer>}}. The body must validate against the SDK's
  TypedDicts; anything else is OpenAI's 400 error JSON.
- POST /v1/live/sessions/{id}/hangup (standard key) -> 200, 404 for an unknown session.

A wrong or missing key gets 401. The media side is our local agent speaking the Live dialect
(server/live_dialect.py): OpenAI's media is not what is under test here, the HTTP contract is.
"""

from __future__ import annotations

import secrets

from aiohttp import web
from pydantic import ValidationError

from sandra_tui.server.calls import CallError, CallRegistry
from sandra_tui.server.faults import Faults
from tests.fake_openai import STANDARD_KEY, FakeEndpoints, openai_error, reference_layout
from tests.live import schema
from tests.live.schema import validate_create_request


class FakeOpenAILive(FakeEndpoints):
    def __init__(self, api_key: str = STANDARD_KEY) -> None:
        super().__init__(CallRegistry(Faults(agent_mode="reply"), "gpt-live-1", "marin", max_per_client=64))
        schema.warm()  # not inside the first request, on the loop the client under test shares
        self.api_key = api_key
        self.sessions: dict[str, str] = {}  # live session id -> our registry's call id
        self.configs: dict[str, dict] = {}  # live session id -> the session config it was created with
        self.calls.dialect = "live"  # the agent behind the fake speaks Live on its data channel

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/live/sessions", self.create)
        app.router.add_post("/v1/live/sessions/{session_id}/hangup", self.hangup)

    def _key_ok(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    async def create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self._record(request, body=body if isinstance(body, dict) else {})
        if not self._key_ok(request):
            return openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(body, dict):
            return openai_error(400, "We could not parse the JSON body of your request.", None)
        unknown = set(body) - {"session", "transport"}
        if unknown:
            return openai_error(400, f"Unknown parameter: '{sorted(unknown)[0]}'.", "unknown_parameter",
                                sorted(unknown)[0])
        try:
            validate_create_request(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            return openai_error(400, f"Invalid request: {first['msg']}", "invalid_value",
                                ".".join(str(p) for p in first["loc"]))
        try:
            call_id, answer = await self.calls.answer(body["transport"]["sdp"], secrets.token_hex(8), "relay")
        except CallError as exc:
            return openai_error(exc.status, str(exc), exc.code)
        session_id = f"live_{secrets.token_hex(12)}"
        self.sessions[session_id] = call_id
        self.configs[session_id] = body["session"]
        return web.json_response({"session": {"id": session_id},
                                  "transport": {"type": "webrtc", "sdp": reference_layout(answer)}})

    async def hangup(self, request: web.Request) -> web.Response:
        self._record(request)
        if not self._key_ok(request):
            return openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        session_id = request.match_info["session_id"]
        call_id = self.sessions.pop(session_id, None)
        if call_id is None:
            return openai_error(404, f"Live session '{session_id}' not found.", "session_not_found")
        self.hangups.append(session_id)
        await self.calls.end(call_id, reason="hangup")
        return web.Response(status=200)
