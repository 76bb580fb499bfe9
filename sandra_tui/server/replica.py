"""Which replica this `serve` is (SANDRA_REPLICA_ID), and call ids that name it.

A local-agent call lives in one process (its peer connection, its agent), so its hang-up must
reach that process. The id in `Location: /v1/realtime/calls/{id}` carries the replica id,
`rtc_<replica>_<24 hex>`, and the reverse proxy routes `/v1/realtime/calls/rtc_<replica>_...`
to that replica (deploy/nginx/sandra.conf). Without SANDRA_REPLICA_ID the id is `rtc_<24 hex>`
as before.
"""

from __future__ import annotations

import re
import secrets

REPLICA_ENV = "SANDRA_REPLICA_ID"
REPLICA_ID = re.compile(r"^[a-z0-9]{1,16}$")  # no "_" or "." : the id's separators stay unambiguous
CALL_ID = re.compile(r"^rtc_(?:(?P<replica>[a-z0-9]{1,16})_)?[0-9a-f]{24}$")


def replica_id(env) -> str | None:
    """SANDRA_REPLICA_ID of `env` (server/env.py reads the environment), checked; None when
    unset. ValueError names the problem."""
    value = (env.get(REPLICA_ENV) or "").strip()
    if not value:
        return None
    if not REPLICA_ID.match(value):
        raise ValueError(f"{REPLICA_ENV} must be 1-16 lowercase letters or digits, not {value[:40]!r}")
    return value


def new_call_id(replica: str | None) -> str:
    """A call id naming `replica` (ServerSettings.replica_id, checked by replica_id at start)."""
    return f"rtc_{replica}_{secrets.token_hex(12)}" if replica else "rtc_" + secrets.token_hex(12)


def replica_of(call_id: str) -> str | None:
    """The replica a call id names, or None (no replica in it, or not one of our ids)."""
    match = CALL_ID.match(call_id)
    return match["replica"] if match else None
