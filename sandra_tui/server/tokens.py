"""Short-lived client keys (local upstream) and TURN REST credentials (coturn use-auth-secret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sandra_tui import secrets as masking

SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass
class IssuedKey:
    session_id: str
    expires_at: float
    reconnect: bool = False
    local: bool = True  # minted here (valid for this server's calls), not upstream


class TokenStore:
    def __init__(self, ttl_s: int = 600, grace_s: int = 86400, clock=time.time) -> None:
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        self.clock = clock
        self._keys: dict[str, IssuedKey] = {}

    def mint(self, session_id: str | None = None, reconnect: bool = False,
             ttl_s: int | None = None) -> tuple[str, IssuedKey]:
        self._expire()
        value = "ek_" + secrets.token_urlsafe(24)
        masking.register(value)
        if not session_id or not SESSION_ID.match(session_id):
            session_id = "sess_" + secrets.token_hex(12)
        issued = IssuedKey(session_id, self.clock() + (self.ttl_s if ttl_s is None else ttl_s), reconnect)
        self._keys[value] = issued
        return value, issued

    def remember(self, value: str, session_id: str, expires_at: float) -> None:
        """A key minted upstream (OpenAI): accept it for this server's metrics API."""
        masking.register(value)
        self._keys[value] = IssuedKey(session_id, expires_at, local=False)

    def check(self, value: str | None) -> IssuedKey | None:
        """A live key minted here (for calls to the local agent)."""
        issued = self._keys.get(value or "")
        if issued is None or not issued.local or issued.expires_at < self.clock():
            return None
        return issued

    def session_of(self, value: str | None) -> str | None:
        """The session a key was issued for, within the metrics grace period."""
        issued = self._keys.get(value or "")
        if issued is None or issued.expires_at + self.grace_s < self.clock():
            return None
        return issued.session_id

    def _expire(self) -> None:
        now = self.clock()
        if len(self._keys) > 1000:
            for value in [v for v, k in self._keys.items() if k.expires_at + self.grace_s < now]:
                del self._keys[value]


def turn_rest_credentials(secret: str, user: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """coturn `use-auth-secret`: username "<expiry>:<user>", password base64(HMAC-SHA1(secret, username))."""
    expiry = int((now if now is not None else time.time()) + ttl_s)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    password = base64.b64encode(digest).decode()
    masking.register(password)
    return username, password
