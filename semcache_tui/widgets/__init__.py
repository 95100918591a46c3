"""Widgets shared by the panel's screens."""

from semcache_tui.widgets.chrome import NavBar, StatusLine
from semcache_tui.widgets.health import ComponentPanel, MetricSpark, StatusBadge

__all__ = ["ComponentPanel", "MetricSpark", "NavBar", "StatusBadge", "StatusLine"]
