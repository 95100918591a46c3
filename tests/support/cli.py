"""Run `semcache-tui` the way cron and scripts do: its own process, no terminal, offline, its own data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).with_name("semcache-tui")


def run_cli(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``semcache-tui ARGS`` with SEMCACHE_DATA_DIR=data_dir, run from the folder that holds it.

    The test session has already cleared the operator's own SEMCACHE_/CACHE_/EMBEDDING_/REDIS_ variables
    (tests/conftest.py), so the child sees only what ``env`` adds.
    """
    environment = dict(os.environ) | {
        "SEMCACHE_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return subprocess.run(
        [str(CLI), *args],
        cwd=data_dir.parent,
        env=environment | (env or {}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
