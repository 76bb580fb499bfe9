"""The ICE editor's working list, free of Textual so its rules are easy to test.

Validation is the config's own: `normalize_stun` for STUN and the `TurnServer` / `IceConfig`
models for the rest, so the editor accepts exactly what `config check` accepts. Servers from the
environment are kept as the very same `TurnServer` objects, read-only, and `to_toml_dict` leaves
them out of the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from sandra_tui.config.model import IceConfig, TurnServer
from sandra_tui.config.urls import IceUrlError, normalize_stun


class EntryError(ValueError):
    """A bad field: `field` is url, username, credential or "" (the list as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(eq=False)  # rows are compared by identity: two rows may hold the same URL while editing
class Row:
    kind: str  # stun | turn
    url: str
    username: str = ""
    credential: str = field(default="", repr=False)
    origin: str = "config"  # anything else: from the environment, read-only, never saved
    source: TurnServer | None = field(default=None, repr=False)
    status: str = ""  # the last probe's verdict

    @property
    def read_only(self) -> bool:
        return self.origin != "config"


def _pydantic_error(exc: ValidationError) -> EntryError:
    err = exc.errors(include_input=False)[0]
    loc = [part for part in err["loc"] if isinstance(part, str)]
    name = loc[-1] if loc else ""
    message = err["msg"].removeprefix("Value error, ")
    return EntryError(name if name in ("url", "username", "credential") else "", message)


def make_row(kind: str, url: str, username: str = "", credential: str = "") -> Row:
    """A validated row; raises EntryError naming the field at fault."""
    if kind == "stun":
        try:
            return Row("stun", normalize_stun(url, field="url"))
        except IceUrlError as exc:
            raise EntryError("url", str(exc)) from None
    if kind != "turn":
        raise EntryError("kind", f"{kind!r} is not stun or turn")
    try:
        server = TurnServer(url=url, username=username.strip(), credential=credential)
    except ValidationError as exc:
        raise _pydantic_error(exc) from None
    return Row("turn", server.url, server.username, server.credential.get_secret_value())


class IceList:
    def __init__(self, rows: list[Row], base: IceConfig) -> None:
        self.rows = rows
        self.base = base  # probe timeout, cache, relay fallback: kept as they are

    @classmethod
    def from_config(cls, ice: IceConfig) -> "IceList":
        rows = [Row("stun", url) for url in ice.stun]
        rows += [Row("turn", t.url, t.username, t.credential.get_secret_value(), t.origin, source=t)
                 for t in ice.turn]
        return cls(rows, ice)

    def _check_duplicate(self, row: Row, replacing: Row | None = None) -> None:
        for other in self.rows:
            if other is not replacing and (other.kind, other.url, other.username) == (row.kind, row.url, row.username):
                who = f" for user {row.username!r}" if row.username else ""
                raise EntryError("url", f"{row.url}{who} is already in the list")

    def add(self, row: Row) -> int:
        """STUN servers stay before TURN servers; returns the new row's index."""
        self._check_duplicate(row)
        same = [i for i, r in enumerate(self.rows) if r.kind == row.kind]
        index = same[-1] + 1 if same else (0 if row.kind == "stun" else len(self.rows))
        self.rows.insert(index, row)
        return index

    def replace(self, index: int, row: Row) -> int:
        old = self.rows[index]
        if old.read_only:
            raise EntryError("", f"{old.url} comes from the environment ({old.origin}): read-only here")
        self._check_duplicate(row, replacing=old)
        if row.kind == old.kind:
            self.rows[index] = row
            return index
        del self.rows[index]  # a STUN entry turned into TURN (or back) moves to its group
        return self.add(row)

    def remove(self, index: int) -> Row:
        row = self.rows[index]
        if row.read_only:
            raise EntryError("", f"{row.url} comes from the environment ({row.origin}); unset it there")
        return self.rows.pop(index)

    def move(self, index: int, delta: int) -> int:
        """Swap with the neighbour of the same kind; returns where the row is now."""
        target = index + delta
        if not 0 <= target < len(self.rows):
            return index
        row, other = self.rows[index], self.rows[target]
        if row.kind != other.kind:
            return index  # STUN and TURN are two lists; the order within each is what counts
        if row.read_only or other.read_only:
            raise EntryError("", "servers from the environment stay where they are")
        self.rows[index], self.rows[target] = other, row
        return target

    def to_config(self) -> IceConfig:
        """The whole list through the config model; raises EntryError."""
        turn = []
        for row in self.rows:
            if row.kind != "turn":
                continue
            if row.source is not None and row.read_only:
                turn.append(row.source)  # the same object: its origin marks it as not for the file
                continue
            try:
                turn.append(TurnServer(url=row.url, username=row.username, credential=row.credential))
            except ValidationError as exc:
                raise _pydantic_error(exc) from None
        try:
            return IceConfig(stun=[r.url for r in self.rows if r.kind == "stun"], turn=turn,
                             probe_timeout_ms=self.base.probe_timeout_ms, probe_cache_s=self.base.probe_cache_s,
                             relay_fallback=self.base.relay_fallback)
        except ValidationError as exc:
            raise _pydantic_error(exc) from None
