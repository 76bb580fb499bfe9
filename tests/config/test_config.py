"""Config model, file round trip, env overrides, quarantine, CLI, secrets."""

import json
import logging
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandra_tui.config import DEFAULT_STUN, Config, ConfigError, load_config, parse_config, save_config
from sandra_tui.config.model import TurnServer
from sandra_tui.logs import RedactingFilter
from tests.helpers import run_cli

SECRET = "s3cret-turn-credential"


def test_defaults_follow_the_guide():
    cfg = Config()
    assert cfg.ice.stun == DEFAULT_STUN and len(DEFAULT_STUN) == 7
    assert cfg.ice.turn == []
    assert (cfg.reconnect.max_attempts, cfg.reconnect.base_delay_ms, cfg.reconnect.max_delay_ms) == (5, 1000, 30000)
    assert (cfg.history.max_messages, cfg.history.max_memory_mb, cfg.history.trim_to) == (50, 100, 30)
    assert cfg.backend.url == "embedded"


def test_round_trip_file_mode_and_atomicity(tmp_config, monkeypatch):
    cfg = Config(ice={"stun": ["stun:127.0.0.1:3478"],
                      "turn": [{"url": "turn.example.com", "username": "op", "credential": SECRET}]},
                 reconnect={"max_attempts": 3}, audio={"input_device": "USB Headset"})
    save_config(cfg)
    assert stat.S_IMODE(tmp_config.stat().st_mode) == 0o600
    loaded = load_config()
    assert loaded.config == cfg and loaded.warnings == []
    old = tmp_config.read_bytes()

    def crash(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    cfg.reconnect.max_attempts = 4
    with pytest.raises(OSError):
        save_config(cfg)
    assert tmp_config.read_bytes() == old
    assert [p.name for p in tmp_config.parent.iterdir()] == ["config.toml"]


finite = st.floats(min_value=0.5, max_value=100, allow_nan=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attempts=st.integers(0, 50), base=st.integers(0, 5000), extra=st.integers(0, 30000), mb=finite,
       names=st.lists(st.from_regex(r"[a-z]{1,8}\.example", fullmatch=True), max_size=4),
       cred=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20))
def test_property_round_trip(tmp_path_factory, attempts, base, extra, mb, names, cred):
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    cfg = Config(reconnect={"max_attempts": attempts, "base_delay_ms": base, "max_delay_ms": base + extra},
                 history={"max_memory_mb": mb}, ice={"stun": [f"stun:{n}" for n in names],
                                                     "turn": [{"url": f"turn:{n}", "credential": cred} for n in names]})
    save_config(cfg, path)
    assert load_config(path, env={}).config == cfg


def test_turn_env_overrides_and_precedence(tmp_config):
    env = {"REACT_APP_TURN_SERVER": "turn.example.com", "REACT_APP_TURN_USERNAME": "op",
           "REACT_APP_TURN_PASSWORD": SECRET}
    loaded = load_config(env=env)
    turn = loaded.config.ice.turn[0]
    assert turn.url == "turn:turn.example.com:3478" and turn.username == "op"
    assert "REACT_APP_TURN_SERVER" in turn.origin
    env["SANDRA_TURN_SERVER"] = "turn:other.example:5349"
    env["SANDRA_TURN_PASSWORD"] = "winner-password"
    loaded = load_config(env=env)
    turn = loaded.config.ice.turn[0]
    assert turn.url == "turn:other.example:5349"
    assert turn.credential.get_secret_value() == "winner-password" and turn.username == "op"
    assert loaded.sources["ice.turn"] == "environment (SANDRA_TURN_SERVER)"
    save_config(loaded.config)
    assert "other.example" not in tmp_config.read_text()  # env servers are never written


def test_bad_env_turn_is_reported_not_fatal(tmp_config):
    loaded = load_config(env={"SANDRA_TURN_SERVER": "http://nope", "SANDRA_TURN_PASSWORD": SECRET})
    assert loaded.config.ice.turn == []
    assert any("SANDRA_TURN_SERVER" in w for w in loaded.warnings)
    assert not any(SECRET in w for w in loaded.warnings)


def test_check_reports_file_line_and_field(tmp_config):
    tmp_config.write_text('[ice]\nstun = ["stun:ok.example", "turn:bad"]\n\n[[ice.turn]]\nurl = "http://x"\n'
                          f'credential = "{SECRET}"\n\n[history]\nmax_mesages = 10\n')
    r = run_cli("config", "check")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert f"{tmp_config}:2: ice.stun[1]: 'turn:bad'" in lines[0]
    assert f"{tmp_config}:5: ice.turn[0].url: 'http://x'" in lines[1]
    assert f"{tmp_config}:9: history.max_mesages: unknown setting" in lines[2]
    assert SECRET not in r.stdout + r.stderr


def test_check_syntax_error_and_ok(tmp_config):
    tmp_config.write_text("[ice\n")
    r = run_cli("config", "check")
    assert r.returncode == 1 and f"{tmp_config}:1: TOML syntax error" in r.stderr
    tmp_config.write_text("[reconnect]\nmax_attempts = 3\n")
    r = run_cli("config", "check")
    assert r.returncode == 0 and "OK" in r.stdout


def test_corrupt_config_is_kept_aside_and_defaults_used(tmp_config):
    tmp_config.write_text("this is [not toml")
    r = run_cli("config", "show")
    assert r.returncode == 0
    assert "using defaults" in r.stderr
    # `config show` only reads: the bad file stays where it is, untouched (the TUI is what sets it aside).
    assert not list(tmp_config.parent.glob("config.toml.bad-*"))
    assert tmp_config.read_text() == "this is [not toml"


def test_config_show_done_when(tmp_path):
    env = {"SANDRA_CONFIG": str(tmp_path / "x.toml"), "REACT_APP_TURN_SERVER": "turn.example.com",
           "REACT_APP_TURN_USERNAME": "op", "REACT_APP_TURN_PASSWORD": "s3cret"}
    for name in ("SANDRA_TURN_SERVER", "SANDRA_TURN_USERNAME", "SANDRA_TURN_PASSWORD"):
        env[name] = ""
    r = run_cli("config", "show", env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert sum(1 for line in out.splitlines() if line.strip().startswith("stun ")) == 7
    assert "turn:turn.example.com:3478" in out and "credential=****" in out
    assert "s3cret" not in out + r.stderr
    assert "REACT_APP_TURN_SERVER" in out
    r = run_cli("config", "show", "--json", env=env)
    data = json.loads(r.stdout)
    assert len(data["config"]["ice"]["stun"]) == 7
    assert data["config"]["ice"]["turn"][0]["credential"] == "****"
    assert "s3cret" not in r.stdout


def test_secret_never_in_repr_logs_or_errors(tmp_config, caplog):
    turn = TurnServer(url="turn:x.example", username="op", credential=SECRET)
    assert SECRET not in repr(turn) and SECRET not in repr(Config(ice={"turn": [turn]}))
    logger = logging.getLogger("sandra_tui.test")
    handler = logging.StreamHandler(stream=__import__("io").StringIO())
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("connecting with %s", turn.credential.get_secret_value())
    finally:
        logger.removeHandler(handler)
    assert SECRET not in handler.stream.getvalue() and "s3****" in handler.stream.getvalue()
    tmp_config.write_text(f'[[ice.turn]]\nurl = "bad url"\ncredential = "{SECRET}"\n')
    with pytest.raises(ConfigError) as info:
        parse_config(tmp_config.read_text(), tmp_config)
    assert SECRET not in str(info.value)
    tmp_config.write_text('[[ice.turn]]\nurl = "turn:x.example"\ncredential = 12345678\n')
    with pytest.raises(ConfigError) as info:
        parse_config(tmp_config.read_text(), tmp_config)
    assert "12345678" not in str(info.value)


def test_cli_help_everywhere_and_version():
    for args in ([], ["serve"], ["call"], ["devices"], ["config"], ["config", "show"], ["probe-ice"]):
        r = run_cli(*args, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout, args
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("sandra-tui ")


def test_audio_block_is_10_or_20_ms(tmp_path):
    assert parse_config("[audio]\nblock_ms = 20\n", tmp_path / "c.toml").audio.block_ms == 20
    assert Config().audio.block_ms == 10
    with pytest.raises(ConfigError) as info:
        parse_config("[audio]\nblock_ms = 15\n", tmp_path / "c.toml")
    assert "audio.block_ms" in str(info.value) and ":2:" in str(info.value)
