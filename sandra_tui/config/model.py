"""Typed, validated configuration.

pydantic v2: strict per-field validation with error locations (`ice.turn.0.url`) that `config
check` turns into file/line/field messages, `extra="forbid"` to catch typos, and SecretStr so a
TURN credential never shows in a repr or traceback.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from sandra_tui import secrets
from sandra_tui.config.urls import normalize_stun, normalize_turn

DEFAULT_STUN = [
    "stun:stun.l.google.com:19302",
    "stun:stun1.l.google.com:19302",
    "stun:stun2.l.google.com:19302",
    "stun:stun3.l.google.com:19302",
    "stun:stun4.l.google.com:19302",
    "stun:stun.stunprotocol.org:3478",
    "stun:stunserver.org:3478",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _backend_url(value: str) -> str:
    value = value.strip()
    if value == "embedded":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} must be 'embedded' or an http(s)://host[:port] URL")
    try:
        parts.port
    except ValueError:
        raise ValueError(f"{value!r} has a bad port") from None
    return value.rstrip("/")


OPENAI_CALLS_URL = "https://api.openai.com/v1/realtime/calls"
DEFAULT_MODEL = "gpt-realtime-2.1"  # gpt-realtime shuts down on 2027-01-20 (OpenAI's deprecations page)


def _optional_url(value: str) -> str:
    value = value.strip()
    return _backend_url(value) if value else ""


def _token_path(value: str) -> str:
    value = value.strip()
    if not value.startswith("/") or any(c in value for c in " ?#"):
        raise ValueError(f"{value!r} must be a path such as /api/sandra/token")
    return value


class BackendConfig(_Section):
    url: Annotated[str, AfterValidator(_backend_url)] = "embedded"
    token_path: Annotated[str, AfterValidator(_token_path)] = "/api/sandra/token"
    # Where the SDP offer goes when the token reply names no `realtime_url` (OpenAI's own
    # client_secrets body names none); "" = OpenAI's calls endpoint. Env: SANDRA_REALTIME_URL.
    realtime_url: Annotated[str, AfterValidator(_optional_url)] = ""
    model: str = DEFAULT_MODEL  # when the token reply does not say (its session.model wins)
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    request_timeout_s: float = Field(10.0, gt=0, le=120)


class TurnServer(_Section):
    url: str
    username: str = ""
    credential: SecretStr = SecretStr("")
    # Where this entry came from: "config" or the env variable names; never saved.
    _origin: str = PrivateAttr(default="config")

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, value: object) -> str:
        return normalize_turn(value, field="url")

    @model_validator(mode="after")
    def _remember_secret(self) -> "TurnServer":
        secrets.register(self.credential.get_secret_value())
        return self

    @property
    def origin(self) -> str:
        return self._origin


class IceConfig(_Section):
    stun: list[str] = Field(default_factory=lambda: list(DEFAULT_STUN))
    turn: list[TurnServer] = Field(default_factory=list)
    probe_timeout_ms: int = Field(500, ge=50, le=10000)
    probe_cache_s: int = Field(300, ge=0, le=86400)
    relay_fallback: bool = True  # after a failed attempt with TURN configured, retry relay-only

    @field_validator("stun", mode="before")
    @classmethod
    def _stun(cls, value: object) -> list[str]:
        if not isinstance(value, list):
            raise ValueError("expected a list of stun: URLs")
        return [normalize_stun(item, field=f"stun[{i}]") for i, item in enumerate(value)]


class ReconnectConfig(_Section):
    max_attempts: int = Field(5, ge=0, le=50)
    base_delay_ms: int = Field(1000, ge=0, le=600_000)
    max_delay_ms: int = Field(30000, ge=0, le=3_600_000)
    jitter: float = Field(0.1, ge=0, le=1)  # +/- fraction of each delay
    stable_after_s: float = Field(10.0, ge=0, le=3600)  # connected this long resets the counter
    watchdog_ms: int = Field(2000, ge=200, le=60000)  # silence on the path before it is dead

    @model_validator(mode="after")
    def _order(self) -> "ReconnectConfig":
        if self.max_delay_ms < self.base_delay_ms:
            raise ValueError("max_delay_ms must be >= base_delay_ms")
        return self


class AudioConfig(_Section):
    input_device: str = ""  # name (or part of it) or index; "" = system default
    output_device: str = ""
    echo_cancellation: bool = True
    noise_suppression: bool = False
    push_to_talk: bool = False
    playout_target_ms: int = Field(40, ge=20, le=500)  # grows on jitter, shrinks back
    # PortAudio block: 10 ms for the lowest delay; 20 ms halves the wake-ups (less CPU) and
    # adds about 10 ms each way.
    block_ms: Literal[10, 20] = 10
    output_volume: float = Field(1.0, ge=0, le=2)  # speaker gain (1 = as received)
    mic_gain: float = Field(1.0, ge=0, le=4)  # microphone gain before sending


class SessionConfig(_Section):
    voice: str = "marin"
    instructions: str = ""
    vad_threshold: float = Field(0.5, ge=0, le=1)
    vad_prefix_padding_ms: int = Field(300, ge=0, le=5000)
    vad_silence_duration_ms: int = Field(500, ge=0, le=10000)
    turn_detection: Literal["server_vad", "semantic_vad"] = "server_vad"
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"  # semantic_vad only
    noise_reduction: Literal["off", "near_field", "far_field"] = "off"
    transcription_language: str = Field("", max_length=8)  # ISO-639-1 such as "en"; "" = detect

    @field_validator("transcription_language")
    @classmethod
    def _language(cls, value: str) -> str:
        value = value.strip().lower()
        if value and not (value.replace("-", "").isalpha() and 2 <= len(value) <= 8):
            raise ValueError(f"{value!r} is not a language code such as 'en'")
        return value


class CallConfig(_Section):
    # OpenAI ends every Realtime session at 60 minutes: renew (make-before-break) before that.
    # 0 = never renew.
    renew_after_s: float = Field(3300, ge=0, le=86400)
    renew_quiet_max_s: float = Field(20, ge=0, le=600)  # wait this long for a quiet moment to switch
    autostart: bool = True  # the TUI places the call at launch (`sandra-tui --no-autostart` for once)
    record: bool = False  # record every call from its start (Ctrl+R toggles during a call)
    recordings_dir: str = ""  # "" = recordings/ under the user data dir


class HistoryConfig(_Section):
    max_messages: int = Field(50, ge=1, le=100_000)
    max_memory_mb: float = Field(100.0, gt=0, le=100_000)
    trim_to: int = Field(30, ge=1, le=100_000)
    # Call history (SQLite): every call with its figures and transcript.
    save_calls: bool = True
    calls_db: str = ""  # "" = calls.sqlite3 under the user data dir
    keep_days: int = Field(90, ge=0, le=36500)  # 0 = no age limit
    keep_calls: int = Field(1000, ge=0, le=1_000_000)  # 0 = no count limit

    @model_validator(mode="after")
    def _order(self) -> "HistoryConfig":
        if self.trim_to > self.max_messages:
            raise ValueError("trim_to must be <= max_messages")
        return self


class LatencyConfig(_Section):
    good_ms: float = Field(300, gt=0)
    medium_ms: float = Field(1000, gt=0)

    @model_validator(mode="after")
    def _order(self) -> "LatencyConfig":
        if self.medium_ms <= self.good_ms:
            raise ValueError("medium_ms must be greater than good_ms")
        return self

    def classify(self, ms: float) -> Literal["GOOD", "MEDIUM", "HIGH"]:
        if ms < self.good_ms:
            return "GOOD"
        if ms < self.medium_ms:
            return "MEDIUM"
        return "HIGH"


class TelemetryConfig(_Section):
    enabled: bool = True
    url: str = ""  # "" = the backend's /api/sandra/metrics
    batch_size: int = Field(10, ge=1, le=10_000)
    flush_interval_s: float = Field(30.0, gt=0, le=86400)
    window: int = Field(100, ge=10, le=100_000)
    spool_max_mb: float = Field(10.0, gt=0, le=10_000)


class Config(_Section):
    backend: BackendConfig = Field(default_factory=BackendConfig)
    ice: IceConfig = Field(default_factory=IceConfig)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    call: CallConfig = Field(default_factory=CallConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

    def to_toml_dict(self) -> dict:
        """What goes in the file: secrets in clear (the file is 0600), env-only TURN left out."""
        data = self.model_dump(mode="python")
        data["ice"]["turn"] = [
            {"url": t.url, "username": t.username, "credential": t.credential.get_secret_value()}
            for t in self.ice.turn
            if t.origin == "config"
        ]
        for entry in data["ice"]["turn"]:
            if not entry["username"]:
                del entry["username"]
            if not entry["credential"]:
                del entry["credential"]
        return data
