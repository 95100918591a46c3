"""Backup: the backups folder (size and age), create, export, import, prune and restore, with progress.

The engine does the work (``engine/backup/``, the same calls as ``semcache-tui backup``); the folder is
the settings' ``resolved_backup_dir``. Every action but reading the list is refused in read-only mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.backup import (
    BackupFile,
    create_backup,
    export_entries,
    import_entries,
    list_backups,
    prune_backups,
    read_header,
)
from semcache_tui.formatting import age, describe_error, size
from semcache_tui.screens.dialogs import ConfirmDialog, InputDialog, TypedConfirmDialog, if_yes
from semcache_tui.screens.local_work import LocalWorkScreen


def check_days(text: str) -> str | None:
    """Checked in the dialog, before any confirmation: the engine keeps at least one day."""
    if not text.strip().isdigit():
        return "A whole number of days, 1 or more"
    return None if int(text) >= 1 else "Keep at least 1 day (delete backups by hand to remove them all)"


def check_export_path(text: str) -> str | None:
    """Checked in the dialog, before the export starts: a path whose folder exists, not a folder."""
    if not text.strip():
        return "Type the path of the file to write"
    path = Path(text.strip()).expanduser()
    if path.is_dir():
        return f"{path} is a folder: add a file name, e.g. {path / 'export.jsonl.gz'}"
    if not path.parent.is_dir():
        return f"The folder {path.parent} does not exist: create it first or choose another path"
    return None


def check_import_path(text: str) -> str | None:
    if not text.strip():
        return "Type the path of the file to load"
    path = Path(text.strip()).expanduser()
    return None if path.is_file() else f"{path} is not a file"


class BackupProgressed(Message):
    """Posted by an export's or import's progress callback (thread-safe)."""

    def __init__(self, verb: str, done: int, total: int) -> None:
        super().__init__()
        self.verb, self.done, self.total = verb, done, total


class BackupScreen(LocalWorkScreen):
    MODE = "backup"
    REMOTE_NOTE = (
        "Backups work on the store itself: this panel is attached to a server.\n"
        "Run the panel (or `semcache-tui backup`) with --store/--redis-url on the cache's own store."
    )
    AUTO_FOCUS = "#backups"
    WRITES: ClassVar = frozenset({"create", "export", "import_file", "prune", "restore"})
    BINDINGS: ClassVar = [
        Binding("r", "reload", "Reload", tooltip="Read the backups folder again"),
        Binding("c", "create", "Create", tooltip="Write a backup into the backups folder"),
        Binding("e", "export", "Export…", tooltip="Write an export to a path you type"),
        Binding("i", "import_file", "Import…", tooltip="Load an export from a path you type (y/n)"),
        Binding("x", "prune", "Prune…", tooltip="Delete backups older than N days (y/n)"),
        Binding("R", "restore", "Restore", tooltip="Load the selected backup (type the index name)"),
    ]
    DEFAULT_CSS = """
    #backups { height: 1fr; }
    #backup-summary { height: auto; padding: 0 1; color: $text-muted; }
    #backup-progress-row { height: auto; padding: 0 1; }
    #backup-progress-text { width: 1fr; padding: 0 1; }
    #backup-error { height: auto; padding: 0 1; color: $error; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.backups: list[BackupFile] = []
        self.loaded = False

    def compose_body(self) -> ComposeResult:
        yield Static("", id="backup-summary")
        yield DataTable(id="backups", cursor_type="row", zebra_stripes=True)
        yield from self.compose_progress()
        yield from self.compose_error()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#backups", DataTable).add_columns("name", "kind", "size", "age")

    @property
    def folder(self) -> Path:
        return self.panel.settings.resolved_backup_dir

    def refresh_data(self) -> None:
        """The folder is read again on every poll, so sizes and ages stay true."""
        self.loaded = True
        self.load()

    # -- the list --------------------------------------------------------------------------------------

    def load(self) -> None:
        summary = self.query_one("#backup-summary", Static)
        if self.cache is None:
            summary.update(self.remote_note())
            return
        table = self.query_one("#backups", DataTable)
        row = table.cursor_row
        table.clear()
        try:
            self.backups = list_backups(self.folder)
        except OSError as exc:
            self.backups = []
            self.show_error(f"cannot read {self.folder}: {exc}")
        now = self.panel.probe.wall()
        for backup in self.backups:
            table.add_row(
                backup.path.name,
                backup.kind,
                size(backup.size),
                age(backup.age_seconds(now)),
                key=str(backup.path),
            )
        if self.backups:
            table.move_cursor(row=min(max(row, 0), len(self.backups) - 1))
        count = f"{len(self.backups)} backups" if self.backups else "no backups yet: c creates one"
        summary.update(Text(f"{count} in {self.folder} · newest first · as of {self.panel.probe.clock(now)}"))

    def selected(self) -> BackupFile | None:
        table = self.query_one("#backups", DataTable)
        if not self.backups or not 0 <= table.cursor_row < len(self.backups):
            return None
        return self.backups[table.cursor_row]

    def action_reload(self) -> None:
        self.load()

    # -- progress and errors ---------------------------------------------------------------------------

    def reporter(self, verb: str) -> Any:
        def report(done: int, total: int) -> None:
            self.post_message(BackupProgressed(verb, done, total))

        return report

    def on_backup_progressed(self, message: BackupProgressed) -> None:
        self.show_progress(message.done, message.total, f"{message.verb} {message.done:,}/{message.total:,}")

    def end_progress(self, text: str) -> None:
        self.show_progress(1, 1, text)

    def work_failed(self) -> None:
        self.stop_progress("failed (see below)")

    def source(self) -> str | None:
        settings = self.panel.settings
        return settings.safe_redis_url if settings.store_kind == "redis" else None

    # -- create and export -----------------------------------------------------------------------------

    def action_create(self) -> None:
        if self.refused("creating a backup"):
            return
        self.create()

    @work(exclusive=True, group="backup", exit_on_error=False, name="create backup")
    async def create(self) -> None:
        cache = self.local_cache()
        self.begin_progress("exporting…")
        summary = await create_backup(
            cache, self.folder, progress=self.reporter("exported"), source=self.source()
        )
        self.end_progress(f"wrote {summary.path.name}: {summary.count:,} entries, {size(summary.bytes)}")
        self.panel.set_status(f"Backup written: {summary.path}")
        self.load()

    def action_export(self) -> None:
        if self.refused("exporting"):
            return

        def done(value: object) -> None:
            if isinstance(value, str) and value.strip():
                path = Path(value.strip()).expanduser()
                if path.exists():
                    self.app.push_screen(
                        ConfirmDialog(f"{path} exists. Overwrite it?"),
                        if_yes(self.export, path),
                    )
                else:
                    self.export(path)

        self.app.push_screen(
            InputDialog("Export to a file", placeholder="/path/to/export.jsonl.gz", check=check_export_path),
            done,
        )

    @work(exclusive=True, group="backup", exit_on_error=False, name="export")
    async def export(self, path: Path) -> None:
        cache = self.local_cache()
        self.begin_progress("exporting…")
        summary = await export_entries(
            cache, path, include_vectors=False, progress=self.reporter("exported"), source=self.source()
        )
        self.end_progress(f"wrote {summary.path}: {summary.count:,} entries, {size(summary.bytes)}")
        self.panel.set_status(f"Exported {summary.count:,} entries to {summary.path}")
        self.load()

    # -- import and restore ----------------------------------------------------------------------------

    def action_import_file(self) -> None:
        if self.refused("importing"):
            return

        def done(value: object) -> None:
            if not (isinstance(value, str) and value.strip()):
                return
            path = Path(value.strip()).expanduser()
            try:
                header = read_header(path)  # a bad file is refused before anyone is asked anything
            except Exception as exc:
                self.show_error(f"import refused: {describe_error(exc)}")
                return
            question = (
                f"Import {path.name} ({header.get('count', '?')} entries) into index "
                f"{self.panel.index_name}? Entries already there are updated, never duplicated."
            )
            self.app.push_screen(ConfirmDialog(question), if_yes(self.import_path, path))

        self.app.push_screen(
            InputDialog(
                "Import from a file", placeholder="/path/to/export.jsonl.gz", check=check_import_path
            ),
            done,
        )

    def action_restore(self) -> None:
        if self.refused("restoring a backup"):
            return
        backup = self.selected()
        if backup is None:
            self.panel.set_status("Select a backup to restore first", "warning")
            return
        if backup.kind != "export":
            self.panel.set_status(
                "An RDB snapshot is restored by Redis itself: `semcache-tui backup restore --rdb`", "warning"
            )
            return
        try:
            header = read_header(backup.path)
        except Exception as exc:
            self.show_error(f"restore refused: {describe_error(exc)}")
            return
        name = self.panel.index_name
        message = (
            f"Restore {backup.path.name} ({header.get('count', '?')} entries) and merge it into index "
            f"{name}?\nEntries with the same prompt are overwritten by the backup's."
        )

        self.app.push_screen(TypedConfirmDialog(message, name), if_yes(self.import_path, backup.path))

    @work(exclusive=True, group="backup", exit_on_error=False, name="import")
    async def import_path(self, path: Path) -> None:
        cache = self.local_cache()
        self.begin_progress("importing…")
        summary = await import_entries(cache, path, progress=self.reporter("imported"))
        text = (
            f"imported {summary.written:,} of {summary.total:,} entries from {path.name}; "
            f"{summary.expired:,} expired skipped"
        )
        self.end_progress(text)
        self.panel.set_status(text[:1].upper() + text[1:])  # the file's name keeps its case
        self.panel.poll_now()

    # -- prune -----------------------------------------------------------------------------------------

    def action_prune(self) -> None:
        if self.refused("pruning backups"):
            return

        def confirm(value: object) -> None:
            if not isinstance(value, str) or check_days(value):
                return
            days = int(value.strip())
            now = self.panel.probe.wall()
            old = [b for b in self.backups if b.age_seconds(now) > days * 86400]
            self.app.push_screen(
                ConfirmDialog(
                    f"Delete the backups older than {days} days in {self.folder}? "
                    f"({len(old)} of those listed)"
                ),
                if_yes(self.prune, days),
            )

        self.app.push_screen(
            InputDialog("Keep backups of the last N days", value="30", check=check_days), confirm
        )

    @work(exclusive=True, group="backup", exit_on_error=False, name="prune")
    async def prune(self, days: int) -> None:
        deleted = prune_backups(self.folder, days)
        self.panel.set_status(f"Pruned {len(deleted)} backups older than {days} days")
        self.load()
