"""The bundled model on ONNX Runtime: exported once, the same vectors as torch, later loads without torch.

Every test here exports into its own temporary cache folder, so each one sees the real export; the rest of
the suite shares one export per session (tests/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.embeddings import onnx_runtime
from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder, bundled_model_path
from engine.errors import EmbedderError
from tests.conftest import shared_embedder

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "What is the best way to learn Python?",
    "How do I learn Python quickly?",
    "x",
    "Why is the sky blue during the day but red at sunset?",
    " ".join(["a very long prompt"] * 300),  # past the model's 256 tokens: truncation must match
    "Ünïcödé and emoji 🙂",
]


def torch_embedder(**kwargs: object) -> SentenceTransformerEmbedder:
    embedder = SentenceTransformerEmbedder(backend="torch", **kwargs)  # type: ignore[arg-type]
    embedder.load_sync()
    assert embedder.runtime == "torch"
    return embedder


def test_first_load_exports_and_matches_torch(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(cache_dir=tmp_path)
    embedder.load_sync()
    assert embedder.runtime == "onnxruntime" and embedder.onnx_skipped is None
    (folder,) = tmp_path.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.onnx", "tokenizer.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (
        manifest["pooling"] == "mean" and manifest["dimension"] == 384 and manifest["max_seq_length"] == 256
    )

    reference = torch_embedder().embed_sync(TEXTS)
    got = embedder.embed_sync(TEXTS)
    assert got.shape == reference.shape == (len(TEXTS), 384)
    assert float((got * reference).sum(axis=1).min()) > 0.9999
    # Micro-batches run in parallel and in length order: rows must still come back in the caller's order.
    many = [f"question number {i} about {'x' * (i % 17)}" for i in range(50)]
    np.testing.assert_allclose(embedder.embed_sync(many)[7], embedder.embed_sync([many[7]])[0], atol=1e-5)


def test_a_cached_export_loads_without_importing_torch(tmp_path: Path) -> None:
    SentenceTransformerEmbedder(cache_dir=tmp_path).load_sync()
    script = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder\n"
        f"e = SentenceTransformerEmbedder(cache_dir=Path({str(tmp_path)!r}))\n"
        "e.load_sync()\n"
        "v = e.embed_sync(['How do I learn Python quickly?'])\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'runtime': e.runtime, 'vector': v[0].tolist()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["torch"] is False and result["runtime"] == "onnxruntime"
    expected = shared_embedder().embed_sync(["How do I learn Python quickly?"])[0]
    assert float(np.dot(np.asarray(result["vector"]), expected)) > 0.9999


def test_a_damaged_cache_is_exported_again(tmp_path: Path) -> None:
    SentenceTransformerEmbedder(cache_dir=tmp_path).load_sync()
    (folder,) = tmp_path.iterdir()
    (folder / "model.onnx").write_bytes(b"not a model")
    again = SentenceTransformerEmbedder(cache_dir=tmp_path)
    again.load_sync()
    assert again.runtime == "onnxruntime"
    assert (folder / "model.onnx").stat().st_size > 1_000_000
    assert float(np.dot(again.embed_sync(["hello"])[0], shared_embedder().embed_sync(["hello"])[0])) > 0.9999


def test_torch_backend_writes_nothing(tmp_path: Path) -> None:
    torch_embedder(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_output_dimension_on_onnx_matches_torch(tmp_path: Path) -> None:
    onnx = SentenceTransformerEmbedder(output_dimension=128, cache_dir=tmp_path)
    assert onnx.load_sync().dimension == 128 and onnx.runtime == "onnxruntime"
    got, expected = onnx.embed_sync(TEXTS[:3]), torch_embedder(output_dimension=128).embed_sync(TEXTS[:3])
    assert got.shape == (3, 128)
    assert float((got * expected).sum(axis=1).min()) > 0.9999


@pytest.fixture
def prompted_model(tmp_path: Path) -> Path:
    source = Path(bundled_model_path("all-MiniLM-L6-v2") or "")
    target = tmp_path / "prompted"
    target.mkdir()
    for item in source.iterdir():
        if item.name != "config_sentence_transformers.json":
            (target / item.name).symlink_to(item)
    config = json.loads((source / "config_sentence_transformers.json").read_text())
    config["prompts"] = {"query": "query: ", "document": ""}
    (target / "config_sentence_transformers.json").write_text(json.dumps(config))
    return target


def test_a_model_with_a_prompt_stays_on_torch_and_says_why(prompted_model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    embedder = SentenceTransformerEmbedder(model=str(prompted_model), cache_dir=cache)
    embedder.load_sync()
    assert embedder.runtime == "torch" and embedder.onnx_skipped == "the model uses a query prompt"
    assert not cache.exists() or list(cache.iterdir()) == []

    strict = SentenceTransformerEmbedder(model=str(prompted_model), cache_dir=cache, backend="onnx")
    with pytest.raises(EmbedderError) as caught:
        strict.load_sync()
    assert "query prompt" in str(caught.value) and "EMBEDDING_BACKEND" in (caught.value.hint or "")


def test_fingerprint_follows_the_model_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    first = onnx_runtime.fingerprint(tmp_path)
    assert onnx_runtime.fingerprint(tmp_path) == first
    (tmp_path / "config.json").write_text('{"changed": true}')
    assert onnx_runtime.fingerprint(tmp_path) != first


def test_a_cache_folder_that_cannot_be_written_leaves_the_model_on_torch(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the model cache should be")  # refused even to root, unlike chmod
    embedder = SentenceTransformerEmbedder(cache_dir=blocked)
    embedder.load_sync()
    assert embedder.runtime == "torch"
    assert (embedder.onnx_skipped or "").startswith("the ONNX export failed")
    assert (
        float(np.dot(embedder.embed_sync(["hello"])[0], shared_embedder().embed_sync(["hello"])[0])) > 0.9999
    )

    strict = SentenceTransformerEmbedder(cache_dir=blocked, backend="onnx")
    with pytest.raises(EmbedderError) as caught:
        strict.load_sync()
    assert "cannot run on ONNX Runtime" in str(caught.value)
