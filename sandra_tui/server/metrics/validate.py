"""Strict validation of a latency payload: types, ranges, ids, size. Nothing else is stored."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

from sandra_tui.wire.realtime import METRIC_NAME as NAME
from sandra_tui.wire.realtime import SESSION_ID

MAX_BODY_BYTES = 16 * 1024
MAX_MS = 3_600_000.0  # one hour: anything above is a bug, not a latency
MAX_COUNT = 10_000_000
PAYLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STAT_KEYS = ("count", "avg", "min", "max", "p95", "p99")
MAX_NAMES = 32


class PayloadError(ValueError):
    pass


def _number(value, where: str, *, integer: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(f"{where} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PayloadError(f"{where} must be finite")
    if integer and (not float(value).is_integer() or not 0 <= value <= MAX_COUNT):
        raise PayloadError(f"{where} must be a whole number from 0 to {MAX_COUNT}")
    if not integer and not 0 <= value <= MAX_MS:
        raise PayloadError(f"{where} must be between 0 and {MAX_MS:g} ms")
    return float(value)


def check_stats(stats, where: str) -> dict:
    if not isinstance(stats, dict):
        raise PayloadError(f"{where} must be an object")
    missing = [k for k in STAT_KEYS if k not in stats]
    extra = [k for k in stats if k not in STAT_KEYS]
    if missing or extra:
        raise PayloadError(f"{where}: missing {missing} / unknown {extra}" if missing and extra
                           else f"{where}: missing {missing}" if missing else f"{where}: unknown {extra}")
    out = {"count": int(_number(stats["count"], f"{where}.count", integer=True))}
    for key in STAT_KEYS[1:]:
        out[key] = _number(stats[key], f"{where}.{key}")
    if out["count"] and not (out["min"] <= out["avg"] <= out["max"] and out["min"] <= out["p95"] <= out["p99"] <= out["max"]):
        raise PayloadError(f"{where}: expected min <= avg <= max and min <= p95 <= p99 <= max")
    return out


def parse_payload(raw: bytes) -> dict:
    """Bytes of a POST body -> a clean payload dict, or PayloadError with a plain reason."""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadError("body too large")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise PayloadError("JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object")
    allowed = {"type", "sessionId", "metrics", "timestamp", "byName", "payloadId"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PayloadError(f"unknown fields: {unknown}")
    if data.get("type") != "realtime_latency":
        raise PayloadError("type must be 'realtime_latency'")
    session = data.get("sessionId")
    if not isinstance(session, str) or not SESSION_ID.match(session):
        raise PayloadError("sessionId must be 1-128 characters of letters, digits, _ . : -")
    ts = data.get("timestamp")
    if not isinstance(ts, str) or len(ts) > 40:
        raise PayloadError("timestamp must be an ISO 8601 string")
    try:
        parsed = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError("timestamp must be an ISO 8601 string") from None
    if parsed.tzinfo is None:
        raise PayloadError("timestamp must carry a time zone (UTC 'Z')")
    clean = {"type": "realtime_latency", "sessionId": session, "timestamp": ts,
             "metrics": check_stats(data.get("metrics"), "metrics")}
    if "payloadId" in data:
        pid = data["payloadId"]
        if not isinstance(pid, str) or not PAYLOAD_ID.match(pid):
            raise PayloadError("payloadId must be 1-64 characters of letters, digits, _ -")
        clean["payloadId"] = pid
    if "byName" in data:
        by_name = data["byName"]
        if not isinstance(by_name, dict) or len(by_name) > MAX_NAMES:
            raise PayloadError(f"byName must be an object with at most {MAX_NAMES} entries")
        clean["byName"] = {}
        for name, stats in by_name.items():
            if not NAME.match(name):
                raise PayloadError(f"byName: bad metric name {name[:70]!r}")
            clean["byName"][name] = check_stats(stats, f"byName.{name}")
    return clean


def _reject_constant(name: str):
    raise PayloadError(f"{name} is not allowed")
