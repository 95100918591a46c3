"""``python -m semcache_tui.cli``: the same as the ``semcache-tui`` command."""

from __future__ import annotations

import sys

from semcache_tui.cli.main import main

sys.exit(main())
