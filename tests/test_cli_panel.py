"""``semcache-tui --server URL`` against a server that is not there: one line naming the URL, exit 4."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SEMCACHE_TUI = str(Path(sys.executable).with_name("semcache-tui"))


def test_stats_against_an_unreachable_server_exits_4_with_one_line(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEMCACHE_", "CACHE_", "EMBEDDING_", "OLLAMA_")) and k != "REDIS_URL"
    }
    result = subprocess.run(
        [SEMCACHE_TUI, "--server", "http://127.0.0.1:1", "stats"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "http://127.0.0.1:1" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
