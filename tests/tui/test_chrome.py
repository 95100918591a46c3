"""The chrome every screen shares: where am I (store kind, path, index, READ-ONLY) stays in sight at 80 and
100 columns, and a disabled key stays distinguishable without colour (NO_COLOR)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.filter import NoColor
from textual.widgets._footer import FooterKey

from engine.cache import SemanticCache
from semcache_tui.screens import NAV
from tests.tui.conftest import screen_text, settle


@pytest.mark.parametrize("size", [(80, 24), (100, 30)])
async def test_where_am_i_on_every_screen(
    filled_cache: SemanticCache, make_app: Any, size: tuple[int, int]
) -> None:
    app = make_app(filled_cache, read_only=True)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for item in NAV:
            await pilot.press(item.key)
            await settle(pilot)
            top = screen_text(app).split("\n")[0]
            assert len(top) <= size[0]
            assert "embedded" in top, (item.label, top)
            assert "· panel" in top, (item.label, top)
            assert "READ-ONLY" in top, (item.label, top)
            assert item.label in top, (item.label, top)  # the current screen keeps its name
            assert "data" in top, (item.label, top)  # the end of the store's path
            footer = " ".join(screen_text(app).split("\n")[-1].split())
            # The keys that matter on every screen stay in the footer: help and quit.
            assert "? Keys" in footer and "q Q" in footer, (item.label, footer)


async def test_disabled_keys_without_colour(
    filled_cache: SemanticCache, make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(filled_cache, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.no_color
        await pilot.press("4")  # Entries: delete and clear are writes, refused read-only
        await settle(pilot)
        keys = list(app.screen.query(FooterKey))
        disabled = [key for key in keys if key.has_class("-disabled")]
        enabled = [key for key in keys if not key.has_class("-disabled")]
        assert disabled and enabled

        def struck(key: FooterKey) -> bool:
            segments = NoColor().apply(list(key.render_line(0)), app.screen.styles.background)
            return any(s.style is not None and s.style.strike for s in segments if s.text.strip())

        assert all(struck(key) for key in disabled), [k.description for k in disabled]
        assert not any(struck(key) for key in enabled)
