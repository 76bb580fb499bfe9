"""The server's shared request helpers: one bearer parser and one JSON error shape for every route."""

import json

from aiohttp.test_utils import make_mocked_request

from sandra_tui.server.errors import json_error
from sandra_tui.server.hygiene import bearer


def test_bearer_scheme_is_case_insensitive_and_empty_is_none():
    def token(header):
        return bearer(make_mocked_request("GET", "/", headers={"Authorization": header} if header else {}))

    assert token("Bearer ek_1") == token("bearer ek_1") == token("BEARER  ek_1 ") == "ek_1"
    assert token(None) is None and token("Bearer ") is None and token("Basic eA==") is None


def test_json_error_types_as_openai_does():
    def body(status):
        return json.loads(json_error(status, "m", "c").body)["error"]

    assert body(401) == {"message": "m", "type": "invalid_request_error", "code": "c"}
    assert body(429)["type"] == "rate_limit_error" and body(503)["type"] == "server_error"
