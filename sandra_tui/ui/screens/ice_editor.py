"""The STUN / TURN server editor: add, edit, remove, reorder, test, save.

The form edits the highlighted row; the last row ("new server") adds one. Every field goes
through the config's own validators, and an error is shown next to its field while the text
stays in place. "Test" runs the real ICE probe as a worker, so the screen stays live. "Save"
hands a validated IceConfig to the app, which writes the file and swaps the controller's
servers; if writing fails the editor stays open with everything in it.
"""

from __future__ import annotations

import logging
import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Select, Static

from sandra_tui.config.model import IceConfig
from sandra_tui.config.probe import ProbeTarget, probe_servers
from sandra_tui.ui.screens.ice_list import EntryError, IceList, Row, make_row

log = logging.getLogger(__name__)
NEW_ROW = "new"
MASK = "••••"


class IceEditor(ModalScreen[IceConfig | None]):
    # Not priority: an open Select list must get Esc first.
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+t", "test", "Test"),
        Binding("shift+up", "move(-1)", "Up", show=False),
        Binding("shift+down", "move(1)", "Down", show=False),
        Binding("delete", "remove", "Remove", show=False),
    ]

    def __init__(self, ice: IceConfig, save, probe=probe_servers) -> None:
        super().__init__(id="ice-editor")
        self.servers = IceList.from_config(ice)
        self.save_ice = save  # async (IceConfig) -> None; raises when the file cannot be written
        self.probe = probe
        self.timeout_s = ice.probe_timeout_ms / 1000
        self.current: Row | None = None  # the row in the form; None: the "new server" row
        self._kept = ""  # the row's credential while masked (the field itself stays empty)

    def compose(self) -> ComposeResult:
        with Vertical(id="ice-dialog", classes="dialog") as dialog:
            dialog.border_title = "ICE servers"
            dialog.border_subtitle = "Ctrl+S save · Ctrl+T test · Esc cancel"
            yield DataTable(id="ice-table", cursor_type="row")
            yield Static(id="ice-note")
            with Horizontal(classes="form-row"):
                yield Select([("STUN", "stun"), ("TURN", "turn")], value="stun", allow_blank=False,
                             compact=True, id="ice-kind")
                yield Input(placeholder="stun:host:port or turn:host:port?transport=udp", compact=True,
                            id="ice-url")
            yield Static(id="ice-url-error", classes="field-error")
            with Horizontal(classes="form-row"):
                yield Input(placeholder="TURN username", compact=True, id="ice-username")
                yield Input(placeholder="TURN credential", password=True, compact=True, id="ice-credential")
                yield Button("Show", compact=True, id="ice-reveal")
            yield Static(id="ice-turn-error", classes="field-error")
            with Horizontal(id="ice-buttons", classes="buttons"):
                yield Button("Apply", compact=True, id="ice-apply")
                yield Button("Remove", compact=True, id="ice-remove")
                yield Button("↑ Up", compact=True, id="ice-up")
                yield Button("↓ Down", compact=True, id="ice-down")
                yield Button("Test", compact=True, id="ice-test")
                yield Static(classes="spacer")
                yield Button("Save", compact=True, variant="primary", id="ice-save")
                yield Button("Cancel", compact=True, id="ice-cancel")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("kind", "server", "user", "secret", "test")
        self.rebuild(0, reload=True)
        table.focus()

    # -- the list ----------------------------------------------------------------------------
    def rebuild(self, cursor: int | None = None, reload: bool = False) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row if cursor is None else cursor
        table.clear()
        for i, row in enumerate(self.servers.rows):
            kind = row.kind + (" env" if row.read_only else "")
            table.add_row(kind, row.url, row.username, MASK if row.credential else "", self._status(row), key=str(i))
        table.add_row("+", Text("new server", style="italic"), "", "", "", key=NEW_ROW)
        table.move_cursor(row=max(0, min(cursor, len(self.servers.rows))))
        self.load(table.cursor_row, reload)

    @staticmethod
    def _status(row: Row) -> Text:
        if row.status.startswith("ok"):
            return Text(row.status, style="green")
        return Text(row.status, style="yellow" if row.status == "testing…" else "red")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        # Where the cursor is now, not where the event says: a rebuild posts stale highlights.
        self.load(self.query_one(DataTable).cursor_row)

    def load(self, index: int, reload: bool = False) -> None:
        """Put row `index` (or an empty form for the last row) into the form; a row already
        there is left alone, so a repaint (e.g. probe results) never wipes what is being typed."""
        row = self.servers.rows[index] if 0 <= index < len(self.servers.rows) else None
        if row is self.current and not reload:
            return
        self.current = row
        kind = row.kind if row else "stun"
        self.query_one("#ice-kind", Select).value = kind
        self.query_one("#ice-url", Input).value = row.url if row else ""
        self.query_one("#ice-username", Input).value = row.username if row else ""
        credential = self.query_one("#ice-credential", Input)
        # Masked, the field is empty and the credential kept aside: a password field would show
        # one bullet per character, and the length is a hint too. Typing replaces it; Show shows it.
        self._kept = "" if row is None or row.read_only else row.credential  # env secrets stay out
        credential.value = ""
        self._reveal(False)
        self._errors({})
        self._enable(kind, read_only=bool(row and row.read_only))
        note = ""
        if row and row.read_only:
            note = f"From the environment ({row.origin}): read-only here, never written to the file."
        self._note(note)

    def _enable(self, kind: str, read_only: bool) -> None:
        for selector in ("#ice-kind", "#ice-url", "#ice-apply", "#ice-remove", "#ice-up", "#ice-down"):
            self.query_one(selector).disabled = read_only
        for selector in ("#ice-username", "#ice-credential", "#ice-reveal"):
            self.query_one(selector).disabled = read_only or kind != "turn"

    def _note(self, text: str, style: str = "$text-muted") -> None:
        self.query_one("#ice-note", Static).update(Content.styled(text, style))

    def _errors(self, errors: dict[str, str]) -> None:
        url = errors.get("url", "") or errors.get("kind", "")
        other = errors.get("username", "") or errors.get("credential", "") or errors.get("", "")
        self.query_one("#ice-url-error", Static).update(url)
        self.query_one("#ice-turn-error", Static).update(other)

    # -- the form ----------------------------------------------------------------------------
    def _form_row(self) -> Row:
        return make_row(self.query_one("#ice-kind", Select).value, self.query_one("#ice-url", Input).value,
                        self.query_one("#ice-username", Input).value,
                        self._credential())

    def _credential(self) -> str:
        """What the credential is now: what is typed, else the one kept aside."""
        return self.query_one("#ice-credential", Input).value or self._kept

    def _form_changed(self) -> bool:
        url = self.query_one("#ice-url", Input).value.strip()
        if self.current is None:
            return bool(url)
        if self.current.read_only:
            return False
        return (self.query_one("#ice-kind", Select).value, url, self.query_one("#ice-username", Input).value.strip(),
                self._credential()) != \
            (self.current.kind, self.current.url, self.current.username, self.current.credential)

    @on(Select.Changed, "#ice-kind")
    def _kind_changed(self, event: Select.Changed) -> None:
        self._enable(str(event.value), read_only=bool(self.current and self.current.read_only))
        self._validate()

    @on(Input.Changed, "#ice-url, #ice-username, #ice-credential")
    def _field_changed(self, event: Input.Changed) -> None:
        if event.input.id == "ice-credential" and not event.input.password:
            self._kept = ""  # shown: the field holds the whole truth, emptied on purpose included
        if event.input.id == "ice-url":
            scheme = event.value.strip().partition(":")[0].lower()
            kind = {"stun": "stun", "turn": "turn", "turns": "turn"}.get(scheme)
            select = self.query_one("#ice-kind", Select)
            if kind and kind != select.value and not select.disabled:
                select.value = kind  # the scheme says which list it belongs to; Changed re-validates
                return
        self._validate()

    def _validate(self) -> None:
        """Inline: the config's verdict under the field, as the operator types."""
        if not self.query_one("#ice-url", Input).value.strip():
            self._errors({})
            return
        try:
            self._form_row()
        except EntryError as exc:
            self._errors({exc.field: exc.message})
        else:
            self._errors({})

    @on(Input.Submitted, "#ice-url, #ice-username, #ice-credential")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def action_apply(self) -> bool:
        """Form -> list (add on the last row, replace otherwise). False, with the error shown, if bad."""
        try:
            row = self._form_row()
            if self.current is None:
                index, done = self.servers.add(row), "Added"
            else:
                index, done = self.servers.replace(self.servers.rows.index(self.current), row), "Updated"
        except EntryError as exc:
            self._errors({exc.field: exc.message})
            return False
        self.rebuild(index, reload=True)
        self._note(f"{done} {row.url}. Ctrl+S saves.", "$success")
        return True

    def action_remove(self) -> None:
        index = self.query_one(DataTable).cursor_row
        if index >= len(self.servers.rows):
            return
        try:
            row = self.servers.remove(index)
        except EntryError as exc:
            self._note(exc.message, "$warning")
            return
        self.rebuild(index, reload=True)
        self._note(f"Removed {row.url}. Ctrl+S saves, Esc brings it back.", "$success")

    def action_move(self, delta: int) -> None:
        index = self.query_one(DataTable).cursor_row
        if index >= len(self.servers.rows):
            return
        try:
            moved = self.servers.move(index, delta)
        except EntryError as exc:
            self._note(exc.message, "$warning")
            return
        if moved != index:
            self.rebuild(moved)

    def _reveal(self, show: bool) -> None:
        field = self.query_one("#ice-credential", Input)
        if show and not field.value:
            kept, self._kept = self._kept, ""
            field.value = kept
        elif not show and field.value:
            self._kept, field.value = field.value, ""
        field.password = not show
        self.query_one("#ice-reveal", Button).label = "Hide" if show else "Show"
        read_only = bool(self.current and self.current.read_only)
        field.placeholder = ("set in the environment" if read_only else
                             f"{MASK} set (type to replace)" if self._kept else "TURN credential")

    # -- test, save, cancel ------------------------------------------------------------------
    def action_test(self) -> None:
        rows = list(self.servers.rows)
        if not rows:
            self._note("No servers to test.", "$warning")
            return
        for row in rows:
            row.status = "testing…"
        self.rebuild()
        self.query_one("#ice-test", Button).disabled = True
        targets = [ProbeTarget(r.url, r.username, r.credential) for r in rows]
        self.run_worker(self._run_probe(rows, targets), group="ice-probe", exclusive=True, exit_on_error=False)

    async def _run_probe(self, rows: list[Row], targets: list[ProbeTarget]) -> None:
        started = time.monotonic()
        try:
            results = await self.probe(targets, self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - a probe failure is a message, not a crash
            log.warning("ICE probe failed: %s", exc)
            for row in rows:
                row.status = "probe failed"
            self._note(f"The test could not run: {exc}", "$error")
        else:
            for row, result in zip(rows, results):
                row.status = f"ok {result.rtt_ms:.0f} ms" if result.reachable else result.error
            ok = sum(r.reachable for r in results)
            self._note(f"{ok}/{len(results)} reachable, tested in {(time.monotonic() - started) * 1000:.0f} ms.",
                       "$success" if ok == len(results) else "$warning")
        self.query_one("#ice-test", Button).disabled = False
        self.rebuild()

    async def action_save(self) -> None:
        if self._form_changed() and not self.action_apply():
            return  # the form's error is on screen; nothing written
        try:
            ice = self.servers.to_config()
        except EntryError as exc:
            self._errors({exc.field or "": exc.message})
            return
        try:
            await self.save_ice(ice)
        except Exception as exc:  # noqa: BLE001 - disk full, read-only dir: say so, keep the edits
            log.warning("saving the ICE servers failed: %s", exc)
            self.notify(f"Not saved: {exc}", title="ICE servers", severity="error", timeout=10)
            return
        self.dismiss(ice)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {"ice-apply": self.action_apply, "ice-remove": self.action_remove, "ice-test": self.action_test,
                   "ice-up": lambda: self.action_move(-1), "ice-down": lambda: self.action_move(1),
                   "ice-cancel": self.action_cancel,
                   "ice-reveal": lambda: self._reveal(self.query_one("#ice-credential", Input).password)}
        if event.button.id == "ice-save":
            self.run_worker(self.action_save(), group="ice-save", exclusive=True)
        elif event.button.id in actions:
            actions[event.button.id]()
