"""The Ollama embedder against the Ollama protocol peer (tests/support/ollama_peer.py): a real HTTP server
speaking Ollama's documented API, with real embeddings from the bundled model and switchable failures."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from engine.cache import SemanticCache, StoreRequest
from engine.config import Settings
from engine.embeddings import create_embedder
from engine.embeddings.ollama import OllamaEmbedder
from engine.errors import ConfigError, EmbedderError, IndexMismatchError
from engine.models import EmbedderIdentity
from tests.conftest import shared_embedder
from tests.support.ollama_peer import VERSION, OllamaPeer, texts_of

pytest_plugins = ["tests.support.ollama_fixtures"]


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


# -- the dimension, the probe, batching ------------------------------------------------------------------


async def test_load_learns_the_dimension_from_one_probe(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder()
    assert embedder.identity is None and not embedder.loaded
    identity = await embedder.load()
    assert identity == EmbedderIdentity("ollama", "all-minilm", 384)
    assert embedder.loaded and embedder.identity == identity
    assert await embedder.load() is identity  # cached: no second probe
    assert ollama_peer.embed_calls == 1
    await embedder.close()


async def test_the_dimension_comes_from_the_server_not_from_the_model_name(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder("all-minilm-256")
    assert (await embedder.load()).dimension == 256
    assert (await embedder.embed(["a question"])).shape == (1, 256)
    await embedder.close()


async def test_output_dimension_is_sent_as_dimensions(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder(output_dimension=128)
    assert await embedder.load() == EmbedderIdentity("ollama", "all-minilm", 128)
    vectors = await embedder.embed(["one", "two"])
    assert vectors.shape == (2, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    bodies = [r.body for r in ollama_peer.calls("/api/embed")]
    assert len(bodies) == 2 and all(body["dimensions"] == 128 for body in bodies)
    await embedder.close()


async def test_no_dimensions_are_sent_when_none_is_configured(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    await ollama_embedder.embed(["x"])
    (request,) = ollama_peer.calls("/api/embed")
    assert "dimensions" not in request.body


async def test_many_texts_go_in_one_request_in_order(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    texts = [f"question number {i} about the weather in city {i}" for i in range(25)]
    vectors = await ollama_embedder.embed(texts)
    (request,) = ollama_peer.calls("/api/embed")
    assert texts_of(request) == texts
    assert request.body["model"] == "all-minilm"
    assert vectors.shape == (25, 384) and vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    local = shared_embedder().embed_sync(texts)
    assert np.allclose(vectors, local, atol=1e-5)  # the same model behind the peer, in the same order


async def test_empty_input_is_refused_before_any_request(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    with pytest.raises(ValueError):
        await ollama_embedder.embed([])
    assert ollama_peer.embed_calls == 0


async def test_create_embedder_passes_the_settings(ollama_peer: OllamaPeer) -> None:
    settings = Settings(
        embedding_provider="ollama",
        ollama_base_url=ollama_peer.base_url,
        embedding_model="all-minilm-256",
        embedding_output_dimension=64,
        embed_timeout=3.5,
    )
    embedder = create_embedder(settings)
    assert isinstance(embedder, OllamaEmbedder)
    assert embedder.timeout == 3.5
    assert await embedder.load() == EmbedderIdentity("ollama", "all-minilm-256", 64)
    assert ollama_peer.calls("/api/embed")[0].body["dimensions"] == 64
    await embedder.close()


def test_the_default_model_is_embeddinggemma() -> None:
    embedder = create_embedder(Settings(embedding_provider="ollama"))
    assert isinstance(embedder, OllamaEmbedder)
    assert embedder.model == "embeddinggemma"
    assert embedder.base_url == "http://localhost:11434"


# -- errors an operator can act on -----------------------------------------------------------------------


async def test_server_not_reachable_names_the_url_without_its_password(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    url = ollama_peer.base_url.replace("http://", "http://ops:s3cret-pw@")
    ollama_peer.down()
    embedder = make_ollama_embedder(base_url=url, retries=1)
    with pytest.raises(EmbedderError) as caught:
        await embedder.load()
    text = one_line(caught.value)
    safe = url.replace("s3cret-pw", "***")
    assert f"is `ollama serve` running at {safe}?" in text
    assert "s3cret-pw" not in text and "s3cret-pw" not in repr(caught.value.to_dict())
    health = await embedder.health()
    assert health.status == "down" and "s3cret-pw" not in str(health)
    await embedder.close()


async def test_credentials_in_the_url_are_sent_as_basic_auth(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    url = ollama_peer.base_url.replace("http://", "http://ops:pw@")
    embedder = make_ollama_embedder(base_url=url)
    assert embedder.base_url == ollama_peer.base_url
    assert await embedder.load() == EmbedderIdentity("ollama", "all-minilm", 384)
    await embedder.health()
    expected = "Basic " + base64.b64encode(b"ops:pw").decode()
    assert {r.headers.get("authorization") for r in ollama_peer.requests} == {expected}
    await embedder.close()


async def test_model_not_pulled_says_which_pull_to_run(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder("embeddinggemma")
    with pytest.raises(EmbedderError) as caught:
        await embedder.load()
    assert caught.value.hint == "run `ollama pull embeddinggemma`"
    assert "embeddinggemma" in one_line(caught.value)
    assert ollama_peer.embed_calls == 1  # a 4xx is never retried
    health = await embedder.health()
    assert health.status == "down" and "ollama pull embeddinggemma" in health.detail
    await embedder.close()


async def test_model_removed_after_load_is_not_retried(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    ollama_peer.remove_model("all-minilm")
    with pytest.raises(EmbedderError, match=r"ollama pull all-minilm"):
        await ollama_embedder.embed(["x"])
    assert ollama_peer.embed_calls == 1


async def test_a_chat_model_cannot_embed(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder("llama3.2")
    with pytest.raises(EmbedderError) as caught:
        await embedder.load()
    text = one_line(caught.value)
    assert "llama3.2 cannot compute embeddings" in text
    assert "nomic-embed-text" in (caught.value.hint or "")
    assert ollama_peer.embed_calls == 1  # 501 says "never", not "later"
    await embedder.close()


async def test_a_dimension_larger_than_the_model_is_a_config_error(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder(output_dimension=1000)
    with pytest.raises(ConfigError) as caught:
        await embedder.load()
    assert caught.value.variable == "EMBEDDING_OUTPUT_DIMENSION"
    assert one_line(caught.value).startswith("EMBEDDING_OUTPUT_DIMENSION=1000:")
    assert "384" in str(caught.value)
    assert not embedder.loaded
    await embedder.close()


async def test_a_dimension_the_server_refuses_is_a_config_error(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    ollama_peer.fail(400, body="model does not support the requested number of dimensions")
    embedder = make_ollama_embedder(output_dimension=100)
    with pytest.raises(ConfigError) as caught:
        await embedder.load()
    assert caught.value.variable == "EMBEDDING_OUTPUT_DIMENSION"
    assert "dimensions" in one_line(caught.value)
    assert ollama_peer.embed_calls == 1
    await embedder.close()


async def test_a_base_url_that_is_not_ollama_says_so(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder(base_url=ollama_peer.base_url + "/v1")
    with pytest.raises(EmbedderError) as caught:
        await embedder.load()
    assert "OLLAMA_BASE_URL" in (caught.value.hint or "")
    one_line(caught.value)
    await embedder.close()


async def test_a_model_whose_vectors_change_length_is_caught(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    from tests.support.ollama_peer import PeerModel

    ollama_peer.remove_model("all-minilm")
    ollama_peer.add_model(PeerModel("all-minilm:latest", 256))  # re-pulled as something else
    with pytest.raises(EmbedderError) as caught:
        await ollama_embedder.embed(["x"])
    assert "256" in one_line(caught.value) and "384" in str(caught.value)


# -- retries and timeouts --------------------------------------------------------------------------------


async def test_a_passing_500_is_retried(ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer) -> None:
    ollama_peer.fail(500, times=2)
    vectors = await ollama_embedder.embed(["still works"])
    assert vectors.shape == (1, 384)
    assert ollama_peer.embed_calls == 3


async def test_a_lasting_500_gives_up_after_the_retries(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    ollama_peer.fail(500, body="llama runner process has terminated: signal: killed")
    with pytest.raises(EmbedderError) as caught:
        await ollama_embedder.embed(["x"])
    text = one_line(caught.value)
    assert "HTTP 500" in text and "llama runner process has terminated" in text
    assert "ollama serve" in (caught.value.hint or "")
    assert ollama_peer.embed_calls == 1 + ollama_embedder.retries


async def test_a_connection_refused_is_retried_until_the_server_is_back(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    ollama_peer.down()
    ollama_embedder.backoff = 0.4
    threading.Timer(0.1, ollama_peer.up).start()
    vectors = await ollama_embedder.embed(["back again"])
    assert vectors.shape == (1, 384)
    assert ollama_peer.embed_calls == 1  # the refused attempts never reached a server


async def test_connection_errors_give_up_after_the_retries(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    ollama_peer.down()
    started = time.perf_counter()
    with pytest.raises(EmbedderError, match=r"is `ollama serve` running at"):
        await ollama_embedder.embed(["x"])
    assert time.perf_counter() - started < 3.0


async def test_a_slow_server_times_out_without_retrying(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder()
    await embedder.load()
    embedder.timeout = 0.3
    ollama_peer.delay = 1.5
    started = time.perf_counter()
    with pytest.raises(EmbedderError) as caught:
        await embedder.embed(["x"])
    elapsed = time.perf_counter() - started
    assert "did not answer" in one_line(caught.value) and "0.3s" in str(caught.value)
    assert "SEMCACHE_EMBED_TIMEOUT" in (caught.value.hint or "")
    assert elapsed < 1.4
    assert ollama_peer.embed_calls == 2  # the probe, then one attempt
    await embedder.close()


# -- health ----------------------------------------------------------------------------------------------


async def test_health_reports_version_and_model_without_embedding(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    health = await ollama_embedder.health()
    assert health.status == "ok" and health.ok
    assert health.name == "embedder"
    assert health.facts["version"] == VERSION
    assert health.facts["model_present"] is True
    assert health.facts["dimension"] == 384
    assert health.facts["probe_ms"] > 0
    assert health.latency_ms is not None
    assert ollama_peer.embed_calls == 0
    assert len(ollama_peer.calls("/api/version")) == 1 and len(ollama_peer.calls("/api/tags")) == 1


async def test_health_is_cached_for_a_few_seconds(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    first = await ollama_embedder.health()
    ollama_peer.down()
    assert await ollama_embedder.health() is first  # within the TTL: no request, same answer
    ollama_embedder.health_ttl = 0.0
    second = await ollama_embedder.health()
    assert second.status == "down" and "ollama serve" in second.detail


async def test_health_before_load_is_loading_and_never_probes(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder()
    health = await embedder.health()
    assert health.status == "loading"
    assert ollama_peer.embed_calls == 0
    await embedder.close()


async def test_health_when_the_model_disappears(
    ollama_embedder: OllamaEmbedder, ollama_peer: OllamaPeer
) -> None:
    ollama_peer.remove_model("all-minilm")
    health = await ollama_embedder.health()
    assert health.status == "down"
    assert health.facts["model_present"] is False
    assert "run `ollama pull all-minilm`" in health.detail
    assert ollama_peer.embed_calls == 0


async def test_health_of_a_chat_model_reports_the_load_error(
    ollama_peer: OllamaPeer, make_ollama_embedder: Callable[..., OllamaEmbedder]
) -> None:
    embedder = make_ollama_embedder("llama3.2")
    with pytest.raises(EmbedderError):
        await embedder.load()
    health = await embedder.health()
    assert health.status == "down" and "cannot compute embeddings" in health.detail
    await embedder.close()


# -- the cache, end to end, with the Ollama embedder over the embedded store ------------------------------


async def remember(cache: SemanticCache, prompt: str, response: str) -> None:
    # ``store_many``, because ``SemanticCache.__init__`` assigns ``self.store`` (the vector store), which
    # hides the ``store()`` method on every instance.
    await cache.store_many([StoreRequest(prompt, response)])


@pytest.fixture
async def ollama_cache(tmp_path, ollama_embedder: OllamaEmbedder) -> AsyncIterator[SemanticCache]:  # type: ignore[no-untyped-def]
    try:
        from engine.stores.local import LocalStore
    except ImportError:
        pytest.skip("the embedded store (engine.stores.local) is being written in parallel")
    cache = SemanticCache(LocalStore(tmp_path / "data", name="ollama_cache"), ollama_embedder)
    await cache.start()
    yield cache
    await cache.close()


async def test_cache_paraphrase_hits_and_unrelated_misses(ollama_cache: SemanticCache) -> None:
    await remember(ollama_cache, "What is the capital of France?", "Paris.")
    hit = await ollama_cache.check("what's the capital of France", threshold=0.3)
    assert hit.is_hit and hit.matches[0].entry.response == "Paris."
    assert not (await ollama_cache.check("How do I bake sourdough bread?")).is_hit


async def test_cache_store_many_is_one_embed_request(
    ollama_cache: SemanticCache, ollama_peer: OllamaPeer
) -> None:
    before = ollama_peer.embed_calls
    requests = [StoreRequest(f"How tall is mountain number {i}?", f"{i} metres.") for i in range(10)]
    await ollama_cache.store_many(requests)
    assert ollama_peer.embed_calls == before + 1
    assert len(texts_of(ollama_peer.calls("/api/embed")[-1])) == 10
    assert (await ollama_cache.stats()).entries == 10


async def test_cache_exact_repeat_never_reaches_ollama(
    ollama_cache: SemanticCache, ollama_peer: OllamaPeer
) -> None:
    await remember(ollama_cache, "How many days are in a leap year?", "366.")
    before = ollama_peer.embed_calls
    result = await ollama_cache.check("how many days are in a leap year?")
    assert result.is_hit and result.exact
    assert ollama_peer.embed_calls == before


async def test_cache_index_records_the_ollama_identity_and_refuses_another_model(
    ollama_cache: SemanticCache,
    ollama_peer: OllamaPeer,
    tmp_path,
    make_ollama_embedder: Callable[..., OllamaEmbedder],
) -> None:  # type: ignore[no-untyped-def]
    from engine.stores.local import LocalStore

    await remember(ollama_cache, "What is Redis?", "An in-memory data store.")
    assert ollama_cache.vector_store.recorded_identity == EmbedderIdentity("ollama", "all-minilm", 384)
    await ollama_cache.close()
    other = SemanticCache(
        LocalStore(tmp_path / "data", name="ollama_cache"),
        make_ollama_embedder("all-minilm-256"),
    )
    with pytest.raises(IndexMismatchError) as caught:
        await other.start()
    assert "all-minilm-256" in str(caught.value) and "384" in str(caught.value)
    await other.close()


async def test_cache_with_ollama_down_raises_one_line_and_health_says_why(
    ollama_cache: SemanticCache, ollama_peer: OllamaPeer
) -> None:
    await remember(ollama_cache, "What is the boiling point of water?", "100 C at sea level.")
    ollama_peer.down()
    with pytest.raises(EmbedderError) as caught:
        await ollama_cache.check("at what temperature does water boil?")
    assert caught.value.status == 503 and "ollama serve" in one_line(caught.value)
    assert (await ollama_cache.check("What is the boiling point of water?")).exact  # no embedding needed
    report = await ollama_cache.health()
    assert report.status == "unhealthy"
    assert report.component("embedder").status == "down"  # type: ignore[union-attr]
