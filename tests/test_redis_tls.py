"""TLS to Redis: the same Redis Stack binary with ``--tls-port`` and certificates made by trustme; the
cache over ``rediss://`` with a private CA, mutual TLS with a client certificate, and clear refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cache import CachePolicy, SemanticCache
from engine.config import Settings
from engine.errors import BackendUnavailableError, ConfigError
from engine.stores.redis import RedisStore
from tests.conftest import SharedEmbedder, unique_index_name
from tests.support.redis_server import RedisServer, free_port
from tests.support.tls import TlsFiles, make_tls_files


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("redis-certs"))


def _tls_redis(
    factory: Callable[..., RedisServer], files: TlsFiles, *, auth_clients: bool
) -> tuple[RedisServer, int]:
    port = free_port()
    server = factory(
        extra_args=[
            "--tls-port", str(port),
            "--tls-cert-file", str(files.server_cert),
            "--tls-key-file", str(files.server_key),
            "--tls-ca-cert-file", str(files.ca),
            "--tls-auth-clients", "yes" if auth_clients else "no",
        ]
    )  # fmt: skip
    return server, port


async def _round_trip(settings: Settings, embedder: SharedEmbedder) -> dict[str, object]:
    cache = SemanticCache(RedisStore.from_settings(settings), embedder, CachePolicy())
    try:
        await cache.start()
        await cache.store("What is the capital of Portugal?", "Lisbon.")
        assert (await cache.check("What is the capital of Portugal?")).is_hit
        store = (await cache.health()).component("store")
        assert store is not None and store.status == "ok", store
        await cache.vector_store.drop()
        return store.facts
    finally:
        await cache.close()


async def test_the_cache_works_over_rediss_with_a_private_ca_and_health_says_encrypted(
    redis_server_factory: Callable[..., RedisServer],
    tls_files: TlsFiles,
    embedder: SharedEmbedder,
    tmp_path: Path,
) -> None:
    _, port = _tls_redis(redis_server_factory, tls_files, auth_clients=False)
    settings = Settings.load(
        redis_url=f"rediss://127.0.0.1:{port}",
        redis_tls_ca_file=str(tls_files.ca),
        index_name=unique_index_name(),
    )
    facts = await _round_trip(settings, embedder)
    assert facts["encrypted"] is True


async def test_plain_redis_is_reported_unencrypted(redis_url: str, embedder: SharedEmbedder) -> None:
    facts = await _round_trip(Settings.load(redis_url=redis_url, index_name=unique_index_name()), embedder)
    assert facts["encrypted"] is False


async def test_mutual_tls_needs_the_client_certificate(
    redis_server_factory: Callable[..., RedisServer], tls_files: TlsFiles, embedder: SharedEmbedder
) -> None:
    _, port = _tls_redis(redis_server_factory, tls_files, auth_clients=True)
    url = f"rediss://127.0.0.1:{port}"
    without = Settings.load(
        redis_url=url, redis_tls_ca_file=str(tls_files.ca), index_name=unique_index_name()
    )
    with pytest.raises(BackendUnavailableError) as raised:
        await _round_trip(without, embedder)
    assert "\n" not in str(raised.value) and "127.0.0.1" in str(raised.value)
    with_cert = Settings.load(
        redis_url=url,
        redis_tls_ca_file=str(tls_files.ca),
        redis_tls_cert_file=str(tls_files.client_cert),
        redis_tls_key_file=str(tls_files.client_key),
        index_name=unique_index_name(),
    )
    assert (await _round_trip(with_cert, embedder))["encrypted"] is True


async def test_an_untrusted_redis_certificate_is_refused_in_one_line(
    redis_server_factory: Callable[..., RedisServer], tls_files: TlsFiles, embedder: SharedEmbedder
) -> None:
    _, port = _tls_redis(redis_server_factory, tls_files, auth_clients=False)
    settings = Settings.load(
        redis_url=f"rediss://127.0.0.1:{port}",
        redis_tls_ca_file=str(tls_files.other_ca),
        index_name=unique_index_name(),
    )
    with pytest.raises(BackendUnavailableError) as raised:
        await _round_trip(settings, embedder)
    message = str(raised.value)
    assert "\n" not in message and "certificate verify failed" in message.lower(), message


def test_tls_files_need_a_rediss_url_and_must_be_readable(tls_files: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.load(redis_url="redis://127.0.0.1:6379", redis_tls_ca_file=str(tls_files.ca))
    assert "REDIS_TLS_CA_FILE" in str(raised.value) and "rediss://" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        Settings.load(redis_url="rediss://127.0.0.1:6379", redis_tls_ca_file=str(tmp_path / "none.pem"))
    assert "cannot be read" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        Settings.load(redis_url="rediss://127.0.0.1:6379", redis_tls_cert_file=str(tls_files.client_cert))
    assert "REDIS_TLS_KEY_FILE" in str(raised.value)
