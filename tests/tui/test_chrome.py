"""The chrome every screen shares: where am I (store kind, path or URL, index, READ-ONLY) stays in sight at
80 and 100 columns, on the embedded store and on Redis (the ``--server`` form: tests/tui/test_remote_panel.py),
and a disabled key stays distinguishable without colour (NO_COLOR)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from textual.filter import NoColor
from textual.widgets._footer import FooterKey

from engine.cache import CachePolicy, SemanticCache
from engine.config import Settings
from engine.stores.redis import RedisStore
from semcache_tui.app import SemcacheApp
from semcache_tui.formatting import fit_url
from semcache_tui.monitor import FrozenProbe
from semcache_tui.screens import NAV
from tests.tui.conftest import fill, screen_text, settle


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


async def test_where_am_i_on_redis_at_80_columns(
    redis_server_factory: Any, embedder: Any, tmp_path: Path
) -> None:
    """At 80 columns the Redis URL keeps its scheme, host and port (the credentials go first), and its
    password never shows; the kind, the index and READ-ONLY stay too, on every screen."""
    password = "pw-" + uuid.uuid4().hex
    server = redis_server_factory(password=password)
    assert password in server.url
    settings = Settings(data_dir=tmp_path / "data", index_name="semantic_cache", redis_url=server.url)
    cache = SemanticCache(RedisStore(server.url, name="semantic_cache"), embedder, CachePolicy())
    await fill(cache, [("What is the capital of France?", "Paris.")])
    app = SemcacheApp(
        cache, settings, read_only=True, probe=FrozenProbe(), refresh_interval=60.0, close_service=False
    )
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert app.started
            for item in NAV:
                await pilot.press(item.key)
                await settle(pilot)
                top = screen_text(app).split("\n")[0]
                assert len(top) <= 80, top
                assert item.label in top, (item.label, top)
                assert f" redis redis://127.0.0.1:{server.port} · semantic_cache READ-ONLY" in top, top
                assert password not in top and "***" not in top, top
                assert password not in screen_text(app), item.label
    finally:
        await cache.close()


@pytest.mark.parametrize(
    ("url", "width", "expected"),
    [
        ("redis://127.0.0.1:6379", 22, "redis://127.0.0.1:6379"),  # fits: whole
        ("redis://:***@127.0.0.1:6379", 25, "redis://127.0.0.1:6379"),  # the credentials go first
        # then the query (TLS file names), then the middle of the host: the scheme and the port stay
        (
            "rediss://cache:***@host.example.com:6380/0?ssl_ca_certs=/etc/ssl/ca.pem",
            40,
            "rediss://host.example.com:6380/0",
        ),
        (
            "rediss://cache:***@host.example.com:6380/0?ssl_ca_certs=/x.pem",
            30,
            "rediss://host.examp…com:6380/0",
        ),
        (
            "rediss://default:***@redis-12345.c1.eu-west-1.cloud.example.com:12345",
            40,
            "rediss://redis-12345.c1.…ample.com:12345",
        ),
        (
            "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster",
            45,
            "redis+sentinel://10.0.0.1:263…:26379/mymaster",
        ),
        ("http://127.0.0.1:8000", 15, None),  # fewer than 8 cells after the scheme: dropped by the caller
    ],
)
def test_fit_url_keeps_scheme_and_port(url: str, width: int, expected: str | None) -> None:
    fitted = fit_url(url, width)
    assert fitted == expected
    assert fitted is None or len(fitted) <= width
