"""Settings of `sandra-tui serve`, from flags and environment (never from the client's config)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from sandra_tui.wire.realtime import DEFAULT_MODEL

INSTRUCTIONS = ("You are Sandra, a helpful voice assistant. Answer briefly and plainly; "
                "say so when you do not know.")


@dataclass
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8750
    upstream: str = "local"  # local | openai
    faults: bool = False
    model: str = DEFAULT_MODEL
    voice: str = "marin"
    # --upstream openai: relay the caller's SDP with our key (relay), or hand out OpenAI's keys (mint)
    openai_mode: str = "relay"
    instructions: str = INSTRUCTIONS
    transcription_model: str = "gpt-4o-mini-transcribe"
    session_extra: dict = field(default_factory=dict)  # SANDRA_SESSION_FILE: tools etc., merged over the policy
    secret: str | None = field(default=None, repr=False)  # signs our keys; shared by replicas
    secret_previous: str | None = field(default=None, repr=False)  # still accepted during a rotation
    session_max_s: float | None = None  # local agent: end each session after this long (OpenAI: 3600)
    model_notice_days: int = 30  # warn this long before the model's shutdown_date
    token_ttl_s: int = 600
    metrics_token_grace_s: int = 86400  # a call's key may still post metrics this long after expiry
    max_calls_per_client: int = 4
    max_calls: int = 64  # all clients together
    agent_mode: str = "reply"  # reply | echo (the local agent plays the caller's audio back)
    upstream_timeout_s: float = 10.0
    tokens_per_min_per_client: int = 120
    max_body_bytes: int = 64 * 1024
    openai_base_url: str = "https://api.openai.com"
    openai_api_key: str | None = field(default=None, repr=False)
    turn_urls: list[str] = field(default_factory=list)  # turn:/turns: (REST credentials) and stun: URLs
    turn_secret: str | None = field(default=None, repr=False)
    turn_ttl_s: int = 3600
    cors_origins: set[str] = field(default_factory=set)
    database_url: str | None = field(default=None, repr=False)
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("sandra-tui")))
    metrics_admin_token: str | None = field(default=None, repr=False)
    idle_call_timeout_s: float = 15.0  # no inbound RTP for this long: the client is gone
    connect_timeout_s: float = 10.0  # an answered call not connected by then is dropped
    metrics_per_client_per_min: int = 1000  # the guide's limit, per key and per address
    metrics_global_per_min: int = 200_000
    # connection hygiene (server/hygiene.py)
    header_timeout_s: float = 10.0  # a request head must be complete by then (and idle keep-alive ends)
    body_timeout_s: float = 10.0  # a request body must be complete by then
    max_connections_per_address: int = 64
    trusted_proxies: list = field(default_factory=list)  # SANDRA_TRUSTED_PROXIES: networks (server/proxies.py)
    replica_id: str | None = None  # SANDRA_REPLICA_ID: named in call ids, for the proxy (server/replica.py)
    api: str = "realtime"  # SANDRA_API: realtime | live, the upstream API (GPT-Live, #22: server/upstream_live.py)
    test_pages: Path | None = None  # SANDRA_TEST_PAGES: with --faults, served at /_test (browser tests)
    dialect: str | None = None  # serve --dialect: what the local agent speaks (default: api; server/live_dialect.py)

    @classmethod
    def from_env(cls, env=None, **overrides) -> "ServerSettings":
        """Flags (overrides) and the environment (server/env.py: pydantic-settings); ValueError
        names a bad variable, never its value."""
        from sandra_tui.server import env as serve_env

        e = serve_env.read(os.environ if env is None else env)
        s = cls(**overrides)
        secret = lambda value: value.get_secret_value() if value is not None else None  # noqa: E731
        s.openai_api_key = secret(e.openai_api_key)
        s.openai_base_url = (e.openai_base_url or s.openai_base_url).rstrip("/")
        s.openai_mode = (e.openai_mode or s.openai_mode).lower()
        s.model = e.model or s.model
        s.voice = e.voice or s.voice
        s.instructions = e.instructions or s.instructions
        s.transcription_model = e.transcription_model or s.transcription_model
        if e.session_file is not None:
            s.session_extra = serve_env.session_extra(e.session_file)
        s.secret, s.secret_previous = secret(e.secret), secret(e.secret_previous)
        s.turn_secret = secret(e.turn_secret)
        s.turn_urls = e.turn_urls or []
        s.cors_origins = {o.rstrip("/") for o in e.cors_origins or []}
        s.database_url = secret(e.database_url)
        s.metrics_admin_token = secret(e.metrics_admin_token)
        for name in ("turn_ttl_s", "token_ttl_s", "metrics_per_client_per_min", "metrics_global_per_min",
                     "header_timeout_s", "body_timeout_s", "max_connections_per_address", "data_dir",
                     "test_pages"):
            value = getattr(e, name)
            if value is not None:
                setattr(s, name, value)
        if e.trusted_proxies:
            s.trusted_proxies = serve_env.trusted_proxies(e.trusted_proxies)
        s.replica_id = e.replica_id  # a bad one stops serve at start, not at the first call
        s.api = (e.api or s.api).lower()  # GPT-Live (#22)
        return s

    def problems(self) -> list[str]:
        """What keeps these settings from serving, as one-line messages (empty when fine)."""
        out = []
        turn = [u for u in self.turn_urls if u.split(":", 1)[0] in ("turn", "turns")]
        other = [u for u in self.turn_urls if u.split(":", 1)[0] not in ("turn", "turns", "stun")]
        if other:
            out.append(f"SANDRA_TURN_URLS: not a turn:, turns: or stun: URL: {other[0]}")
        if turn and not self.turn_secret:
            out.append("TURN URLs need SANDRA_TURN_SECRET (coturn use-auth-secret) to mint credentials")
        if self.turn_secret and not turn:
            out.append("SANDRA_TURN_SECRET is set but no turn: URL is (SANDRA_TURN_URLS or --turn-url)")
        if not 60 <= self.turn_ttl_s <= 7 * 86400:
            out.append("the TURN credential TTL must be 60 s to 7 days")
        if not 10 <= self.token_ttl_s <= 7200:
            out.append("the key TTL must be 10 to 7200 s (the Realtime API's bounds)")
        if self.agent_mode not in ("reply", "echo", "mirror"):
            out.append("the agent mode must be reply, echo or mirror")
        if self.openai_mode not in ("relay", "mint"):
            out.append("SANDRA_OPENAI_MODE must be relay or mint")
        if self.api not in ("realtime", "live"):
            out.append("SANDRA_API must be realtime or live")
        if self.dialect not in (None, "realtime", "live"):
            out.append("--dialect must be realtime or live")
        if self.api == "live" and self.upstream == "openai" and self.openai_mode == "mint":
            out.append("GPT-Live has no client keys to mint: SANDRA_API=live needs SANDRA_OPENAI_MODE=relay")
        for name, value in (("SANDRA_SECRET", self.secret), ("SANDRA_SECRET_PREVIOUS", self.secret_previous)):
            if value is not None and len(value) < 16:
                out.append(f"{name} must be at least 16 characters")
        if not (0.5 <= self.header_timeout_s <= 3600 and 0.5 <= self.body_timeout_s <= 3600):
            out.append("the header and body timeouts must be 0.5 to 3600 s")
        if self.max_connections_per_address < 1:
            out.append("SANDRA_MAX_CONNECTIONS_PER_ADDRESS must be at least 1")
        if self.session_max_s is not None and not self.session_max_s > 0:
            out.append("--session-max-s must be more than 0")
        if self.upstream == "openai" and not self.openai_api_key:
            out.append("--upstream openai needs OPENAI_API_KEY in the environment")
        return out

    def session_policy(self) -> dict:
        """The session config of a relayed call: server policy, whatever the caller asks."""
        session = {
            "type": "realtime",
            "model": self.model,
            "instructions": self.instructions,
            "audio": {
                "input": {
                    "transcription": {"model": self.transcription_model},
                    "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                       "silence_duration_ms": 500, "create_response": True,
                                       "interrupt_response": True},
                },
                "output": {"voice": self.voice},
            },
            "tools": [],
        }
        return _merge(session, self.session_extra)

    def ice_servers(self, user: str, now: float | None = None) -> list[dict]:
        """The `ice_servers` handed to a client: [] unless TURN/STUN URLs are configured."""
        from sandra_tui.server.tokens import turn_rest_credentials

        stun = [u for u in self.turn_urls if u.startswith("stun:")]
        turn = [u for u in self.turn_urls if u.split(":", 1)[0] in ("turn", "turns")]
        servers: list[dict] = []
        if turn and self.turn_secret:
            username, credential = turn_rest_credentials(self.turn_secret, user, self.turn_ttl_s, now)
            servers.append({"urls": turn, "username": username, "credential": credential})
        if stun:
            servers.append({"urls": stun})
        return servers


def _merge(base: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base
