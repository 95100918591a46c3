"""A running server follows a migration: real server processes, the real `semcache-tui migrate` command.

The operator's sequence: a server serves ``idx``; `migrate run` re-embeds into ``idx__v2`` at another
dimension and switches the pointer; the server moves to ``idx__v2`` with the new embedder without a restart;
`migrate finalize` drops ``idx`` and the server keeps answering. A server started afterwards with the old
EMBEDDING_* settings serves the migrated index with the embedder the migration filled it with, and warns.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import run_cli
from tests.support.server_process import ServerProcess

FRANCE = "What is the capital of France?"
SAVED_AFTER_SWITCH = "How many legs does a spider have?"


@pytest.fixture(params=["local", "redis"])
def setting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {"CACHE_INDEX_NAME": f"f{uuid.uuid4().hex[:8]}", "SEMCACHE_FOLLOW_INTERVAL": "0.3"}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_server").url
    yield env


def wait_for_index(http: httpx.Client, name: str, dimension: int, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = http.get("/cache/index").json()
        if info["name"] == name and (info["identity"] or {}).get("dimension") == dimension:
            return info
        assert time.monotonic() < deadline, f"the server still serves {info['name']}"
        time.sleep(0.2)


def is_hit(http: httpx.Client, prompt: str) -> bool:
    answer = http.post("/cache/check", json={"prompt": prompt, "threshold": 0.3})
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["is_hit"])


def test_a_running_server_follows_run_and_finalize(setting: dict[str, str], tmp_path: Path) -> None:
    index = setting["CACHE_INDEX_NAME"]
    server = ServerProcess(tmp_path / "one", setting).start()
    data_dir = tmp_path / "one" / "data"
    second: ServerProcess | None = None
    try:
        server.wait_ready()
        http = httpx.Client(base_url=server.url, timeout=60)
        assert http.post("/cache/store", json={"prompt": FRANCE, "response": "Paris."}).status_code == 200
        assert http.get("/cache/index").json()["identity"]["dimension"] == 384

        done = run_cli(data_dir, "migrate", "run", "--to-dimension", "256", "--yes", env=setting)
        assert done.returncode == 0, done.stderr

        wait_for_index(http, f"{index}__v2", 256)
        assert is_hit(http, "what's the capital of France")  # searched with the 256-dimension model
        stored = http.post("/cache/store", json={"prompt": SAVED_AFTER_SWITCH, "response": "Eight."})
        assert stored.status_code == 200

        done = run_cli(data_dir, "migrate", "finalize", "--yes", env=setting)
        assert done.returncode == 0, done.stderr
        assert is_hit(http, FRANCE) and is_hit(http, SAVED_AFTER_SWITCH)
        assert http.get("/health").status_code == 200
        assert "now serving index" in server.log()

        # A replica started now, still configured for the old 384-dimension embedder.
        old = {"SEMCACHE_DATA_DIR": str(data_dir), "EMBEDDING_OUTPUT_DIMENSION": "384"}
        second = ServerProcess(tmp_path / "two", setting | old).start()
        second.wait_ready()
        other = httpx.Client(base_url=second.url, timeout=60)
        assert wait_for_index(other, f"{index}__v2", 256)["documents"] == 2
        assert is_hit(other, SAVED_AFTER_SWITCH)
        assert "was filled by a migration" in second.log()
    finally:
        server.stop()
        if second is not None:
            second.stop()
