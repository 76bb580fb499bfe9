"""Finding, reading, checking and atomically writing the config file; env overrides for TURN."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
from pydantic import ValidationError

from sandra_tui import secrets
from sandra_tui.config.model import Config, TurnServer
from sandra_tui.config.paths import config_path
from sandra_tui.config.urls import IceUrlError, mask_url_credentials, normalize_turn

TURN_ENV = {
    "server": ("SANDRA_TURN_SERVER", "REACT_APP_TURN_SERVER"),
    "username": ("SANDRA_TURN_USERNAME", "REACT_APP_TURN_USERNAME"),
    "credential": ("SANDRA_TURN_PASSWORD", "REACT_APP_TURN_PASSWORD"),
}
HEADER = (
    "# sandra-tui configuration. Written by sandra-tui; comments are not kept.\n"
    "# It may hold TURN credentials: keep it private (mode 0600).\n"
)


@dataclass
class ConfigIssue:
    """One problem in a config file, placed as precisely as we can."""

    path: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass
class LoadedConfig:
    config: Config
    path: Path
    exists: bool
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where it came from
    warnings: list[str] = field(default_factory=list)
    quarantined: Path | None = None


# -- reading ---------------------------------------------------------------------------------

def parse_config(text: str, path: Path) -> Config:
    """Parse and validate; raise ConfigError with file/line/field for every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(match.group(1)) if match else None
        if line is None and "end of document" in str(exc):
            line = max(1, len(text.splitlines()))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError([ConfigIssue(path, line, "", f"TOML syntax error: {message}")]) from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(text)
        raise ConfigError([_issue_from(err, path, lines) for err in exc.errors(include_input=False)]) from None


def _loc_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _issue_from(err: dict, path: Path, lines: dict[tuple, int]) -> ConfigIssue:
    loc = tuple(err["loc"])
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, IceUrlError):
        index = re.search(r"\[(\d+)\]$", cause.field)
        if index:
            loc = loc + (int(index.group(1)),)
        message = mask_url_credentials(f"{cause.value!r}: {cause.reason}")
    else:
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting (typo?)"
    line = None
    for cut in range(len(loc), 0, -1):
        line = lines.get(loc[:cut])
        if line:
            break
    return ConfigIssue(path, line, _loc_text(loc), mask_url_credentials(message))


def _key_lines(text: str) -> dict[tuple, int]:
    """Map table/key paths to line numbers, good enough to point at the culprit."""
    found: dict[tuple, int] = {}
    table: tuple = ()
    array_counts: dict[tuple, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            name = tuple(p.strip().strip('"') for p in line.strip("[] ").split("."))
            index = array_counts.get(name, -1) + 1
            array_counts[name] = index
            table = name + (index,)
            found.setdefault(name, number)
            found[table] = number
        elif line.startswith("["):
            table = tuple(p.strip().strip('"') for p in line.split("#")[0].strip().strip("[] ").split("."))
            found[table] = number
        else:
            key, sep, _ = line.partition("=")
            if sep:
                parts = tuple(p.strip().strip('"') for p in key.split("."))
                found[table + parts] = number
    return found


def _free_bad_name(path: Path) -> Path:
    """`<name>.bad-<timestamp>` beside `path`, numbered when taken."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
        n += 1
    return target


def _quarantine(path: Path) -> Path:
    target = _free_bad_name(path)
    os.replace(path, target)
    return target


def parse_config_lenient(text: str, path: Path) -> tuple[Config, list[ConfigIssue]]:
    """Like parse_config, but a bad setting costs only itself: it is dropped (a bad [[ice.turn]]
    entry, that entry) and the rest of the file, TURN credentials included, still applies.
    Raises ConfigError only when the file is not TOML at all."""
    try:
        return parse_config(text, path), []
    except ConfigError as first:
        if any(not issue.field and "TOML syntax" in issue.message for issue in first.issues):
            raise
        issues = first.issues
    data = tomllib.loads(text)
    for _ in range(MAX_DROPS):
        try:
            return Config.model_validate(data), issues
        except ValidationError as exc:
            err = exc.errors(include_input=False)[0]
            if not _drop(data, _error_loc(err)):
                break
    return Config(), issues


MAX_DROPS = 50  # one per bad setting; a file with more is not worth saving piecemeal


def _error_loc(err: dict) -> tuple:
    loc = tuple(err["loc"])
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, IceUrlError):
        index = re.search(r"\[(\d+)\]$", cause.field)
        if index:
            loc = loc + (int(index.group(1)),)
    return loc


def _drop(data, loc: tuple) -> bool:
    """Remove what `loc` points at; a missing field takes its parent entry with it."""
    if not loc:
        return False
    parent = data
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return _drop(data, loc[:-1])
    last = loc[-1]
    try:
        del parent[last]
    except (KeyError, IndexError, TypeError):
        return _drop(data, loc[:-1])
    return True


def _backup(path: Path) -> Path:
    """A copy of the file as it was, next to it (the original stays in place)."""
    target = _free_bad_name(path)
    shutil.copy2(path, target)
    os.chmod(target, 0o600)
    return target


def load_config(path: str | os.PathLike | None = None, *, quarantine: bool = True,
                env: dict[str, str] | None = None) -> LoadedConfig:
    """Load the config. A bad setting is left out (the rest applies) and reported; a file that
    is not TOML at all means defaults. With `quarantine` (the TUI, which may save the config
    later) a bad file is first kept aside, never overwritten: a copy when the rest of it is
    used, a rename when none of it is. Read-only commands pass quarantine=False: they never
    move or write a file."""
    target = config_path(path)
    env = os.environ if env is None else env
    warnings: list[str] = []
    moved = None
    config = Config()
    exists = target.exists()
    if exists:
        try:
            config, issues = parse_config_lenient(target.read_text(encoding="utf-8"), target)
        except (ConfigError, UnicodeDecodeError, OSError) as exc:
            detail = str(exc) if isinstance(exc, ConfigError) else f"{target}: cannot read: {exc}"
            if quarantine and not isinstance(exc, PermissionError):
                moved = _quarantine(target)
                warnings.append(f"config is invalid, kept as {moved}; using defaults:\n{detail}")
            else:
                warnings.append(f"config is invalid; using defaults:\n{detail}")
            config = Config()
        else:
            if issues:
                detail = "\n".join(str(i) for i in issues)
                if quarantine:
                    with contextlib.suppress(OSError):
                        moved = _backup(target)
                kept = f" (a copy of the file kept as {moved})" if moved else ""
                warnings.append(f"config has {len(issues)} bad setting(s), left out{kept}; "
                                f"the rest applies:\n{detail}")
    loaded = LoadedConfig(config, target, exists, warnings=[mask_url_credentials(w) for w in warnings],
                          quarantined=moved)
    loaded.sources["ice.turn"] = "config" if config.ice.turn else "none"
    _apply_turn_env(loaded, env)
    _apply_backend_env(loaded, env)
    return loaded


def _apply_backend_env(loaded: LoadedConfig, env) -> None:
    """SANDRA_REALTIME_URL overrides `[backend] realtime_url`."""
    value = env.get("SANDRA_REALTIME_URL", "").strip()
    if not value:
        return
    try:
        loaded.config.backend.realtime_url = value
        loaded.sources["backend.realtime_url"] = "environment (SANDRA_REALTIME_URL)"
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        problem = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        loaded.warnings.append(f"ignoring SANDRA_REALTIME_URL: {problem}")


def _apply_turn_env(loaded: LoadedConfig, env) -> None:
    """SANDRA_TURN_* (or the guide's REACT_APP_TURN_*) put one TURN server first in the list."""
    picked: dict[str, tuple[str, str]] = {}
    for key, names in TURN_ENV.items():
        for name in names:
            value = env.get(name)
            if value:
                picked[key] = (name, value)
                break
    if "credential" in picked:
        secrets.register(picked["credential"][1])
    if "server" not in picked:
        if picked:
            names = ", ".join(name for name, _ in picked.values())
            loaded.warnings.append(f"{names} set without SANDRA_TURN_SERVER/REACT_APP_TURN_SERVER: ignored")
        return
    server_var, server = picked["server"]
    try:
        url = normalize_turn(server, field=server_var)
    except IceUrlError as exc:
        loaded.warnings.append(mask_url_credentials(f"ignoring TURN server from the environment: {exc}"))
        return
    entry = TurnServer(
        url=url,
        username=picked.get("username", ("", ""))[1],
        credential=picked.get("credential", ("", ""))[1],
    )
    origin = server_var
    if "username" in picked:
        origin += f", username from {picked['username'][0]}"
    if "credential" in picked:
        origin += f", credential from {picked['credential'][0]}"
    entry._origin = origin
    loaded.config.ice.turn = [entry] + [t for t in loaded.config.ice.turn if t.url != url or t.origin != "config"]
    loaded.sources["ice.turn"] = f"environment ({server_var})"


# -- writing ---------------------------------------------------------------------------------

def save_config(config: Config, path: str | os.PathLike | None = None) -> Path:
    """Write atomically: temp file (0600) in the same folder, fsync, rename, fsync the folder."""
    target = config_path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = HEADER + tomli_w.dumps(config.to_toml_dict())
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target
