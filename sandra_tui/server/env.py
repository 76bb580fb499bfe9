"""The environment of `sandra-tui serve`, parsed and checked by pydantic-settings.

One declaration per variable (name, type, default) instead of a hand-written `env.get` and
`int()` each: an empty variable counts as unset, numbers and lists are checked when serve
starts, and a bad value is reported by variable name without its value (secrets are among
them). ServerSettings.from_env copies the result over its defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from sandra_tui.server.proxies import parse_networks
from sandra_tui.server.replica import REPLICA_ENV, replica_id


def _env(name: str, *more: str):
    return Field(None, validation_alias=AliasChoices(name, *more) if more else name)


def _comma_list(value):
    if value is None or isinstance(value, list):
        return value
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _words(value):
    return value.strip() or None if isinstance(value, str) else value


class ServeEnv(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, hide_input_in_errors=True,
                                      extra="ignore")

    openai_api_key: SecretStr | None = _env("OPENAI_API_KEY")
    openai_base_url: str | None = _env("SANDRA_OPENAI_BASE_URL")
    openai_mode: str | None = _env("SANDRA_OPENAI_MODE")
    model: str | None = _env("SANDRA_MODEL")
    voice: str | None = _env("SANDRA_VOICE")
    instructions: str | None = _env("SANDRA_INSTRUCTIONS")
    transcription_model: str | None = _env("SANDRA_TRANSCRIPTION_MODEL")
    session_file: Path | None = _env("SANDRA_SESSION_FILE")
    secret: SecretStr | None = _env("SANDRA_SECRET")
    secret_previous: SecretStr | None = _env("SANDRA_SECRET_PREVIOUS")
    turn_secret: SecretStr | None = _env("SANDRA_TURN_SECRET")
    turn_urls: Annotated[list[str] | None, NoDecode] = _env("SANDRA_TURN_URLS", "SANDRA_TURN_URL")
    turn_ttl_s: int | None = _env("SANDRA_TURN_TTL")
    token_ttl_s: int | None = _env("SANDRA_TOKEN_TTL")
    cors_origins: Annotated[list[str] | None, NoDecode] = _env("SANDRA_CORS_ORIGINS")
    database_url: SecretStr | None = _env("SANDRA_DATABASE_URL")  # may carry a password
    metrics_admin_token: SecretStr | None = _env("SANDRA_METRICS_ADMIN_TOKEN")
    metrics_per_client_per_min: int | None = _env("SANDRA_METRICS_RATE_PER_MIN")
    metrics_global_per_min: int | None = _env("SANDRA_METRICS_GLOBAL_PER_MIN")
    trusted_proxies: str | None = _env("SANDRA_TRUSTED_PROXIES")
    header_timeout_s: float | None = _env("SANDRA_HEADER_TIMEOUT_S")
    body_timeout_s: float | None = _env("SANDRA_BODY_TIMEOUT_S")
    max_connections_per_address: int | None = _env("SANDRA_MAX_CONNECTIONS_PER_ADDRESS")
    data_dir: Path | None = _env("SANDRA_DATA_DIR")
    replica_id: str | None = _env(REPLICA_ENV)
    api: str | None = _env("SANDRA_API")
    test_pages: Path | None = _env("SANDRA_TEST_PAGES")  # with --faults: GET /_test/{name} (browser tests)

    _list = field_validator("turn_urls", "cors_origins", mode="before")(_comma_list)
    _trim = field_validator("openai_mode", "model", "voice", "instructions", "transcription_model", "api",
                            "replica_id", mode="before")(_words)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)  # `read` hands over the environment it was given, nothing else


class _GivenEnv(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ or a test's dict)."""

    def __init__(self, settings_cls, env: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.env_vars = parse_env_vars(env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def read(env: Mapping[str, str]) -> ServeEnv:
    """The parsed environment; ValueError with one line per bad variable (names, no values)."""
    try:
        values = _GivenEnv(ServeEnv, env)()
        parsed = ServeEnv(**values)
    except ValidationError as exc:
        raise ValueError("; ".join(_describe(e) for e in exc.errors(include_input=False))) from None
    except Exception as exc:  # noqa: BLE001 - pydantic-settings' SettingsError names the field only
        raise ValueError(str(exc).split(" input_value")[0][:200]) from None
    if parsed.replica_id is not None:
        replica_id({REPLICA_ENV: parsed.replica_id})  # its own check and message
    return parsed


def session_extra(path: Path) -> dict:
    try:
        extra = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"SANDRA_SESSION_FILE: {exc}") from None
    if not isinstance(extra, dict):
        raise ValueError("SANDRA_SESSION_FILE must hold a JSON object (session fields)")
    return extra


def trusted_proxies(text: str) -> list:
    return parse_networks(text)


_NAMES = {name: (f.validation_alias.choices[0] if isinstance(f.validation_alias, AliasChoices)
                 else f.validation_alias) for name, f in ServeEnv.model_fields.items()}


def _describe(error: dict) -> str:
    loc = error.get("loc") or ("?",)
    name = _NAMES.get(str(loc[0]), str(loc[0]))
    kind = error.get("type", "")
    if kind.startswith("int"):
        return f"{name} must be a whole number"
    if kind.startswith("float"):
        return f"{name} must be a number"
    return f"{name}: {error.get('msg', 'invalid')}"
