"""Hardening (issue 11) where it takes a real server process: the log a real server writes (defect 9), how
an unexpected 500 leaves a pooled connection (7), the contract on the wire (12) and a stop in the middle of
a long request (4)."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.server.logs import JsonFormatter, TextFormatter
from tests.support.server_process import ServerProcess, batch_lasting

pytestmark = pytest.mark.slow

API_KEY = "harden-key-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {API_KEY}"}
#: The grace period of the shut-down test: short, so it never depends on how busy the machine is.
GRACE_S = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"SEMCACHE_API_KEY": API_KEY, "SEMCACHE_SHUTDOWN_GRACE": str(GRACE_S)}
    process = ServerProcess(tmp_path_factory.mktemp("harden"), env).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


# -- 9: log injection ------------------------------------------------------------------------------------


def test_a_forged_line_in_a_path_stays_on_its_own_line(server: ServerProcess) -> None:
    forged = "2026-01-01T00:00:00 INFO semcache.access[1]: 127.0.0.1:1 GET /cache/stats 200 1.0ms FORGED"
    for separator in ("%0A", "%0D%0A", "%0D", "%C2%85", "%E2%80%A8"):
        path = f"/cache/entries/x{separator}{forged.replace(' ', '%20')}"
        assert httpx.get(server.url + path).status_code in (401, 404)
    time.sleep(0.2)  # the log line is written after the response
    lines = server.log().splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01")], "a forged line was written"
    access = [line for line in lines if "FORGED" in line]
    assert len(access) == 5 and all(" GET /cache/entries/x" in line for line in access), access
    assert "\\n2026-01-01" in access[0] and "\\r\\n2026" in access[1]


def test_both_log_formats_escape_control_characters() -> None:
    record = logging.LogRecord(
        "semcache.access", logging.INFO, __file__, 1, "%s %s %d", ("GET", "/x\n\r\x1b[31m\x85y", 401), None
    )
    text = TextFormatter("%(message)s").format(record)
    assert text == "GET /x\\n\\r\\x1b[31m\\x85y 401"
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x85" not in line
    assert json.loads(line)["message"] == "GET /x\n\r\x1b[31m\x85y 401"


# -- 12: the contract on the wire ------------------------------------------------------------------------


def test_health_detail_needs_the_key_but_live_and_ready_stay_open(server: ServerProcess) -> None:
    anonymous = httpx.get(server.url + "/health")
    assert anonymous.status_code == 200
    assert anonymous.json() == {
        "status": "healthy",
        "cache_healthy": True,
        "ready": True,
        "down": [],
        "message": "",
        "components": [],
    }
    detailed = httpx.get(server.url + "/health", headers=AUTH).json()
    assert {c["name"] for c in detailed["components"]} == {"store", "embedder"}
    assert httpx.get(server.url + "/health", headers={"X-API-Key": "wrong"}).json()["components"] == []
    assert httpx.get(server.url + "/health/live").json() == {"status": "alive"}
    assert httpx.get(server.url + "/health/ready").json() == {"ready": True, "status": "ready", "detail": ""}


def test_405_names_every_allowed_method(server: ServerProcess) -> None:
    answer = httpx.put(server.url + "/cache/entries/abc", headers=AUTH)
    assert answer.status_code == 405 and answer.json()["error"] == "method_not_allowed"
    assert answer.headers["allow"] == "DELETE, GET"
    assert httpx.get(server.url + "/cache/store", headers=AUTH).headers["allow"] == "POST"


def test_a_body_that_is_not_utf8_or_not_json_is_refused_as_documented(server: ServerProcess) -> None:
    schema = httpx.get(server.url + "/openapi.json").json()
    store = schema["paths"]["/cache/store"]["post"]
    assert {"400", "401", "422", "503"} <= set(store["responses"])
    assert "404" in schema["paths"]["/cache/entries/{key}"]["get"]["responses"]
    request = schema["components"]["schemas"]["StoreRequest"]["properties"]
    assert request["prompt"]["minLength"] == 1 and request["response"]["minLength"] == 1
    assert request["scope"]["pattern"]
    headers = {**AUTH, "content-type": "application/json"}
    for body in (b'{"prompt": "caf\xe9", "response": "r"}', b'{"prompt": '):
        answer = httpx.post(server.url + "/cache/store", content=body, headers=headers)
        assert answer.status_code in (400, 422) and answer.json()["error"] in ("bad_request", "invalid_input")
    missing = httpx.get(server.url + "/cache/entries/" + "0" * 32, headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


# -- 4: a stop during a long request (runs last: it stops the module's server) ----------------------------


def test_a_request_still_running_at_the_deadline_gets_a_json_503(server: ServerProcess) -> None:
    items = batch_lasting(server, 20 * GRACE_S, AUTH)
    result: dict[str, Any] = {}

    def send() -> None:
        try:
            result["response"] = httpx.post(
                server.url + "/cache/store/batch", json={"items": items}, headers=AUTH, timeout=120
            )
        except Exception as exc:
            result["error"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(GRACE_S)  # a fraction of the batch's measured time: it is being embedded
    assert not result, "the batch finished before SIGTERM; the sizing went wrong"
    server.terminate()
    sender.join(120)
    response: httpx.Response = result.get("response")  # type: ignore[assignment]
    assert response is not None, result
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "shutting_down"
    assert int(response.headers["retry-after"]) > 0 and response.headers["connection"] == "close"
    assert server.wait(60) in (0, -signal.SIGTERM)
    log = server.log()
    assert "POST /cache/store/batch 503" in log and "server stopped" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


# -- 7: an unexpected 500 closes its connection cleanly --------------------------------------------------


def test_an_unexpected_500_says_connection_close(tmp_path: Path) -> None:
    process = ServerProcess(tmp_path / "failing", module="tests.support.failing_server").start()
    try:
        process.wait_live()
        with httpx.Client(base_url=process.url, timeout=30) as pooled:
            for _ in range(20):
                failed = pooled.get("/fail")
                assert failed.status_code == 500 and failed.json()["error"] == "internal"
                assert failed.headers["connection"] == "close"
                # The next request on the same client: a new connection, never a reset one.
                assert pooled.get("/health/live").status_code == 200
        log = process.log()
        assert "GET /fail failed: Unexpected: a failure no one named\\nwith a second line" in log
    finally:
        process.stop()
