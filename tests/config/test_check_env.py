"""`config check` validates what is in effect: the file and the SANDRA_*/REACT_APP_* environment."""

import json

from sandra_tui.config import load_config
from tests.helpers import run_cli

SECRET = "pw-9c1f-secret"


def findings_of(result) -> list[dict]:
    return json.loads(result.stdout)["findings"]


def test_bad_env_turn_server_fails_the_check(tmp_config):
    r = run_cli("config", "check", env={"SANDRA_TURN_SERVER": "ftp://bad host"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "environment: SANDRA_TURN_SERVER: 'ftp://bad host' is not a valid TURN server" in r.stderr
    assert "OK" not in r.stdout and "defaults apply" not in r.stdout
    r = run_cli("config", "check", "--json", env={"SANDRA_TURN_SERVER": "ftp://bad host"})
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["ok"] is False and data["file_exists"] is False
    assert [(f["source"], f["variable"]) for f in data["findings"]] == [("environment", "SANDRA_TURN_SERVER")]
    assert "'ftp://bad host'" in data["findings"][0]["message"]


def test_bad_credentials_are_named_never_shown(tmp_config):
    env = {"REACT_APP_TURN_SERVER": "turn.example.com", "REACT_APP_TURN_USERNAME": "op\nerator",
           "SANDRA_TURN_PASSWORD": SECRET + "\n"}
    for args in (("config", "check"), ("config", "check", "--json")):
        r = run_cli(*args, env=env)
        assert r.returncode == 1, r.stdout + r.stderr
        out = r.stdout + r.stderr
        assert SECRET not in out and "erator" not in out
    assert {f["variable"] for f in findings_of(r)} == {"REACT_APP_TURN_USERNAME", "SANDRA_TURN_PASSWORD"}
    assert all("control character" in f["message"] for f in findings_of(r))
    # A password without a username: the server cannot authenticate us.
    r = run_cli("config", "check", "--json", env={"SANDRA_TURN_SERVER": "turn.example.com",
                                                   "SANDRA_TURN_PASSWORD": SECRET})
    assert r.returncode == 1 and SECRET not in r.stdout + r.stderr
    (finding,) = findings_of(r)
    assert finding["variable"] == "SANDRA_TURN_PASSWORD" and "without SANDRA_TURN_USERNAME" in finding["message"]


def test_credentials_without_a_server_are_reported(tmp_config):
    r = run_cli("config", "check", env={"REACT_APP_TURN_USERNAME": "op", "REACT_APP_TURN_PASSWORD": SECRET})
    assert r.returncode == 1
    assert "environment: REACT_APP_TURN_PASSWORD: set, but neither SANDRA_TURN_SERVER" in r.stderr
    assert "environment: REACT_APP_TURN_USERNAME:" in r.stderr and SECRET not in r.stderr + r.stdout


def test_file_and_environment_findings_together_text_and_json(tmp_config, tmp_path):
    tmp_config.write_text('[history]\nmax_mesages = 10\n')
    env = {"SANDRA_REALTIME_URL": "ftp://x", "SANDRA_CA_FILE": str(tmp_path / "missing.pem")}
    text = run_cli("config", "check", env=env)
    data = run_cli("config", "check", "--json", env=env)
    assert text.returncode == data.returncode == 1
    findings = findings_of(data)
    assert [(f["source"], f.get("line"), f.get("field") or f.get("variable")) for f in findings] == [
        ("file", 2, "history.max_mesages"), ("environment", None, "SANDRA_REALTIME_URL"),
        ("environment", None, "SANDRA_CA_FILE")]
    lines = text.stderr.strip().splitlines()
    assert lines[0].startswith(f"{tmp_config}:2: history.max_mesages: unknown setting")
    assert lines[1].startswith("environment: SANDRA_REALTIME_URL: 'ftp://x'")
    assert lines[2].startswith(f"environment: SANDRA_CA_FILE: {tmp_path / 'missing.pem'}: cannot load")
    assert lines[3] == "3 problem(s) in the configuration in effect"


def test_valid_env_turn_passes_and_says_where_it_came_from(tmp_config):
    tmp_config.write_text('[reconnect]\nmax_attempts = 3\n')
    r = run_cli("config", "check", env={"SANDRA_TURN_SERVER": "turn.example.com", "SANDRA_TURN_USERNAME": "op",
                                        "SANDRA_TURN_PASSWORD": SECRET})
    assert r.returncode == 0, r.stderr
    assert f"{tmp_config}: OK" in r.stdout
    assert "ice.turn: from the environment (SANDRA_TURN_SERVER): OK" in r.stdout
    assert SECRET not in r.stdout + r.stderr


def test_load_warns_of_the_same_env_problems(tmp_config):
    loaded = load_config(env={"SANDRA_TURN_SERVER": "turn.example.com", "SANDRA_TURN_USERNAME": "op"})
    assert loaded.config.ice.turn[0].url == "turn:turn.example.com:3478"  # still applied, as before
    assert [i.variable for i in loaded.env_issues] == ["SANDRA_TURN_USERNAME"]
    assert loaded.warnings == [str(loaded.env_issues[0])]
