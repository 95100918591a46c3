"""The server as clients meet it: a real process, real HTTP, the bundled model, real stores.

Four servers in all (each loads the model): one on the embedded store with an API key, two replicas on the
session's Redis Stack, and one with two workers whose metrics must add up.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server_process import ServerProcess, batch_lasting

pytestmark = pytest.mark.slow

API_KEY = "test-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {API_KEY}"}

MATCH_FIELDS = {"prompt", "response", "vector_distance", "cosine_similarity", "cached_at", "metadata"}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    """The embedded store with an API key; also yields /health/ready's status seen as soon as it was live.

    It runs the model on torch: a model already exported for ONNX Runtime loads in a fraction of a second,
    too fast to catch the server live but not ready; torch takes seconds (and is covered here too).
    """
    # A grace period far longer than any batch here: the SIGTERM test's batch must finish however busy
    # the machine is (test_hardening_process.py covers a request cut at the deadline).
    env = {"SEMCACHE_API_KEY": API_KEY, "EMBEDDING_BACKEND": "torch", "SEMCACHE_SHUTDOWN_GRACE": "600"}
    server = ServerProcess(tmp_path_factory.mktemp("api"), env).start()
    try:
        server.wait_live()
        first_ready = httpx.get(server.url + "/health/ready").status_code
        server.wait_ready()
        yield server, first_ready
    finally:
        server.stop()


@pytest.fixture
def http(api_server: tuple[ServerProcess, int]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server[0].url, headers=AUTH, timeout=60.0) as client:
        client.delete("/cache/clear")
        yield client


def test_starts_live_before_the_model_is_ready(api_server: tuple[ServerProcess, int]) -> None:
    server, first_ready = api_server
    assert first_ready == 503  # live at once, ready only once the model has loaded
    assert httpx.get(server.url + "/health/ready").json() == {"ready": True, "status": "ready", "detail": ""}


def test_drop_in_store_check_stats_clear_health(http: httpx.Client) -> None:
    stored = http.post(
        "/cache/store", json={"prompt": "What is the capital of France?", "response": "Paris."}
    )
    assert stored.status_code == 200
    body = stored.json()
    assert body["success"] is True and isinstance(body["key"], str) and body["message"]

    # An exact repeat: distance 0 (not -1e-7) passes validation and is a hit.
    exact = http.post("/cache/check", json={"prompt": "What is the capital of France?"}).json()
    assert exact["is_hit"] is True and exact["prompt"] == "What is the capital of France?"
    assert set(exact) >= {"prompt", "is_hit", "matches", "lookup_time_ms"}
    match = exact["matches"][0]
    assert set(match) >= MATCH_FIELDS
    assert match["vector_distance"] == 0.0 and match["cosine_similarity"] == 1.0
    assert match["response"] == "Paris." and match["cached_at"] > time.time() - 600

    similar = http.post("/cache/check", json={"prompt": "what's the capital of France", "threshold": 0.3})
    similar_body = similar.json()
    assert similar_body["is_hit"] is True
    distance = similar_body["matches"][0]["vector_distance"]
    assert 0.0 < distance <= 0.3
    assert similar_body["matches"][0]["cosine_similarity"] == pytest.approx(1.0 - distance)

    miss = http.post("/cache/check", json={"prompt": "How do I bake sourdough bread?"}).json()
    assert miss["is_hit"] is False and miss["matches"] == []

    stats = http.get("/cache/stats").json()
    assert set(stats) >= {
        "total_entries",
        "index_name",
        "threshold",
        "ttl_seconds",
        "hits",
        "misses",
        "hit_rate",
    }
    assert stats["total_entries"] == 1 and stats["hits"] >= 2 and stats["misses"] >= 1
    assert stats["threshold"] == 0.40 and stats["ttl_seconds"] == 604800
    assert stats["embedder"] == {
        "provider": "sentence-transformers",
        "model": "all-MiniLM-L6-v2",
        "dimension": 384,
    }
    assert stats["latency_p50_ms"] is not None and stats["latency_p95_ms"] is not None

    http.post("/cache/store", json={"prompt": "What is 2 + 2?", "response": "4."})
    cleared = http.delete("/cache/clear").json()
    assert cleared == {"success": True, "deleted_count": 2, "message": cleared["message"]}
    assert http.get("/cache/stats").json()["total_entries"] == 0

    # After a clear the index still works at the model's dimension.
    http.post("/cache/store", json={"prompt": "Who wrote Hamlet?", "response": "Shakespeare."})
    again = http.post(
        "/cache/check", json={"prompt": "Who was the author of Hamlet?", "threshold": 0.4}
    ).json()
    assert again["is_hit"] is True

    health = httpx.get(http.base_url.join("/health"))
    assert health.status_code == 200
    assert health.json()["status"] == "healthy" and health.json()["cache_healthy"] is True


def test_auth_needs_the_key_on_cache_and_metrics_but_not_health(
    api_server: tuple[ServerProcess, int],
) -> None:
    url = api_server[0].url
    body = {"prompt": "Is the key needed?"}
    without = httpx.post(url + "/cache/check", json=body)
    assert without.status_code == 401 and without.json()["error"] == "unauthorized"
    assert (
        httpx.post(url + "/cache/check", json=body, headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert httpx.post(url + "/cache/check", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
    assert httpx.get(url + "/metrics").status_code == 401
    assert httpx.get(url + "/cache/stats", headers={"X-API-Key": API_KEY[:-1]}).status_code == 401

    assert httpx.post(url + "/cache/check", json=body, headers=AUTH).status_code == 200
    assert httpx.post(url + "/cache/check", json=body, headers={"X-API-Key": API_KEY}).status_code == 200
    metrics = httpx.get(url + "/metrics", headers=AUTH)
    assert metrics.status_code == 200 and "semcache_http_requests_total" in metrics.text
    for path in ("/health", "/health/live", "/health/ready"):
        assert httpx.get(url + path).status_code == 200
    assert API_KEY not in api_server[0].log()


def test_limits_answer_413_and_422_with_json_errors(http: httpx.Client) -> None:
    huge = http.post("/cache/store", json={"prompt": "big", "response": "x" * (5 * 1024 * 1024)})
    assert huge.status_code == 413 and huge.json()["error"] == "request_too_large"

    empty = http.post("/cache/check", json={"prompt": "   "})
    assert empty.status_code == 422 and empty.json()["error"] == "invalid_input"
    assert "empty" in empty.json()["message"]
    too_long = http.post("/cache/check", json={"prompt": "word " * 7000})
    assert too_long.status_code == 422 and "over the limit" in too_long.json()["message"]
    missing = http.post("/cache/store", json={"prompt": "no response"})
    assert missing.status_code == 422 and missing.json()["error"] == "invalid_input"


def test_sigterm_lets_the_request_in_flight_finish(api_server: tuple[ServerProcess, int]) -> None:
    """Runs last in this module: it stops the shared server."""
    server = api_server[0]
    items = batch_lasting(server, 5.0, AUTH)  # sized by timing: still running 0.7 s in, on any machine
    result: dict[str, Any] = {}

    def send() -> None:
        try:
            response = httpx.post(
                server.url + "/cache/store/batch", json={"items": items}, headers=AUTH, timeout=600
            )
            result["status"] = response.status_code
            result["body"] = response.json()
        except Exception as exc:
            result["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.7)  # the batch (about 5 s of embeddings, by the timing above) is being computed
    assert "status" not in result, "the batch finished before SIGTERM; make it bigger"
    server.terminate()
    sender.join(600)
    assert result.get("status") == 200, result
    assert result["body"]["stored"] == len(items)
    # uvicorn re-raises the signal once it has shut down, so the exit status is SIGTERM's (or 0).
    assert server.wait(120) in (0, -signal.SIGTERM)
    log = server.log()
    assert "server stopped" in log, log[-3000:]  # the app's own shutdown ran after the request
    assert log.index("POST /cache/store/batch 200") < log.index("server stopped")


# -- two replicas on one Redis ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replicas(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    env = {"REDIS_URL": redis_server.url, "CACHE_INDEX_NAME": f"srv{uuid.uuid4().hex[:10]}"}
    root: Path = tmp_path_factory.mktemp("replicas")
    servers = [ServerProcess(root / "a", env).start(), ServerProcess(root / "b", env).start()]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_two_replicas_share_entries_and_stats(replicas: list[ServerProcess]) -> None:
    a, b = (httpx.Client(base_url=s.url, timeout=60.0) for s in replicas)
    with a, b:
        a.delete("/cache/clear")
        key = a.post(
            "/cache/store", json={"prompt": "How many legs does a spider have?", "response": "Eight."}
        )
        assert key.status_code == 200
        served = b.post("/cache/check", json={"prompt": "How many legs does a spider have?"}).json()
        assert served["is_hit"] is True and served["matches"][0]["response"] == "Eight."
        similar = b.post(
            "/cache/check", json={"prompt": "How many legs do spiders have?", "threshold": 0.3}
        ).json()
        assert similar["is_hit"] is True
        assert (
            a.post("/cache/check", json={"prompt": "What is the speed of light?"}).json()["is_hit"] is False
        )

        stats_a, stats_b = a.get("/cache/stats").json(), b.get("/cache/stats").json()
        for field in ("total_entries", "hits", "misses", "index_name"):
            assert stats_a[field] == stats_b[field], field
        assert stats_a["total_entries"] == 1 and stats_a["hits"] >= 2 and stats_a["misses"] >= 1
        assert stats_a["store"] == "redis"


def test_redis_down_answers_503_naming_the_store(replicas: list[ServerProcess], redis_server: Any) -> None:
    url = replicas[0].url
    redis_server.stop()
    try:
        health = httpx.get(url + "/health", timeout=30)
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "unhealthy" and body["cache_healthy"] is False and "store" in body["down"]
        assert "store down" in body["message"]

        check = httpx.post(url + "/cache/check", json={"prompt": "Is Redis up?"}, timeout=30)
        assert check.status_code == 503
        error = check.json()
        assert error["error"] in ("backend_unavailable", "unavailable") and error.get("hint")

        assert httpx.get(url + "/health/live").status_code == 200
        assert httpx.get(url + "/health/ready", timeout=30).status_code == 503
    finally:
        redis_server.start()
    deadline = time.monotonic() + 30
    while httpx.get(url + "/health", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover when Redis came back"
        time.sleep(0.2)
    assert httpx.post(url + "/cache/check", json={"prompt": "Is Redis up?"}).status_code == 200


def test_workers_share_one_metrics_view(tmp_path: Path) -> None:
    """With --workers 2 a scrape lands on either worker; each must report the total of both."""
    import re

    server = ServerProcess(tmp_path / "workers", {"CACHE_INDEX_NAME": "workers"}, workers=2).start()
    try:
        server.wait_ready()
        stored = 0
        pids: set[str] = set()
        # New connections until both workers have answered (the kernel decides which one accepts).
        while len(pids) < 2 and stored < 400:
            for _ in range(10):
                answer = httpx.post(
                    server.url + "/cache/store", json={"prompt": f"question {stored}", "response": "answer"}
                )
                assert answer.status_code == 200, answer.text
                stored += 1
            pids = set(re.findall(r"\[(\d+)\]: \S+ POST /cache/store", server.log()))
        assert len(pids) == 2, server.log()[-2000:]
        for _ in range(6):  # whichever worker answers the scrape
            text = httpx.get(server.url + "/metrics").text
            found = re.search(r"^semcache_cache_stored_total (\S+)$", text, re.MULTILINE)
            assert found is not None, text[:2000]
            assert float(found.group(1)) == stored
    finally:
        server.stop()
