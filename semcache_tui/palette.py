"""The command palette (ctrl+p): every screen, and every action of every screen, by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from semcache_tui.app import SemcacheApp


class PanelCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: SemcacheApp = self.app  # type: ignore[assignment]
        commands: list[tuple[str, str, Callable[[], Any]]] = [
            (
                f"Go to {item.label}",
                f"Show the {item.label} screen · key {item.key}",
                partial(app.action_show, item.mode),
            )
            for item in app.nav
        ]
        for title, help_text, mode, action, _enabled in app.palette_entries():
            commands.append((title, help_text, partial(app.run_screen_action, mode, action)))
        commands.append(
            ("Keys of this screen", "Show the keys of the current screen · key ?", app.action_keys)
        )
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
