"""Settings of `sandra-tui serve`, from flags and environment (never from the client's config)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from sandra_tui.protocol.realtime import DEFAULT_MODEL

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
    dialect: str | None = None  # serve --dialect: what the local agent speaks (default: api; server/live_dialect.py)

    @classmethod
    def from_env(cls, env=None, **overrides) -> "ServerSettings":
        env = os.environ if env is None else env
        s = cls(**overrides)
        s.openai_api_key = env.get("OPENAI_API_KEY") or None
        s.openai_base_url = env.get("SANDRA_OPENAI_BASE_URL", s.openai_base_url).rstrip("/")
        s.openai_mode = env.get("SANDRA_OPENAI_MODE", s.openai_mode).strip().lower() or s.openai_mode
        s.model = env.get("SANDRA_MODEL", "").strip() or s.model
        s.voice = env.get("SANDRA_VOICE", "").strip() or s.voice
        s.instructions = env.get("SANDRA_INSTRUCTIONS", "").strip() or s.instructions
        s.transcription_model = env.get("SANDRA_TRANSCRIPTION_MODEL", "").strip() or s.transcription_model
        if env.get("SANDRA_SESSION_FILE"):
            try:
                extra = json.loads(Path(env["SANDRA_SESSION_FILE"]).read_text())
            except (OSError, ValueError) as exc:
                raise ValueError(f"SANDRA_SESSION_FILE: {exc}") from None
            if not isinstance(extra, dict):
                raise ValueError("SANDRA_SESSION_FILE must hold a JSON object (session fields)")
            s.session_extra = extra
        s.secret = env.get("SANDRA_SECRET") or None
        s.secret_previous = env.get("SANDRA_SECRET_PREVIOUS") or None
        s.turn_secret = env.get("SANDRA_TURN_SECRET") or None
        urls = env.get("SANDRA_TURN_URLS") or env.get("SANDRA_TURN_URL") or ""
        s.turn_urls = [u.strip() for u in urls.split(",") if u.strip()]
        if env.get("SANDRA_TURN_TTL"):
            s.turn_ttl_s = int(env["SANDRA_TURN_TTL"])
        if env.get("SANDRA_TOKEN_TTL"):
            s.token_ttl_s = int(env["SANDRA_TOKEN_TTL"])
        origins = env.get("SANDRA_CORS_ORIGINS", "")
        s.cors_origins = {o.strip().rstrip("/") for o in origins.split(",") if o.strip()}
        s.database_url = env.get("SANDRA_DATABASE_URL") or None
        s.metrics_admin_token = env.get("SANDRA_METRICS_ADMIN_TOKEN") or None
        if env.get("SANDRA_METRICS_RATE_PER_MIN"):
            s.metrics_per_client_per_min = int(env["SANDRA_METRICS_RATE_PER_MIN"])
        if env.get("SANDRA_METRICS_GLOBAL_PER_MIN"):
            s.metrics_global_per_min = int(env["SANDRA_METRICS_GLOBAL_PER_MIN"])
        if env.get("SANDRA_TRUSTED_PROXIES"):
            from sandra_tui.server.proxies import parse_networks

            s.trusted_proxies = parse_networks(env["SANDRA_TRUSTED_PROXIES"])
        for name, attr in (("SANDRA_HEADER_TIMEOUT_S", "header_timeout_s"), ("SANDRA_BODY_TIMEOUT_S", "body_timeout_s")):
            if env.get(name):
                try:
                    setattr(s, attr, float(env[name]))
                except ValueError:
                    raise ValueError(f"{name} must be a number of seconds") from None
        if env.get("SANDRA_MAX_CONNECTIONS_PER_ADDRESS"):
            s.max_connections_per_address = int(env["SANDRA_MAX_CONNECTIONS_PER_ADDRESS"])
        if env.get("SANDRA_DATA_DIR"):
            s.data_dir = Path(env["SANDRA_DATA_DIR"])
        from sandra_tui.server.replica import replica_id

        s.replica_id = replica_id(env)  # a bad one stops serve at start, not at the first call
        s.api = env.get("SANDRA_API", s.api).strip().lower() or s.api  # GPT-Live (#22)
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
