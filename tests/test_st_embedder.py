"""The sentence-transformers embedder: query prompts, HF_TOKEN, and the hub's errors as one line each.

Load failures are produced by the real libraries: an offline load of a model that is not cached, and a
load against a local stand-in of the Hugging Face Hub (a small HTTP server, pointed at by HF_ENDPOINT in a
subprocess) that answers as the hub does for gated, private and bad-token requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from engine.config import Settings
from engine.embeddings import create_embedder
from engine.embeddings.sentence_transformers import (
    SentenceTransformerEmbedder,
    _hub_error,
    bundled_model_path,
)
from engine.errors import ConfigError, EmbedderError
from tests.conftest import shared_embedder

ROOT = Path(__file__).resolve().parents[1]
QUERY_PROMPT = "task: search result | query: "


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


# -- prompts ---------------------------------------------------------------------------------------------


@pytest.fixture
def model_with_prompts(tmp_path: Path) -> Path:
    """The bundled model with an EmbeddingGemma-style prompt table (files linked, config rewritten)."""
    source = Path(bundled_model_path("all-MiniLM-L6-v2") or "")
    if not source.is_dir():
        pytest.skip("the bundled model package is not installed")
    target = tmp_path / "prompted-model"
    target.mkdir()
    for item in source.iterdir():
        if item.name != "config_sentence_transformers.json":
            (target / item.name).symlink_to(item)
    config = json.loads((source / "config_sentence_transformers.json").read_text())
    config["prompts"] = {"query": QUERY_PROMPT, "document": "title: none | text: "}
    config["default_prompt_name"] = "document"
    (target / "config_sentence_transformers.json").write_text(json.dumps(config))
    return target


async def test_a_model_with_a_query_prompt_uses_it_for_every_text(model_with_prompts: Path) -> None:
    embedder = SentenceTransformerEmbedder(model=str(model_with_prompts))
    await embedder.load()
    got = await embedder.embed(["What is the capital of France?"])
    plain = shared_embedder().embed_sync([QUERY_PROMPT + "What is the capital of France?"])
    document = shared_embedder().embed_sync(["title: none | text: What is the capital of France?"])
    assert np.allclose(got, plain, atol=1e-5)  # the query prompt, never the default (document) one
    assert not np.allclose(got, document, atol=1e-3)
    await embedder.close()


def test_a_model_without_a_prompt_embeds_the_text_as_is() -> None:
    embedder = shared_embedder()
    assert embedder._prompt_name is None
    from sentence_transformers import SentenceTransformer

    raw = SentenceTransformer(bundled_model_path("all-MiniLM-L6-v2"), device="cpu", local_files_only=True)
    expected = raw.encode(["hello there"], convert_to_numpy=True)
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(embedder.embed_sync(["hello there"]), expected, atol=1e-5)


async def test_output_dimension_truncates_and_renormalizes() -> None:
    embedder = SentenceTransformerEmbedder(output_dimension=128)
    identity = await embedder.load()
    assert identity.dimension == 128
    vectors = await embedder.embed(["one", "two"])
    assert vectors.shape == (2, 128) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


async def test_output_dimension_over_the_model_is_a_config_error() -> None:
    embedder = SentenceTransformerEmbedder(output_dimension=1000)
    with pytest.raises(ConfigError) as caught:
        await embedder.load()
    assert caught.value.variable == "EMBEDDING_OUTPUT_DIMENSION" and "384" in one_line(caught.value)
    assert (await embedder.health()).status == "down"


# -- loading from the hub --------------------------------------------------------------------------------


def test_hf_token_reaches_the_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_from_environment")
    embedder = create_embedder(Settings(embedding_model="google/embeddinggemma-300m"))
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder._hf_token == "hf_from_environment"
    assert "hf_from_environment" not in repr(Settings())


async def test_a_model_not_cached_while_offline_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder(model="acme/not-bundled-embedder")
    with pytest.raises(EmbedderError) as caught:
        await embedder.load()
    text = one_line(caught.value)
    assert "acme/not-bundled-embedder" in text and "HF_HUB_OFFLINE" in text
    assert "bundled all-MiniLM-L6-v2" in (caught.value.hint or "")
    health = await embedder.health()
    assert health.status == "down" and "HF_HUB_OFFLINE" in health.detail


def test_hub_errors_found_anywhere_in_the_chain_of_causes() -> None:
    """transformers wraps the hub's errors in a plain OSError; the cause decides the message."""
    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.utils import hf_raise_for_status

    def hub_answer(status: int, **headers: str) -> Exception:
        request = httpx2.Request("GET", "https://huggingface.co/api/models/acme/model")
        try:
            hf_raise_for_status(httpx2.Response(status, headers=headers, request=request))
        except Exception as exc:
            try:
                raise OSError("acme/model is not a local folder and is not a valid model identifier") from exc
            except OSError as wrapped:
                return wrapped
        raise AssertionError("the hub client accepted an error status")

    gated = _hub_error("acme/model", hub_answer(403, **{"X-Error-Code": "GatedRepo"}))
    assert "gated" in one_line(gated) and "accept its licence" in (gated.hint or "")
    private = _hub_error("acme/model", hub_answer(401))
    assert "accept its licence" in (private.hint or "") and "hf auth login" in (private.hint or "")
    bad_token = _hub_error(
        "acme/model", hub_answer(401, **{"X-Error-Message": "Invalid credentials in Authorization header"})
    )
    assert "401" in one_line(bad_token) and "HF_TOKEN" in (bad_token.hint or "")
    try:
        raise OSError("We couldn't connect to 'https://huggingface.co'") from LocalEntryNotFoundError(
            "no cache"
        )
    except OSError as exc:
        offline = _hub_error("acme/model", exc)
    assert "HF_HUB_OFFLINE" in one_line(offline)
    unknown = _hub_error("acme/model", RuntimeError("first line\nsecond line with hf_secret"), "hf_secret")
    assert one_line(unknown) == "model acme/model could not be loaded: first line"


class _HubStandIn(BaseHTTPRequestHandler):
    """Answers every request as the Hugging Face Hub does for the repository in its path."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]] = []

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _answer(self) -> None:
        self.seen.append((self.path, self.headers.get("authorization")))
        headers: dict[str, str] = {}
        if "embeddinggemma" in self.path:
            status, headers["X-Error-Code"] = 403, "GatedRepo"
            headers["X-Error-Message"] = "Access to model google/embeddinggemma-300m is restricted."
        elif "bad-token" in self.path:
            status, headers["X-Error-Message"] = 401, "Invalid credentials in Authorization header"
        else:
            status = 401  # the hub's answer for a private repository and for one that does not exist
        body = json.dumps({"error": headers.get("X-Error-Message", "Repository not found")}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _answer


@pytest.fixture
def hub_stand_in() -> Iterator[str]:
    _HubStandIn.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_hf_token_reaches_the_hub_and_its_refusals_become_hints(hub_stand_in: str, tmp_path: Path) -> None:
    # huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, at import: a fresh interpreter is needed.
    code = """
import json
from engine.config import Settings
from engine.embeddings import create_embedder
from engine.errors import EmbedderError
for model in ("google/embeddinggemma-300m", "acme/private-embedder", "acme/bad-token"):
    try:
        create_embedder(Settings(embedding_model=model)).load_sync()
    except EmbedderError as exc:
        print(json.dumps({"model": model, "text": str(exc), "hint": exc.hint}))
"""
    env = {
        **os.environ,
        "HF_ENDPOINT": hub_stand_in,
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "HF_TOKEN": "hf_secret_for_tests",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    answers = {a["model"]: a for a in map(json.loads, done.stdout.splitlines())}
    assert set(answers) == {"google/embeddinggemma-300m", "acme/private-embedder", "acme/bad-token"}, (
        done.stderr
    )
    assert _HubStandIn.seen and all(auth == "Bearer hf_secret_for_tests" for _, auth in _HubStandIn.seen)
    for answer in answers.values():
        assert "\n" not in answer["text"] and "hf_secret_for_tests" not in answer["text"]
    gated = answers["google/embeddinggemma-300m"]
    assert "is gated" in gated["text"] and "accept its licence" in gated["hint"]
    private = answers["acme/private-embedder"]
    assert "gated or private" in private["text"] and "hf auth login" in private["hint"]
    assert "HF_TOKEN" in answers["acme/bad-token"]["hint"]
