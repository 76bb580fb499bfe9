"""Masking of secrets (TURN credentials, API keys) wherever text leaves the process."""

from __future__ import annotations

import threading

_known: set[str] = set()
_lock = threading.Lock()
MIN_REDACT_LEN = 4  # shorter values would redact ordinary words


def mask(value: str | None) -> str:
    """`s3cret` -> `s3****`; short values hide everything."""
    if not value:
        return ""
    if len(value) < 6:
        return "****"
    return value[:2] + "****"


def register(value: str | None) -> None:
    """Remember a secret so log records that contain it get it masked."""
    if value and len(value) >= MIN_REDACT_LEN:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, mask(value))
    return text
