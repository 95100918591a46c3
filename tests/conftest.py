"""Shared fixtures. Everything is real: the bundled model, the embedded store on a temporary folder, a
Redis Stack server started for the session (tests/support/redis_fixtures.py), real HTTP.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.cache import CachePolicy, SemanticCache
from engine.embeddings.base import Embedder
from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

pytest_plugins = ["tests.support.redis_fixtures", "tests.support.ollama_fixtures"]

# Tests must never download anything: the bundled model is the one they use.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One ONNX export of the bundled model per test session, shared by every test and server process it starts,
# and never the developer's own cache.
MODEL_CACHE = tempfile.mkdtemp(prefix="semcache-test-models-")
atexit.register(shutil.rmtree, MODEL_CACHE, True)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own configuration: variables and .env are cleared."""
    for name in list(os.environ):
        if name.startswith(("SEMCACHE_", "CACHE_", "EMBEDDING_", "OLLAMA_")) or name in (
            "REDIS_URL",
            "REDIS_PASSWORD",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEMCACHE_MODEL_CACHE_DIR", MODEL_CACHE)
    monkeypatch.chdir(tmp_path)


class SharedEmbedder(SentenceTransformerEmbedder):
    """The bundled model, loaded once per session; ``close`` keeps it loaded for the next test."""

    async def close(self) -> None:
        return None


_EMBEDDER: SharedEmbedder | None = None


def shared_embedder() -> SharedEmbedder:
    global _EMBEDDER
    if _EMBEDDER is None:
        _EMBEDDER = SharedEmbedder()
        _EMBEDDER.load_sync()
    return _EMBEDDER


@pytest.fixture
def embedder() -> SharedEmbedder:
    return shared_embedder()


def unique_index_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_store(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A factory of fresh, unopened stores of ``store_kind``; each call can share the same data (two
    replicas) when given the same ``name``."""
    from engine.stores.base import VectorStore

    opened: list[VectorStore] = []
    default_name = unique_index_name()

    def factory(name: str | None = None) -> VectorStore:
        name = name or default_name
        if store_kind == "local":
            from engine.stores.local import LocalStore

            store: VectorStore = LocalStore(tmp_path / "data", name=name)
        else:
            from engine.stores.redis import RedisStore

            redis_url = request.getfixturevalue("redis_url")
            store = RedisStore(redis_url, name=name)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        # Drop, not clear: an external SEMCACHE_TEST_REDIS_URL server must not collect test indexes.
        with contextlib.suppress(Exception):
            await store.drop()
        await store.close()


@pytest.fixture(params=["sentence-transformers", "ollama"])
def cache_embedder(request: pytest.FixtureRequest) -> Embedder:
    """The bundled model, in process and served by the Ollama protocol peer (tests/support/ollama_peer.py),
    so the cache's behaviour tests prove the same rules with both embedders."""
    if request.param == "ollama":
        return request.getfixturevalue("ollama_embedder")  # type: ignore[no-any-return]
    return shared_embedder()


@pytest.fixture
async def cache(make_store, cache_embedder: Embedder) -> AsyncIterator[SemanticCache]:  # type: ignore[no-untyped-def]
    """A started cache on each store kind and each embedder, with the default policy."""
    semantic_cache = SemanticCache(make_store(), cache_embedder, CachePolicy())
    await semantic_cache.start()
    yield semantic_cache
    await semantic_cache.close()
