"""The ``Embedder`` protocol: turn many texts into unit-normalized float32 vectors, off the event loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from engine.models import ComponentHealth, EmbedderIdentity

#: Texts per forward pass of a local model, on torch and on ONNX Runtime alike. A call's texts are sorted
#: by length and each pass is padded to its longest text, so small passes waste little on padding: on 2 CPU
#: cores, 32 mixed-length questions embed about 1.4x faster in passes of 8 than in one pass of 32 (271
#: against 188 questions/s on torch, measured when this was chosen); 8 was also fastest on ONNX Runtime.
MICRO_BATCH = 8


@runtime_checkable
class Embedder(Protocol):
    provider: str
    model: str

    @property
    def identity(self) -> EmbedderIdentity | None:
        """Known once ``load`` has finished (the dimension may come from the model or the server)."""

    @property
    def loaded(self) -> bool: ...

    async def load(self) -> EmbedderIdentity:
        """Load the model or probe the server, once; later calls return the cached identity."""

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dimension) float32 array of unit vectors, in the order of ``texts``."""

    async def health(self) -> ComponentHealth:
        """Cheap: never computes an embedding."""

    async def close(self) -> None: ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit-normalize each row (after any truncation), so cosine distance is 1 - dot product."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)
