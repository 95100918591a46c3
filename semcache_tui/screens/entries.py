"""Entries: browse, search and delete what the cache holds; clear it all behind a typed confirmation."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Static

from engine.models import CacheEntry
from semcache_tui.formatting import describe_error, one_line
from semcache_tui.screens.base import PanelScreen
from semcache_tui.screens.dialogs import ConfirmDialog, EntryDialog, TypedConfirmDialog, if_yes

PAGE = 50


class EntriesScreen(PanelScreen):
    MODE = "entries"
    AUTO_FOCUS = "#entries"
    WRITES: ClassVar = frozenset({"delete", "clear"})
    BINDINGS: ClassVar = [
        Binding("slash", "focus_search", "Search", tooltip="Filter entries by text in the prompt"),
        Binding("r", "reload", "Reload", show=False, tooltip="Read the entries again"),
        Binding("n", "page(1)", "Next", tooltip="The next page of entries"),
        Binding("p", "page(-1)", "Prev", tooltip="The previous page of entries"),
        Binding("v", "view", "View", tooltip="Show the whole of the selected entry"),
        Binding("d", "delete", "Delete", tooltip="Delete the selected entry (y/n)"),
        Binding("C", "clear", "Clear all", tooltip="Delete every entry (type the index name to confirm)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.page_offset = 0
        self.total = 0
        self.entries: list[CacheEntry] = []
        self.loaded = False
        #: The filters last submitted with Enter (typing in a field does not filter until then).
        self.contains: str | None = None
        self.scope: str | None = None
        #: The physical index the rows were read from, and when.
        self.read_from: str | None = None
        self.read_at: float | None = None
        self.reloads = 0
        self.load_error: str | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Input(placeholder="/ search prompts (Enter)", id="contains")
            yield Input(placeholder="scope: all", id="scope-filter")
        yield DataTable(id="entries", cursor_type="row", zebra_stripes=True)
        yield Static("", id="entries-summary")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#entries", DataTable)
        table.add_columns("key", "scope", "prompt", "hits", "created", "expires")

    def refresh_data(self) -> None:
        """Read the rows again on every poll: they follow the active index and their ages stay true."""
        if self.read_from is not None and self.read_from != self.panel.index_name:
            self.page_offset = 0  # another index now: its first page, not a page of the old one
        self.loaded = True
        self.load()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.contains = self.query_one("#contains", Input).value.strip() or None
        self.scope = self.query_one("#scope-filter", Input).value.strip() or None
        self.page_offset = 0
        self.load()
        self.query_one("#entries", DataTable).focus()

    @work(exclusive=True, group="entries", exit_on_error=False, name="list entries")
    async def load(self) -> None:
        contains, scope, index = self.contains, self.scope, self.panel.index_name
        try:
            page = await self.panel.service.list_entries(
                offset=self.page_offset, limit=PAGE, scope=scope, contains=contains
            )
        except Exception as exc:
            # Shown in place, not as a toast: during an outage every poll would raise another one.
            self.load_error = self.panel.redact(describe_error(exc))
            self.show_summary()
            return
        self.load_error = None
        self.reloads += 1
        self.read_from, self.read_at = index, self.panel.probe.wall()
        self.entries, self.total = page.entries, page.total
        table = self.query_one("#entries", DataTable)
        row = table.cursor_row
        table.clear()
        probe = self.panel.probe
        for entry in page.entries:
            table.add_row(
                entry.key[:10],
                entry.scope,
                one_line(entry.prompt, 44),
                str(entry.hit_count),
                probe.age(entry.created_at),
                probe.until(entry.expires_at),
                key=entry.key,
            )
        if page.entries:
            table.move_cursor(row=min(max(row, 0), len(page.entries) - 1))
        self.show_summary()

    def show_summary(self) -> None:
        summary = self.query_one("#entries-summary", Static)
        if self.read_at is None:
            summary.update(Text(f"Cannot read the entries: {self.load_error}" if self.load_error else ""))
            return
        first = self.page_offset + 1 if self.entries else 0
        filters = " matching " + repr(self.contains) if self.contains else ""
        line = Text(
            f"{first}-{self.page_offset + len(self.entries)} of {self.total:,} entries{filters}"
            f" in {self.read_from} · as of {self.panel.probe.clock(self.read_at)} · r reloads"
        )
        if self.load_error:
            line.append(f" · STALE: cannot read the entries: {self.load_error}", style="bold")
        summary.update(line)

    def selected(self) -> CacheEntry | None:
        table = self.query_one("#entries", DataTable)
        if not self.entries or not 0 <= table.cursor_row < len(self.entries):
            return None
        return self.entries[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_view()

    def action_focus_search(self) -> None:
        self.query_one("#contains", Input).focus()

    def action_reload(self) -> None:
        self.load()

    def action_page(self, direction: int) -> None:
        offset = self.page_offset + direction * PAGE
        if offset < 0 or (direction > 0 and offset >= self.total):
            self.panel.set_status("No more pages that way")
            return
        self.page_offset = offset
        self.load()

    def action_view(self) -> None:
        entry = self.selected()
        if entry is not None:
            probe = self.panel.probe
            self.app.push_screen(
                EntryDialog(entry, (probe.age(entry.created_at), probe.until(entry.expires_at)))
            )

    def action_delete(self) -> None:
        if self.refused("deleting an entry"):
            return
        entry = self.selected()
        if entry is None:
            self.panel.set_status("Select an entry to delete first", "warning")
            return

        self.app.push_screen(
            ConfirmDialog(f"Delete this entry?\n\n{one_line(entry.prompt, 200)}"), if_yes(self.delete, entry)
        )

    @work(exclusive=True, group="entries-write", exit_on_error=False, name="delete")
    async def delete(self, entry: CacheEntry) -> None:
        deleted = await self.panel.service.delete(entry.key)
        self.panel.set_status("Entry deleted" if deleted else "The entry was already gone")
        self.load()
        self.panel.poll_now()

    def action_clear(self) -> None:
        if self.refused("clearing the index"):
            return
        self.ask_clear()

    @work(exclusive=True, group="entries-write", exit_on_error=False, name="clear")
    async def ask_clear(self) -> None:
        """The prompt quotes a count read now, from the index served now, not the rows on screen."""
        page = await self.panel.service.list_entries(offset=0, limit=1)
        message = (
            f"Delete every entry of index {self.panel.describe_index()} ({page.total:,} entries now)?\n"
            "This cannot be undone. The index stays, bound to the same embedder."
        )
        self.app.push_screen(TypedConfirmDialog(message, self.panel.logical_index), if_yes(self.clear))

    @work(exclusive=True, group="entries-write", exit_on_error=False, name="clear")
    async def clear(self) -> None:
        removed = await self.panel.service.clear()
        self.panel.set_status(f"Cleared {removed:,} entries from {self.panel.describe_index()}")
        self.page_offset = 0
        self.load()
        self.panel.poll_now()
