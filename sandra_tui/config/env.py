"""The environment's part of the configuration: SANDRA_TURN_* (or the product guide's
REACT_APP_TURN_*) and SANDRA_REALTIME_URL, read once into values and problems.

load.py applies the values and turns the problems into warnings; `config check` reports the same
problems and exits 1. A problem names the variable; a TURN username or password is never quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from sandra_tui import secrets
from sandra_tui.config.model import BackendConfig
from sandra_tui.config.urls import IceUrlError, mask_url_credentials, normalize_turn  # noqa: F401 - re-exported

TURN_ENV = {
    "server": ("SANDRA_TURN_SERVER", "REACT_APP_TURN_SERVER"),
    "username": ("SANDRA_TURN_USERNAME", "REACT_APP_TURN_USERNAME"),
    "credential": ("SANDRA_TURN_PASSWORD", "REACT_APP_TURN_PASSWORD"),
}
REALTIME_URL_ENV = "SANDRA_REALTIME_URL"
MAX_USERNAME_BYTES = 513  # STUN USERNAME (RFC 8489 14.3)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class EnvIssue:
    """One problem with an environment variable; `message` is safe to print."""

    variable: str
    message: str

    def __str__(self) -> str:
        return f"environment: {self.variable}: {self.message}"

    def to_dict(self) -> dict:
        return {"source": "environment", "variable": self.variable, "message": self.message}


@dataclass
class TurnFromEnv:
    """The TURN server the environment asks for (None: none, or a bad one) and its problems."""

    url: str | None = None
    username: str = ""
    credential: str = field(default="", repr=False)
    origin: str = ""  # which variables it came from, for `config show`
    server_var: str = ""
    issues: list[EnvIssue] = field(default_factory=list)


def _pick(env, names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name)
        if value:
            return name, value
    return None


def _credential_problems(var: str, value: str, kind: str) -> list[EnvIssue]:
    # The value stays out of the message: these are the TURN secret and the name that goes with it.
    problems = []
    if not value.strip():
        problems.append(EnvIssue(var, f"the {kind} is only white space"))
    elif _CONTROL.search(value):
        problems.append(EnvIssue(var, f"the {kind} (not shown) contains a control character "
                                      "(a newline from a file or a paste?)"))
    if kind == "username" and len(value.encode("utf-8", "surrogatepass")) > MAX_USERNAME_BYTES:
        problems.append(EnvIssue(var, f"the username (not shown) is longer than {MAX_USERNAME_BYTES} bytes"))
    return problems


def read_turn_env(env) -> TurnFromEnv:
    picked = {key: _pick(env, names) for key, names in TURN_ENV.items()}
    server, user, cred = picked["server"], picked["username"], picked["credential"]
    if cred:
        secrets.register(cred[1])
    out = TurnFromEnv()
    if server is None:
        for var, _ in (p for p in (user, cred) if p):
            out.issues.append(EnvIssue(var, "set, but neither SANDRA_TURN_SERVER nor REACT_APP_TURN_SERVER "
                                            "is: ignored, no TURN server from the environment"))
        return out
    out.server_var = server[0]
    try:
        out.url = normalize_turn(server[1], field=server[0])
    except IceUrlError as exc:
        out.issues.append(EnvIssue(server[0], mask_url_credentials(
            f"{exc.value!r} is not a valid TURN server: {exc.reason}; ignored, no TURN server from the environment")))
        return out
    out.origin = server[0]
    if user:
        out.username = user[1]
        out.origin += f", username from {user[0]}"
        out.issues += _credential_problems(user[0], user[1], "username")
    if cred:
        out.credential = cred[1]
        out.origin += f", credential from {cred[0]}"
        out.issues += _credential_problems(cred[0], cred[1], "password")
    if bool(user) != bool(cred):
        have, want = (user[0], "SANDRA_TURN_PASSWORD") if user else (cred[0], "SANDRA_TURN_USERNAME")
        out.issues.append(EnvIssue(have, f"set without {want} (or its REACT_APP_ twin): "
                                         "the TURN server cannot authenticate us"))
    return out


def read_realtime_url_env(env) -> tuple[str | None, list[EnvIssue]]:
    """SANDRA_REALTIME_URL checked as `[backend] realtime_url` is: (value or None, problems)."""
    value = env.get(REALTIME_URL_ENV, "").strip()
    if not value:
        return None, []
    try:
        return BackendConfig(realtime_url=value).realtime_url, []
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
        return None, [EnvIssue(REALTIME_URL_ENV, mask_url_credentials(f"{problem}; ignored"))]
