"""What the metrics API accepts, mirrored on the client so no payload is ever refused for its shape.

Copied from sandra_tui/server/metrics/validate.py (telemetry may not import the server; a test
checks the two agree). Why it matters: a value over MAX_MS makes the server answer 400 and the
payload is dropped. A reconnect after an hour-old connection produced such a value (the
controller measured `time_to_first_audio` from the previous connection), and the rolling window
kept it: a name sampled once per connection never sees 100 newer samples, so every later payload
of the call carried it in `byName.<name>.max` and was refused. Such samples are now left out of
the statistics (counted), and `fit()` keeps every payload inside the size and name limits.
"""

from __future__ import annotations

import json

from sandra_tui.wire.realtime import METRIC_NAME as NAME
from sandra_tui.wire.realtime import SESSION_ID

MAX_BODY_BYTES = 16 * 1024
MAX_MS = 3_600_000.0
MAX_COUNT = 10_000_000
MAX_NAMES = 32
# Headroom for the JSON encoder aiohttp uses (default separators) against our compact count.
BODY_BUDGET = MAX_BODY_BYTES - 1024


def sample_ok(name: str, ms: float) -> bool:
    """A sample the server would take: a valid metric name and 0 <= ms <= one hour."""
    return bool(NAME.match(name)) and ms == ms and 0.0 <= ms <= MAX_MS


def safe_session(session_id: str | None) -> str:
    return session_id if session_id and SESSION_ID.match(session_id) else "unknown"


def encoded(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def fit(payload: dict) -> dict:
    """Keep `byName` to the names with the most samples so the payload stays inside the limits."""
    by_name = payload.get("byName") or {}
    if len(by_name) > MAX_NAMES:
        keep = sorted(by_name, key=lambda n: (-by_name[n]["count"], n))[:MAX_NAMES]
        payload["byName"] = {n: by_name[n] for n in sorted(keep)}
    while len(encoded(payload)) > BODY_BUDGET and payload.get("byName"):
        by_name = payload["byName"]
        fewest = min(by_name, key=lambda n: (by_name[n]["count"], n))
        del by_name[fewest]
    return payload
