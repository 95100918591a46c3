"""The `semcache-tui` command as operators and cron run it: real processes, the real model and store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import run_cli


def run(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(data_dir, *args, env=env)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_version(data_dir: Path) -> None:
    result = run(data_dir, "--version")
    assert result.returncode == 0 and result.stdout.startswith("semcache-tui ")


def test_store_check_hit_miss_json_and_exit_codes(data_dir: Path) -> None:
    stored = run(
        data_dir,
        "store",
        "What is the capital of France?",
        "Paris.",
        "--metadata",
        '{"model": "x"}',
        "--json",
    )
    assert stored.returncode == 0, stored.stderr
    key = json.loads(stored.stdout)["key"]

    hit = run(data_dir, "check", "what's the capital of France", "--json")
    assert hit.returncode == 0, hit.stderr
    body = json.loads(hit.stdout)
    assert body["is_hit"] and body["matches"][0]["response"] == "Paris."
    assert body["matches"][0]["metadata"] == {"model": "x"}

    miss = run(data_dir, "check", "How do I bake sourdough bread?")
    assert miss.returncode == 1 and miss.stdout.startswith("MISS")

    stats = json.loads(run(data_dir, "stats", "--json").stdout)
    assert (stats["total_entries"], stats["hits"], stats["misses"]) == (1, 1, 1)

    listed = run(data_dir, "entries", "--json")
    assert [e["key"] for e in json.loads(listed.stdout)["entries"]] == [key]
    assert run(data_dir, "delete", key).returncode == 0
    gone = run(data_dir, "delete", key)
    assert gone.returncode == 3 and "no entry with key" in one_line_error(gone)


def test_clear_needs_confirmation_without_a_terminal_and_read_only_refuses(data_dir: Path) -> None:
    run(data_dir, "store", "What is Redis?", "A data store.")
    unconfirmed = run(data_dir, "clear")
    assert unconfirmed.returncode == 2 and "--yes" in one_line_error(unconfirmed)
    refused = run(data_dir, "--read-only", "clear", "--yes")
    assert refused.returncode == 7 and "read-only" in one_line_error(refused)
    cleared = run(data_dir, "clear", "--yes", "--json")
    assert cleared.returncode == 0 and json.loads(cleared.stdout)["deleted_count"] == 1


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (
            ("stats",),
            {"CACHE_DISTANCE_THRESHOLD": "3"},
            "CACHE_DISTANCE_THRESHOLD=3: must be a cosine distance",
        ),
        (("stats",), {"EMBEDDING_PROVIDER": "openai"}, "EMBEDDING_PROVIDER=openai: must be one of"),
        (("check", "hello"), {"EMBEDDING_OUTPUT_DIMENSION": "1000"}, "EMBEDDING_OUTPUT_DIMENSION=1000"),
        (("check", "   "), {}, "prompt is empty"),
        (("store", "q", "a", "--metadata", "[1]"), {}, "--metadata must be a JSON object"),
    ],
)
def test_operator_mistakes_are_one_line_with_exit_2(
    data_dir: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    result = run(data_dir, *args, env=env)
    assert result.returncode == 2
    assert expected in one_line_error(result)


def test_an_unreachable_redis_is_exit_4_with_the_password_redacted(data_dir: Path) -> None:
    result = run(data_dir, "stats", env={"REDIS_URL": "redis://app:hunter2@127.0.0.1:1/0"})
    assert result.returncode == 4
    line = one_line_error(result)
    assert "hunter2" not in line and "127.0.0.1:1" in line


def test_demo_runs_the_main_job_on_the_embedded_default(data_dir: Path) -> None:
    result = run(data_dir, "demo")
    assert result.returncode == 0, result.stderr
    assert "stored 13 sample answers" in result.stdout
    lines = result.stdout.splitlines()
    paraphrase = next(line for line in lines if "Can you explain machine learning?" in line)
    assert paraphrase.startswith("HIT") and "(score 0." in paraphrase and "distance 0." in paraphrase
    near_miss = next(line for line in lines if "How do I convert 50 km to miles?" in line)
    assert near_miss.startswith("REFUSED") and "numbers differ: 50 vs 5" in near_miss
    assert "How do I convert 5 km to miles?" in near_miss
    assert any(line.startswith("MISS") for line in lines)
    assert (data_dir / "semantic_cache.sqlite3").exists()
    assert "Loading weights" not in result.stderr


def test_health_exit_codes_ok_degraded_and_down(data_dir: Path, redis_server_factory) -> None:  # type: ignore[no-untyped-def]
    """0 when every part is ok, 8 when one is degraded (here a Redis whose maxmemory-policy may evict the
    cache's bookkeeping), 4 when one is down, as the README documents."""
    healthy = run(data_dir, "health")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    server = redis_server_factory(extra_args=["--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru"])
    degraded = run(data_dir, "health", env={"REDIS_URL": server.url, "CACHE_INDEX_NAME": "health_exit"})
    assert degraded.returncode == 8, degraded.stdout + degraded.stderr
    assert "maxmemory-policy" in degraded.stdout + degraded.stderr
    server.stop()
    down = run(data_dir, "health", env={"REDIS_URL": server.url})
    assert down.returncode == 4, down.stdout + down.stderr
