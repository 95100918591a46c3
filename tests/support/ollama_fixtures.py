"""Pytest plugin: the Ollama protocol peer (tests/support/ollama_peer.py) and embedders against it.

- ``ollama_peer``: the session's peer, reset before each test (healthy, default models, no delay, no
  recorded requests); ``base_url`` and the failure switches are on it.
- ``make_ollama_embedder``: a factory of unloaded ``OllamaEmbedder``s on the peer (model and options
  can be changed), for tests of loading and of failures;
- ``ollama_embedder``: an ``OllamaEmbedder`` for ``all-minilm`` on the peer, loaded (probed), with short
  timeouts and backoff so failure tests stay quick; the probe is then cleared from ``requests``, so a
  test sees only the requests it caused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from engine.embeddings.ollama import OllamaEmbedder
from tests.support.ollama_peer import OllamaPeer

PEER_MODEL = "all-minilm"


def _shared_embed_fn():  # type: ignore[no-untyped-def]
    # The session's bundled model (tests/conftest.py) serves the peer too: one copy in memory.
    from tests.conftest import shared_embedder

    return shared_embedder().embed_sync


@pytest.fixture(scope="session")
def _ollama_peer_session() -> Iterator[OllamaPeer]:
    peer = OllamaPeer(embed_fn=_shared_embed_fn()).start()
    yield peer
    peer.stop()


@pytest.fixture
def ollama_peer(_ollama_peer_session: OllamaPeer) -> Iterator[OllamaPeer]:
    _ollama_peer_session.reset()
    yield _ollama_peer_session
    _ollama_peer_session.reset()


def ollama_embedder_on(peer: OllamaPeer, model: str = PEER_MODEL, **kwargs: object) -> OllamaEmbedder:
    options: dict[str, object] = {"base_url": peer.base_url, "timeout": 5.0, "retries": 2, "backoff": 0.01}
    options.update(kwargs)
    return OllamaEmbedder(model=model, **options)  # type: ignore[arg-type]


@pytest.fixture
def make_ollama_embedder(ollama_peer: OllamaPeer) -> Callable[..., OllamaEmbedder]:
    def factory(model: str = PEER_MODEL, **kwargs: object) -> OllamaEmbedder:
        return ollama_embedder_on(ollama_peer, model, **kwargs)

    return factory


@pytest.fixture
async def ollama_embedder(ollama_peer: OllamaPeer) -> AsyncIterator[OllamaEmbedder]:
    embedder = ollama_embedder_on(ollama_peer)
    await embedder.load()
    ollama_peer.clear_requests()
    yield embedder
    await embedder.close()
