"""The panel's screens and how to reach them.

``NAV`` is the one list of screens: the nav bar, the number keys, the app's modes and the command palette
all come from it. The migration and backup screens (another issue) join by adding an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from semcache_tui.screens.backup import BackupScreen
from semcache_tui.screens.base import PanelScreen
from semcache_tui.screens.entries import EntriesScreen
from semcache_tui.screens.health import HealthScreen
from semcache_tui.screens.index import IndexScreen
from semcache_tui.screens.migration import MigrationScreen
from semcache_tui.screens.query_lab import QueryLabScreen
from semcache_tui.screens.sweep import SweepScreen


@dataclass(frozen=True, slots=True)
class NavItem:
    mode: str
    key: str
    label: str
    screen: type[PanelScreen]


NAV: tuple[NavItem, ...] = (
    NavItem("health", "1", "Health", HealthScreen),
    NavItem("index", "2", "Index", IndexScreen),
    NavItem("lab", "3", "Query lab", QueryLabScreen),
    NavItem("entries", "4", "Entries", EntriesScreen),
    NavItem("sweep", "5", "Sweep", SweepScreen),
    NavItem("migration", "6", "Migration", MigrationScreen),
    NavItem("backup", "7", "Backup", BackupScreen),
)

__all__ = ["NAV", "NavItem", "PanelScreen"]
