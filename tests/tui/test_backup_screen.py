"""Backup screen: create -> listed -> import and restore round trip, errors in place, read-only refusal;
against the real embedded store and the bundled model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Input

from engine.cache import SemanticCache
from semcache_tui.screens.backup import BackupScreen
from semcache_tui.screens.dialogs import ConfirmDialog, InputDialog, TypedConfirmDialog
from tests.tui.conftest import SIZE, settle, text_of, wait_for


async def answer(pilot: Any, value: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, InputDialog))
    app.screen.query_one("#answer", Input).value = value
    await pilot.press("enter")


async def idle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_create_list_import_and_restore(
    filled_cache: SemanticCache, make_app: Any, settings: Any
) -> None:
    total = await filled_cache.vector_store.count()
    app = make_app(filled_cache)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        screen = app.screen
        assert isinstance(screen, BackupScreen)
        await wait_for(pilot, lambda: screen.loaded)
        assert screen.backups == []
        await pilot.press("c")
        await wait_for(pilot, lambda: len(screen.backups) == 1)
        await idle(pilot)
        backup = screen.backups[0]
        assert backup.path.parent == settings.resolved_backup_dir and backup.size > 0
        assert screen.query_one("#backups", DataTable).row_count == 1
        assert backup.path.name in text_of(app, "#backups")
        assert f"{total:,} entries" in text_of(app, "#backup-progress-text")

        # Import into an emptied cache: every entry comes back.
        await filled_cache.clear()
        await pilot.press("i")
        await answer(pilot, str(backup.path))
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: "imported" in app.status_message.lower())
        await idle(pilot)
        assert await filled_cache.vector_store.count() == total

        # Restore the selected backup behind the typed index name.
        await filled_cache.clear()
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, TypedConfirmDialog))
        await pilot.press(*"panel", "enter")
        await wait_for(pilot, lambda: app.screen is screen and "imported" in app.status_message.lower())
        await idle(pilot)
        assert await filled_cache.vector_store.count() == total

        # A missing file is refused in the dialog, before anything is asked; a file that is not an export
        # is refused in place after reading its header. The app keeps running.
        await pilot.press("i")
        await answer(pilot, str(Path(settings.data_dir) / "missing.jsonl.gz"))
        await idle(pilot)
        assert isinstance(app.screen, InputDialog)
        assert "is not a file" in " ".join(text_of(app, "#problem").split())
        await pilot.press("escape")
        bogus = Path(settings.data_dir) / "bogus.jsonl.gz"
        bogus.write_text("not an export")
        await pilot.press("i")
        await answer(pilot, str(bogus))
        await idle(pilot)
        assert app.screen is screen
        assert "import refused" in text_of(app, "#backup-error")


async def test_export_to_a_path(filled_cache: SemanticCache, make_app: Any, tmp_path: Path) -> None:
    app = make_app(filled_cache)
    target = tmp_path / "out" / "export.jsonl.gz"
    target.parent.mkdir()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7", "e")
        await answer(pilot, str(target))
        await wait_for(pilot, lambda: "Exported" in app.status_message)
        await idle(pilot)
        assert target.exists() and target.stat().st_size > 0


async def test_read_only_refuses_backup_writes(
    filled_cache: SemanticCache, make_app: Any, settings: Any
) -> None:
    app = make_app(filled_cache, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded)
        for action in ("create", "export", "import_file", "prune", "restore"):
            assert screen.check_action(action, ()) is None
        await pilot.press("c", "x", "i")
        await idle(pilot)
        assert app.screen is screen
        await app.run_screen_action("backup", "create")
        assert "Refused" in app.status_message
        assert not settings.resolved_backup_dir.exists() or not list(settings.resolved_backup_dir.iterdir())
