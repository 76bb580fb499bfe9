"""serve's environment through pydantic-settings (server/env.py): defaults, empty = unset, lists,
and errors that name the variable without its value."""

import pytest

from sandra_tui.server.settings import ServerSettings

SECRETISH = "sk-proj-DoNotPrintMe-0123456789"


def test_nothing_set_gives_the_defaults():
    assert ServerSettings.from_env({}) == ServerSettings()


def test_values_are_parsed_and_empty_means_unset(tmp_path):
    session = tmp_path / "session.json"
    session.write_text('{"tools": [{"name": "x"}]}')
    s = ServerSettings.from_env({
        "SANDRA_TURN_URLS": "", "SANDRA_TURN_URL": "turn:a:3478, ,stun:b",  # the old name still works
        "SANDRA_CORS_ORIGINS": "https://a.example/, https://b.example", "SANDRA_MODEL": "  ",
        "SANDRA_VOICE": " cedar ", "SANDRA_OPENAI_MODE": " MINT ", "SANDRA_API": "Live",
        "SANDRA_BODY_TIMEOUT_S": "2.5", "SANDRA_METRICS_RATE_PER_MIN": "50", "SANDRA_DATA_DIR": str(tmp_path),
        "SANDRA_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "SANDRA_REPLICA_ID": "r2",
        "SANDRA_SESSION_FILE": str(session), "SANDRA_SECRET": "s" * 20, "SANDRA_DATABASE_URL": "",
    }, port=0)
    assert s.turn_urls == ["turn:a:3478", "stun:b"]
    assert s.cors_origins == {"https://a.example", "https://b.example"}
    assert s.model == ServerSettings().model and s.voice == "cedar"
    assert (s.openai_mode, s.api, s.replica_id, s.port) == ("mint", "live", "r2", 0)
    assert s.body_timeout_s == 2.5 and s.metrics_per_client_per_min == 50 and s.data_dir == tmp_path
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert s.session_extra == {"tools": [{"name": "x"}]} and s.secret == "s" * 20 and s.database_url is None


@pytest.mark.parametrize("name, message", [
    ("SANDRA_TURN_TTL", "SANDRA_TURN_TTL must be a whole number"),
    ("SANDRA_HEADER_TIMEOUT_S", "SANDRA_HEADER_TIMEOUT_S must be a number"),
    ("SANDRA_MAX_CONNECTIONS_PER_ADDRESS", "SANDRA_MAX_CONNECTIONS_PER_ADDRESS must be a whole number"),
    ("SANDRA_REPLICA_ID", "SANDRA_REPLICA_ID must be 1-16 lowercase letters or digits"),
    ("SANDRA_TRUSTED_PROXIES", "SANDRA_TRUSTED_PROXIES: not an address or CIDR"),
])
def test_a_bad_value_is_named_and_a_secret_one_is_not_printed(name, message):
    with pytest.raises(ValueError) as caught:
        ServerSettings.from_env({name: SECRETISH, "OPENAI_API_KEY": SECRETISH + "x"})
    text = str(caught.value)
    assert message in text
    if name != "SANDRA_REPLICA_ID" and name != "SANDRA_TRUSTED_PROXIES":  # those two quote a prefix, as before
        assert "DoNotPrintMe" not in text and "input" not in text


def test_every_problem_is_listed_at_once():
    with pytest.raises(ValueError) as caught:
        ServerSettings.from_env({"SANDRA_TURN_TTL": "x", "SANDRA_TOKEN_TTL": "y"})
    assert "SANDRA_TURN_TTL" in str(caught.value) and "SANDRA_TOKEN_TTL" in str(caught.value)


def test_a_bad_session_file_is_named(tmp_path):
    (tmp_path / "s.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="SANDRA_SESSION_FILE must hold a JSON object"):
        ServerSettings.from_env({"SANDRA_SESSION_FILE": str(tmp_path / "s.json")})
    with pytest.raises(ValueError, match="SANDRA_SESSION_FILE"):
        ServerSettings.from_env({"SANDRA_SESSION_FILE": str(tmp_path / "missing.json")})
