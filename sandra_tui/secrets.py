"""Masking of secrets (TURN credentials, API keys) wherever text leaves the process.

Two kinds of masking:
- by pattern: every `ek_...` key (OpenAI's ephemeral keys and our signed keys, see
  SIGNED_KEY_PREFIX in wire/realtime.py) is masked wherever it appears, without being
  registered: a server mints one per call, and a registry of them would grow with its age;
- by value: other secrets (API keys, TURN secrets and passwords) are registered. The registry
  is bounded (MAX_ENTRIES, least recently registered dropped first) and an entry may expire
  (`ttl_s`, e.g. a TURN REST password with its credential), so the cost of masking a line
  does not grow with the life of the process.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict

MIN_REDACT_LEN = 4  # shorter values would redact ordinary words
MAX_ENTRIES = 512  # per kind; long-lived secrets are a handful, per-call ones expire or fall off the end
KEY_PATTERN = re.compile(r"\bek_[A-Za-z0-9_-]{16,}(?:\.[A-Za-z0-9_-]+)?")

_known: OrderedDict[str, None] = OrderedDict()  # never expire (config, API keys), bounded
_expiring: OrderedDict[str, float] = OrderedDict()  # value -> expiry (time.monotonic), bounded
_lock = threading.Lock()
_by_length: tuple[str, ...] | None = ()  # cached longest-first order; None = stale
_clock = time.monotonic


def mask(value: str | None) -> str:
    """`s3cret` -> `s3****`; short values hide everything."""
    if not value:
        return ""
    if len(value) < 6:
        return "****"
    return value[:2] + "****"


def register(value: str | None, ttl_s: float | None = None) -> None:
    """Remember a secret so log records that contain it get it masked (for `ttl_s` seconds
    when given, e.g. a credential's lifetime)."""
    global _by_length
    if not value or len(value) < MIN_REDACT_LEN or KEY_PATTERN.fullmatch(value):
        return
    now = _clock()
    with _lock:
        if ttl_s is None:
            _expiring.pop(value, None)
            _known.pop(value, None)
            _known[value] = None
        elif value not in _known:
            _expiring.pop(value, None)
            _expiring[value] = now + ttl_s
        _prune(now)
        _by_length = None


def _prune(now: float) -> None:
    global _by_length
    while len(_known) > MAX_ENTRIES:
        _known.popitem(last=False)
    while len(_expiring) > MAX_ENTRIES:
        _expiring.popitem(last=False)
    # per-call credentials share a lifetime, so they expire in the order they came
    while _expiring and next(iter(_expiring.values())) <= now:
        _expiring.popitem(last=False)
        _by_length = None


def count() -> int:
    with _lock:
        return len(_known) + len(_expiring)


def _known_longest_first() -> tuple[str, ...]:
    global _by_length
    with _lock:
        _prune(_clock())
        if _by_length is None:
            _by_length = tuple(sorted([*_known, *_expiring], key=len, reverse=True))
        return _by_length


def redact(text: str) -> str:
    if "ek_" in text:
        text = KEY_PATTERN.sub(lambda m: mask(m.group()), text)
    for value in _known_longest_first():
        if value in text:
            text = text.replace(value, mask(value))
    return text
