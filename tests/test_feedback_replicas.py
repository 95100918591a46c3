"""Feedback across processes: a wrong hit reported to one server is never served by another sharing the
store, on Redis and on the embedded store; a right report restores it for both. Real server processes
(each loads the bundled model), real HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.slow

QUERY = "Who was the author of Hamlet?"


@pytest.fixture(scope="module", params=["redis", "local"])
def two_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    root: Path = tmp_path_factory.mktemp(f"feedback-{request.param}")
    env = {"CACHE_INDEX_NAME": f"fb{uuid.uuid4().hex[:10]}"}
    if request.param == "redis":
        redis_server: Any = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = redis_server.url
    else:
        env["SEMCACHE_DATA_DIR"] = str(root / "shared-data")  # one embedded store, two processes
    servers = [ServerProcess(root / "a", env).start(), ServerProcess(root / "b", env).start()]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_a_wrong_hit_reported_to_one_server_is_not_served_by_the_other(
    two_servers: list[ServerProcess],
) -> None:
    a, b = (httpx.Client(base_url=s.url, timeout=60.0) for s in two_servers)
    with a, b:
        a.delete("/cache/clear")
        key = a.post("/cache/store", json={"prompt": "Who wrote Hamlet?", "response": "Shakespeare."}).json()[
            "key"
        ]
        served = b.post("/cache/check", json={"prompt": QUERY}).json()
        assert served["is_hit"] is True and served["matches"][0]["key"] == key

        reported = a.post("/cache/feedback", json={"prompt": QUERY, "key": key, "correct": False})
        assert reported.json() == {"success": True, "key": key, "wrong": 1, "right": 0, "evicted": False}
        for server in (b, a):
            refused = server.post("/cache/check", json={"prompt": QUERY, "explain": True}).json()
            assert refused["is_hit"] is False
            assert refused["explain"][0]["reason"] == "reported wrong for this prompt"
        stats = b.get("/cache/stats").json()
        assert (stats["feedback_wrong"], stats["feedback_right"]) == (1, 0)

        restored = b.post("/cache/feedback", json={"prompt": QUERY, "key": key, "correct": True}).json()
        assert (restored["wrong"], restored["right"]) == (1, 1)
        assert a.post("/cache/check", json={"prompt": QUERY}).json()["is_hit"] is True
