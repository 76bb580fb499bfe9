"""Logging set-up shared by every entry point: one format, secrets redacted."""

from __future__ import annotations

import logging

from sandra_tui import secrets


class RedactingFilter(logging.Filter):
    """Rewrites a record's final message with every registered secret masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = secrets.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = secrets.redact(text)
        return True


def setup_logging(level: str | int = "WARNING", stream=None) -> None:
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.WARNING
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_sandra", False):
            root.removeHandler(old)
    handler._sandra = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
