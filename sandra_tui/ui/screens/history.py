"""Call history (F9): past calls, newest first; Enter opens one's transcript; export; delete.

The store is read on a thread (SQLite under the user data dir): the call shares nothing with
this screen, but the UI loop should not wait on a disk either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import platformdirs
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from sandra_tui.call.call_log import CallRecord, clock_text, export
from sandra_tui.ui.screens.confirm import Confirm
from sandra_tui.ui.toasts import clean

log = logging.getLogger(__name__)
WHO = {"user": "You", "assistant": "Sandra", "tool": "Tool", "summary": "Call"}


def row_cells(c: CallRecord) -> tuple:
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.started_at))
    mos = "-" if c.mos_avg is None else f"{c.mos_avg:.1f} / {c.mos_min:.1f}"
    latency = "-" if c.latency_p50_ms is None else f"{c.latency_p50_ms:.0f} / {c.latency_p95_ms:.0f}"
    return (str(c.id), started, clock_text(c.duration_s), c.end_state, str(c.turns), str(c.reconnects),
            mos, latency, "REC" if c.recording else "")


class HistoryScreen(ModalScreen):
    BINDINGS = [Binding("escape", "close", "Close", priority=True),
                Binding("delete", "delete", "Delete"),
                Binding("ctrl+e", "export", "Export")]

    def __init__(self, store, export_dir: Path | None = None) -> None:
        super().__init__(id="history")
        self.store = store
        self.export_dir = export_dir or Path(platformdirs.user_data_dir("sandra-tui")) / "exports"
        self.calls: list[CallRecord] = []
        self.opened: CallRecord | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="history-dialog", classes="dialog") as dialog:
            dialog.border_title = "Call history"
            dialog.border_subtitle = "Enter open · Ctrl+E export · Del delete · Esc close"
            yield Static(id="history-note")
            table = DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("#", "started", "length", "end", "turns", "reconn", "MOS avg/min",
                              "p50/p95 ms", "")
            yield table
            with VerticalScroll(id="history-transcript"):
                yield Static(id="history-messages")

    async def on_mount(self) -> None:
        self.query_one("#history-transcript").display = False
        await self.reload()
        self.query_one(DataTable).focus()

    async def reload(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        note = self.query_one("#history-note", Static)
        if self.store is None:
            note.update(Content.styled("Call history is off ([history] save_calls = false).", "$text-muted"))
            return
        try:
            self.calls = await asyncio.to_thread(self.store.calls)
        except Exception as exc:  # noqa: BLE001 - a damaged or locked database: say so, stay usable
            log.exception("reading the call history failed")
            note.update(Content.styled(clean(f"Cannot read the call history: {exc}"), "$error"))
            return
        for c in self.calls:
            table.add_row(*row_cells(c), key=str(c.id))
        note.update(Content.styled(f"{len(self.calls)} call(s) in {self.store.path}" if self.calls
                                   else "No calls yet: they are saved when they end.", "$text-muted"))

    def highlighted(self) -> CallRecord | None:
        table = self.query_one(DataTable)
        if not self.calls or table.cursor_row is None or table.cursor_row >= len(self.calls):
            return None
        return self.calls[table.cursor_row]

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        await self.open(self.highlighted())

    async def open(self, call: CallRecord | None) -> None:
        if call is None:
            return
        record = await asyncio.to_thread(self.store.get, call.id)
        if record is None:
            return
        self.opened = record
        lines = [Content.styled(record.summary, "italic $text-muted")]
        for m in record.messages:
            status = f" ({m['status']})" if m.get("status") else ""
            lines.append(Content.assemble((f"{WHO.get(m['role'], m['role'])}  ", "bold"), clean(m["text"]),
                                          (status, "$text-muted")))
        self.query_one("#history-messages", Static).update(Content("\n").join(lines))
        self.query_one("#history-table").display = False
        pane = self.query_one("#history-transcript")
        pane.display = True
        pane.border_title = f"Call {record.id}"
        pane.focus()

    async def action_close(self) -> None:
        if self.opened is not None:  # Esc on a transcript goes back to the list
            self.opened = None
            self.query_one("#history-transcript").display = False
            table = self.query_one("#history-table")
            table.display = True
            table.focus()
            return
        self.dismiss()

    async def action_export(self) -> None:
        call = self.opened or self.highlighted()
        if call is None:
            return
        record = await asyncio.to_thread(self.store.get, call.id)
        target = self.export_dir / f"call-{record.id}.md"

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(export(record, "md") + "\n", encoding="utf-8")

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            self.notify(clean(f"Export failed: {exc}"), title="Call history", severity="error")
            return
        self.notify(f"Exported to {target}", title="Call history", timeout=6)

    def action_delete(self) -> None:
        call = self.opened or self.highlighted()
        if call is not None:
            self.app.push_screen(Confirm(f"Delete call {call.id} and its transcript?", "Delete", id="confirm-delete"),
                                 lambda yes: self._delete(call, yes))

    async def _delete(self, call: CallRecord, yes: bool | None) -> None:
        if not yes:
            return
        await asyncio.to_thread(self.store.delete, call.id)
        if self.opened is not None:
            await self.action_close()
        await self.reload()
        self.notify(f"Deleted call {call.id}", title="Call history", timeout=4)
