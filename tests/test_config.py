from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.config import Settings
from engine.errors import ConfigError


def test_defaults_match_the_seed_service() -> None:
    settings = Settings.load()
    # The verifier decides within a retrieval cap; SEMCACHE_VERIFY=off restores the seed's 0.15.
    assert settings.distance_threshold == 0.40
    assert Settings.load(verify_candidates=False).distance_threshold == 0.15
    assert settings.ttl == 604800
    assert settings.index_name == "semantic_cache"
    assert settings.ollama_base_url == "http://localhost:11434"
    assert settings.embedding_provider == "sentence-transformers"
    assert settings.model_name == "all-MiniLM-L6-v2"
    assert settings.store_kind == "local"


def test_redis_url_switches_the_default_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://localhost:6379")
    assert Settings.load().store_kind == "redis"
    monkeypatch.setenv("SEMCACHE_STORE", "local")
    assert Settings.load().store_kind == "local"


def test_dotenv_is_read_and_flags_override(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CACHE_DISTANCE_THRESHOLD=0.2\nCACHE_TTL=60\n")
    settings = Settings.load()
    assert (settings.distance_threshold, settings.ttl) == (0.2, 60)
    assert Settings.load(distance_threshold=0.05).distance_threshold == 0.05


def test_environment_beats_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CACHE_TTL=60\n")
    monkeypatch.setenv("CACHE_TTL", "120")
    assert Settings.load().ttl == 120


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("CACHE_DISTANCE_THRESHOLD", "3", "between 0 and 2"),
        ("CACHE_DISTANCE_THRESHOLD", "abc", "between 0 and 2"),
        ("CACHE_TTL", "-5", "0 or more"),
        ("EMBEDDING_PROVIDER", "openai", "sentence-transformers, ollama"),
        ("SEMCACHE_STORE", "postgres", "local, redis"),
        ("EMBEDDING_OUTPUT_DIMENSION", "0", "from 1 up to"),
        ("OLLAMA_BASE_URL", "localhost:11434", "http://"),
        ("CACHE_INDEX_NAME", "bad name!", "letters, digits"),
        ("SEMCACHE_RERANK_COPIES", "sometimes", "on or off"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        Settings.load()
    message = str(info.value)
    assert message.startswith(f"{variable}={value}"), message
    assert allowed in message
    assert "\n" not in message


def test_a_bad_redis_url_never_shows_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "http://admin:s3cret@example.com:6379")
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert "s3cret" not in str(info.value)
    assert "admin:***@example.com" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_data_dir_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("SEMCACHE_DATA_DIR", str(locked / "data"))
    with pytest.raises(ConfigError, match="SEMCACHE_DATA_DIR"):
        Settings.load()


def test_a_data_dir_that_is_a_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    monkeypatch.setenv("SEMCACHE_DATA_DIR", str(a_file))
    with pytest.raises(ConfigError) as info:
        Settings.load()
    assert str(info.value).startswith(f"SEMCACHE_DATA_DIR={a_file}")


def test_replicas_checking_one_data_dir_at_once_all_pass(tmp_path: Path) -> None:
    """Two servers sharing a data folder check it as they start; with one shared probe name, one's unlink
    made the other's fail. Many checks at once, on threads, stand in for the processes."""
    import threading

    settings = Settings(data_dir=tmp_path / "shared")
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def check() -> None:
        start.wait()
        for _ in range(200):
            try:
                settings.check_data_dir()
            except ConfigError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert list((tmp_path / "shared").iterdir()) == []  # every probe removed
