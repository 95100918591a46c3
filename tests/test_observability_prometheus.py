"""The alerts and the dashboard, checked by a real Prometheus scraping a real server on a real Redis.

Prometheus is Debian's package, fetched by the test session (tests/support/prometheus.py); where it cannot
be, these tests skip and say why. The rules are the shipped ``deploy/prometheus/alerts.yml``, with every
``for:`` shortened so a test run sees an alert fire and clear; scrape and evaluation run every second.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.prometheus import Prometheus, PrometheusPaths, PrometheusUnavailable, ensure_prometheus
from tests.support.redis_server import RedisServer, RedisStackPaths
from tests.support.server_process import ROOT, ServerProcess

pytestmark = pytest.mark.slow

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "semcache.json"
#: Deadlines for a busy machine: a fresh server loads the model; Prometheus needs a few scrapes.
READY_TIMEOUT_S = float(os.environ.get("SEMCACHE_TEST_READY_TIMEOUT", "240"))
SERIES_TIMEOUT_S = float(os.environ.get("SEMCACHE_TEST_PROMETHEUS_TIMEOUT", "120"))
ALERT_TIMEOUT_S = float(os.environ.get("SEMCACHE_TEST_ALERT_TIMEOUT", "120"))
#: Every ``for:`` in the shipped rules becomes this, so firing and clearing fit in a test.
TEST_FOR = "2s"


@pytest.fixture(scope="module")
def prometheus_paths() -> PrometheusPaths:
    try:
        return ensure_prometheus()
    except PrometheusUnavailable as exc:
        pytest.skip(f"Prometheus cannot be run here: {exc}")


def test_promtool_accepts_the_shipped_rules(prometheus_paths: PrometheusPaths) -> None:
    done = subprocess.run(
        [str(prometheus_paths.promtool), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_dashboard_is_grafana_json_with_a_prometheus_target_per_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "semcache"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for figure in (
        "hit rate",
        "lookups",
        "lookup time",
        "errors",
        "entries",
        "memory",
        "upstream calls saved",
    ):
        assert figure in titles, figure
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in dashboard["panels"])


@pytest.fixture(scope="module")
def redis(redis_stack_paths: RedisStackPaths) -> Iterator[RedisServer]:
    server = RedisServer(redis_stack_paths).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("observed"),
        {"REDIS_URL": redis.url, "CACHE_INDEX_NAME": "observed", "SEMCACHE_FOLLOW_INTERVAL": "0"},
    ).start()
    try:
        process.wait_ready(READY_TIMEOUT_S)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def prometheus(
    prometheus_paths: PrometheusPaths, server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    folder = tmp_path_factory.mktemp("prometheus")
    rules = folder / "alerts.yml"
    rules.write_text(re.sub(r"(?m)^(\s+for:\s*)\S+", rf"\g<1>{TEST_FOR}", ALERTS.read_text()))
    config = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["{rules}"]
scrape_configs:
  - job_name: semcache
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
"""
    instance = Prometheus(prometheus_paths, config, folder)
    try:
        instance.start()
    except PrometheusUnavailable as exc:
        pytest.skip(f"Prometheus cannot be run here: {exc}")
    yield instance
    instance.stop()


def _workload(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for i in range(4):
            prompt = f"What is the observability fact number {i}?"
            assert (
                http.post("/cache/store", json={"prompt": prompt, "response": f"Fact {i}."}).status_code
                == 200
            )
            assert http.post("/cache/check", json={"prompt": prompt}).json()["is_hit"] is True
        assert http.post("/cache/check", json={"prompt": "How do volcanoes form?"}).json()["is_hit"] is False
        stored = http.post(
            "/cache/store", json={"prompt": "What is the observability fact?", "response": "A."}
        )
        report = {"prompt": "What is the observability fact?", "key": stored.json()["key"], "correct": False}
        assert http.post("/cache/feedback", json=report).status_code == 200
        assert http.get("/cache/entries/" + "0" * 64).status_code == 404


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen in {timeout:.0f} s (last answer: {last!r})")


def _rule_expressions() -> tuple[list[str], list[str]]:
    """The shipped recording rules' names, and every metric the alerts read."""
    import yaml

    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    records = [rule["record"] for rule in rules if "record" in rule]
    read: list[str] = []
    for rule in rules:
        if "alert" in rule:
            for name in re.findall(
                r"\b(?:semcache[a-z0-9_:]*|up)\b(?=\s*[{\[<>=!)]|\s+(?:and|or|unless)\b|\s*$)", rule["expr"]
            ):
                if name not in read:
                    read.append(name)
    return records, read


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        target["expr"].replace("$__rate_interval", "30s")
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_every_rule_and_dashboard_expression_returns_series_after_a_workload(
    prometheus: Prometheus, server: ServerProcess
) -> None:
    _workload(server)
    records, read = _rule_expressions()
    assert "semcache_dependency_up" in read and "up" in read and len(records) >= 5
    expressions = [*records, *read, *_dashboard_expressions()]
    for expression in expressions:
        _wait(lambda e=expression: prometheus.query(e), SERIES_TIMEOUT_S, f"series for {expression!r}")  # type: ignore[misc]
    health = {rule["name"]: rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]}
    broken = {name: rule.get("lastError") for name, rule in health.items() if rule.get("health") == "err"}
    assert not broken, broken


def _dependency_alert(prometheus: Prometheus) -> list[dict[str, Any]]:
    return [
        alert
        for alert in prometheus.api("alerts")["alerts"]
        if alert["labels"].get("alertname") == "SemcacheDependencyDown"
        and alert["labels"].get("component") == "store"
    ]


def test_the_dependency_down_alert_fires_when_redis_stops_and_clears_when_it_returns(
    prometheus: Prometheus, server: ServerProcess, redis: RedisServer
) -> None:
    _wait(
        lambda: prometheus.query('semcache_dependency_up{component="store"} == 1'),
        SERIES_TIMEOUT_S,
        "store up",
    )
    assert not _dependency_alert(prometheus)
    redis.stop()
    try:
        firing = _wait(
            lambda: [a for a in _dependency_alert(prometheus) if a["state"] == "firing"],
            ALERT_TIMEOUT_S,
            "SemcacheDependencyDown firing",
        )
        assert "store is down" in firing[0]["annotations"]["summary"]
        assert "README.md#runbook-dependency-down" in firing[0]["annotations"]["runbook"]
    finally:
        redis.start()
    _wait(lambda: not _dependency_alert(prometheus), ALERT_TIMEOUT_S, "SemcacheDependencyDown cleared")
    assert httpx.get(server.url + "/health/ready", timeout=30).status_code == 200
