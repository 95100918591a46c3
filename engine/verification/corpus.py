"""Labeled pairs and their bundled-model vectors, for training and evaluating the verifier.

Training and the bench embed the same ~110k QQP questions again and again; on 2 shared cores that is
minutes each time, so vectors are kept in a cache folder (``.cache/verifier/`` in the repository, which
is gitignored) keyed by a hash of the text. Nothing here is used by the cache at serving time.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The repository root (engine/verification/corpus.py -> parents[2]).
REPO = Path(__file__).resolve().parents[2]
#: The shared data folder sits beside the repository (or the worktree): ``<repo>/../shared/data``.
DEFAULT_DATA_DIR = REPO / ".." / "shared" / "data"
DEFAULT_CACHE_DIR = REPO / ".cache" / "verifier"

EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True, slots=True)
class Pair:
    text_a: str
    text_b: str
    label: int
    category: str = "qqp"
    split: str = ""
    #: Optional: label-1 pairs with the same value ask the same question (evaluate.py's correct answers).
    question: str = ""


def read_pairs(path: str | Path) -> list[Pair]:
    """Every ``{text_a, text_b, label[, category, split, question]}`` line of a JSON lines file (gzip or plain)."""
    path = Path(path)
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    pairs: list[Pair] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            pairs.append(
                Pair(
                    str(row["text_a"]),
                    str(row["text_b"]),
                    1 if int(row["label"]) else 0,
                    str(row.get("category", "qqp")),
                    str(row.get("split", "")),
                    str(row.get("question", "")),
                )
            )
    return pairs


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class VectorCache:
    """Bundled-model vectors of texts, computed once and kept on disk in one ``.npz`` per cache folder."""

    def __init__(self, folder: Path = DEFAULT_CACHE_DIR, embed: EmbedFn | None = None) -> None:
        self.folder = folder
        self.file = folder / "vectors.npz"
        self._embed = embed
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, 384), dtype=np.float32)
        if self.file.exists():
            with np.load(self.file, allow_pickle=False) as data:
                keys = [str(k) for k in data["keys"]]
                self._vectors = np.asarray(data["vectors"], dtype=np.float32)
            self._index = {k: i for i, k in enumerate(keys)}

    def _embedder(self) -> EmbedFn:
        if self._embed is None:
            self._embed = bundled_embed_fn()
        return self._embed

    def vectors(self, texts: Sequence[str], batch: int = 512, progress: bool = False) -> np.ndarray:
        """The (n, 384) unit vectors of ``texts``, embedding (and saving) only the ones not cached yet."""
        missing = sorted({t for t in texts if _key(t) not in self._index})
        # Saved every ``chunk`` texts: a long run that dies keeps what it embedded.
        chunk = batch * 20
        for begin in range(0, len(missing), chunk):
            part = missing[begin : begin + chunk]
            embed = self._embedder()
            vectors = [
                np.asarray(embed(part[i : i + batch]), dtype=np.float32) for i in range(0, len(part), batch)
            ]
            self._add(part, np.concatenate(vectors))
            if progress:
                print(f"  embedded {begin + len(part)}/{len(missing)}", flush=True)
        return self._vectors[[self._index[_key(t)] for t in texts]]

    def _add(self, texts: Iterable[str], vectors: np.ndarray) -> None:
        keys = [_key(t) for t in texts]
        base = len(self._vectors)
        self._vectors = np.concatenate([self._vectors, vectors.astype(np.float32)])
        for offset, key in enumerate(keys):
            self._index[key] = base + offset
        self.folder.mkdir(parents=True, exist_ok=True)
        ordered = sorted(self._index.items(), key=lambda kv: kv[1])
        partial = self.file.with_suffix(".partial.npz")
        np.savez(partial, keys=np.array([k for k, _ in ordered]), vectors=self._vectors)
        partial.replace(self.file)


def bundled_embed_fn() -> EmbedFn:
    """The bundled all-MiniLM-L6-v2 (ONNX Runtime when possible), as a plain function of texts."""
    from engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.load_sync()

    def embed(texts: Sequence[str]) -> np.ndarray:
        return embedder.embed_sync(list(texts))

    return embed
