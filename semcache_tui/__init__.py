"""semcache-tui: the control panel and command line of semcache."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("semcache-tui")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
