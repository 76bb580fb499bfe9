"""Finding, reading, checking and atomically writing the config file; env overrides applied."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
from pydantic import ValidationError

from sandra_tui.config.env import REALTIME_URL_ENV, EnvIssue, mask_url_credentials, read_realtime_url_env, read_turn_env
from sandra_tui.config.model import Config, TurnServer
from sandra_tui.config.paths import APP_NAME, config_path  # noqa: F401 - re-exported
from sandra_tui.config.tempfiles import remove_stale_temps, write_private
from sandra_tui.config.urls import IceUrlError

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

    def to_dict(self) -> dict:
        return {"source": "file", "path": str(self.path), "line": self.line, "field": self.field,
                "message": self.message}


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
    env_issues: list[EnvIssue] = field(default_factory=list)  # also in `warnings`, as text


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
    move or write the file. Either way, temp files a killed save left beside it are removed."""
    target = config_path(path)
    env = os.environ if env is None else env
    remove_stale_temps(target)  # what a save killed mid-write left (it may hold TURN credentials)
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
    _apply_env(loaded, env)
    return loaded


def _apply_env(loaded: LoadedConfig, env) -> None:
    """SANDRA_TURN_* (or REACT_APP_TURN_*) put one TURN server first in the list;
    SANDRA_REALTIME_URL overrides `[backend] realtime_url`. Problems become warnings."""
    turn = read_turn_env(env)
    realtime_url, realtime_issues = read_realtime_url_env(env)
    loaded.env_issues = turn.issues + realtime_issues
    loaded.warnings += [str(issue) for issue in loaded.env_issues]
    if turn.url:
        entry = TurnServer(url=turn.url, username=turn.username, credential=turn.credential)
        entry._origin = turn.origin
        loaded.config.ice.turn = [entry] + [t for t in loaded.config.ice.turn
                                            if t.url != turn.url or t.origin != "config"]
        loaded.sources["ice.turn"] = f"environment ({turn.server_var})"
    if realtime_url:
        loaded.config.backend.realtime_url = realtime_url
        loaded.sources["backend.realtime_url"] = f"environment ({REALTIME_URL_ENV})"


# -- writing ---------------------------------------------------------------------------------

def save_config(config: Config, path: str | os.PathLike | None = None) -> Path:
    """Write atomically (tempfiles.write_private); the folder is made 0700 when missing."""
    target = config_path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(target, (HEADER + tomli_w.dumps(config.to_toml_dict())).encode("utf-8"))
    return target
