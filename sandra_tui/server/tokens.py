"""Short-lived client keys and TURN REST credentials (coturn use-auth-secret).

Our keys are signed and self-contained, so every replica that shares SANDRA_SECRET accepts
them, and so does a restarted `serve`:

    ek_sandra_<base64url("v1:<kind>:<expires_at>:<nonce>:<session id>")>.<base64url(HMAC-SHA256)>

The HMAC covers the payload under the current secret; SANDRA_SECRET_PREVIOUS is also accepted
while a rotation rolls out. Keys minted upstream (OpenAI's `ek_`, not ours to sign) are
remembered in memory, bounded and expiring.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sandra_tui import secrets as masking
from sandra_tui.wire.realtime import SESSION_ID, SIGNED_KEY_PREFIX

log = logging.getLogger("sandra_tui.server")
KIND_CALL = "call"  # opens calls (local agent or relay) and posts metrics
MAX_UPSTREAM_KEYS = 10_000  # remembered OpenAI keys; the oldest go first
SECRET_FILE = "token-secret"


@dataclass
class IssuedKey:
    session_id: str
    expires_at: float
    reconnect: bool = False
    local: bool = True  # minted here (valid for this server's calls), not upstream


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_secret(data_dir: Path) -> str:
    """The secret of a single `serve` without SANDRA_SECRET: made once, kept (0600) so that a
    restarted server still accepts the keys it minted."""
    path = Path(data_dir) / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    log.info("made a key-signing secret at %s (set SANDRA_SECRET to share one between replicas)", path)
    return value


class TokenStore:
    def __init__(self, ttl_s: int = 600, grace_s: int = 86400, clock=time.time,
                 secret: str | None = None, previous: str | None = None) -> None:
        self.ttl_s = ttl_s
        self.grace_s = grace_s
        self.clock = clock
        current = secret or secrets.token_hex(32)  # a store of its own (tests, embedded use)
        masking.register(current)
        masking.register(previous)
        self._secrets = [s.encode() for s in (current, previous) if s]
        self._upstream: OrderedDict[str, IssuedKey] = OrderedDict()

    def _sign(self, payload: bytes, secret: bytes) -> bytes:
        return hmac.new(secret, b"sandra-key\n" + payload, hashlib.sha256).digest()

    def mint(self, session_id: str | None = None, reconnect: bool = False,
             ttl_s: int | None = None) -> tuple[str, IssuedKey]:
        if not session_id or not SESSION_ID.match(session_id):
            session_id = "sess_" + secrets.token_hex(12)
        expires_at = int(self.clock() + (self.ttl_s if ttl_s is None else ttl_s))
        payload = f"v1:{KIND_CALL}:{expires_at}:{secrets.token_hex(6)}:{session_id}".encode()
        value = SIGNED_KEY_PREFIX + _b64(payload) + "." + _b64(self._sign(payload, self._secrets[0]))
        # not registered for masking one by one: the registry would grow with every call; the
        # prefix marks these keys (see SIGNED_KEY_PREFIX)
        return value, IssuedKey(session_id, expires_at, reconnect)

    def verify(self, value: str | None) -> IssuedKey | None:
        """A key of ours with a valid signature (expired or not), else None."""
        if not value or not value.startswith(SIGNED_KEY_PREFIX) or len(value) > 512:
            return None
        body, _, sig = value[len(SIGNED_KEY_PREFIX):].partition(".")
        try:
            payload, mac = _unb64(body), _unb64(sig)
        except ValueError:
            return None
        # every candidate secret is compared, in constant time, so timing says nothing of which
        good = [hmac.compare_digest(mac, self._sign(payload, s)) for s in self._secrets]
        if not any(good):
            return None
        parts = payload.decode(errors="replace").split(":", 4)
        if len(parts) != 5 or parts[0] != "v1" or parts[1] != KIND_CALL or not parts[2].isdigit():
            return None
        return IssuedKey(parts[4], float(parts[2]))

    def remember(self, value: str, session_id: str, expires_at: float) -> None:
        """A key minted upstream (OpenAI): accept it for this server's metrics API."""
        now = self.clock()
        while self._upstream:
            oldest = next(iter(self._upstream.values()))
            if len(self._upstream) < MAX_UPSTREAM_KEYS and oldest.expires_at + self.grace_s >= now:
                break
            self._upstream.popitem(last=False)
        self._upstream[value] = IssuedKey(session_id, expires_at, local=False)

    def check(self, value: str | None) -> IssuedKey | None:
        """A live key minted here (for calls)."""
        issued = self.verify(value)
        if issued is None or issued.expires_at < self.clock():
            return None
        return issued

    def session_of(self, value: str | None) -> str | None:
        """The session a key was issued for, within the metrics grace period."""
        issued = self.verify(value) or self._upstream.get(value or "")
        if issued is None or issued.expires_at + self.grace_s < self.clock():
            return None
        return issued.session_id

    def call_tag(self, call_id: str, session_id: str) -> str:
        """Binds an upstream call id to the session that opened it (stateless hang-up rights)."""
        return _b64(self._sign(f"call:{call_id}:{session_id}".encode(), self._secrets[0])[:12])

    def call_tag_ok(self, call_id: str, session_id: str, tag: str) -> bool:
        want = tag.encode()
        return any([hmac.compare_digest(want, _b64(self._sign(f"call:{call_id}:{session_id}".encode(), s)[:12])
                                        .encode()) for s in self._secrets])


def turn_rest_credentials(secret: str, user: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """coturn `use-auth-secret`: username "<expiry>:<user>", password base64(HMAC-SHA1(secret, username))."""
    expiry = int((now if now is not None else time.time()) + ttl_s)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    password = base64.b64encode(digest).decode()
    masking.register(password, ttl_s=ttl_s)  # expires with the credential: the registry stays bounded
    return username, password
