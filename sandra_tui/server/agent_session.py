"""The local agent's session: its default shape, what session.update may set, and the
error a refused client event becomes."""

from __future__ import annotations

import copy
import secrets
import time

EAGERNESS = ("low", "medium", "high", "auto")


class BadEvent(Exception):
    """A client event the API would refuse: becomes an `error` event with this code and param."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.param = code, param


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def default_session(model: str, voice: str) -> dict:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                   "silence_duration_ms": 500, "create_response": True,
                                   "interrupt_response": True, "idle_timeout_ms": None},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice, "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "truncation": "auto",
        "expires_at": int(time.time()) + 600,
        "include": None,
    }


# What session.update may set: nested dicts list their keys, None marks a leaf.
SESSION_SCHEMA: dict = {
    "type": None, "model": None, "instructions": None, "output_modalities": None, "tools": None,
    "tool_choice": None, "max_output_tokens": None, "tracing": None, "prompt": None, "include": None,
    "truncation": None,
    "audio": {
        "input": {"format": None, "transcription": None, "noise_reduction": None, "turn_detection": None},
        "output": {"format": None, "voice": None, "speed": None},
    },
}
TURN_DETECTION_KEYS = {"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response",
                       "interrupt_response", "idle_timeout_ms", "eagerness"}


def check_keys(patch: dict, schema: dict, path: str) -> None:
    for key, value in patch.items():
        if key not in schema:
            raise BadEvent(f"Unknown parameter: '{path}.{key}'.", "unknown_parameter", f"{path}.{key}")
        sub = schema[key]
        if sub is not None and value is not None:
            if not isinstance(value, dict):
                raise BadEvent(f"'{path}.{key}' must be an object.", "invalid_type", f"{path}.{key}")
            check_keys(value, sub, f"{path}.{key}")


def check_turn_detection(td) -> None:
    param = "session.audio.input.turn_detection"
    if td is None:
        return
    if not isinstance(td, dict):
        raise BadEvent(f"'{param}' must be an object or null.", "invalid_type", param)
    for key in td:
        if key not in TURN_DETECTION_KEYS:
            raise BadEvent(f"Unknown parameter: '{param}.{key}'.", "unknown_parameter", f"{param}.{key}")
    if td.get("type") not in ("server_vad", "semantic_vad"):
        raise BadEvent(f"'{param}.type' must be 'server_vad' or 'semantic_vad'.", "invalid_value", f"{param}.type")
    limits = {"threshold": (0.0, 1.0), "prefix_padding_ms": (0, 10000), "silence_duration_ms": (0, 10000)}
    for key, (low, high) in limits.items():
        value = td.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise BadEvent(f"'{param}.{key}' must be a number from {low} to {high}.", "invalid_value",
                           f"{param}.{key}")
    if "eagerness" in td and td["eagerness"] not in EAGERNESS:
        raise BadEvent(f"'{param}.eagerness' must be one of {', '.join(EAGERNESS)}.", "invalid_value",
                       f"{param}.eagerness")
    for key in ("create_response", "interrupt_response"):
        if key in td and not isinstance(td[key], bool):
            raise BadEvent(f"'{param}.{key}' must be a boolean.", "invalid_type", f"{param}.{key}")


def merge(base: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "turn_detection":
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base
