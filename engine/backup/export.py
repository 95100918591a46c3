"""Logical exports: every live entry of a cache, written to a backup file (the format is in ``format``)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from engine.backup import format as backup_format
from engine.backup.catalog import _unused, backup_name
from engine.backup.format import FORMAT, VERSION, Progress, _entry_line, _write_gzip
from engine.cache import SemanticCache
from engine.errors import BackendUnavailableError
from engine.models import CacheEntry, EmbedderIdentity
from engine.redact import redact_url


@runtime_checkable
class VectorReader(Protocol):
    """The store capability an export needs to carry vectors (both stores have it). A store without it
    gets an export without vectors (the header says so), and its import embeds the prompts again."""

    async def get_vectors(self, keys: list[str]) -> dict[str, np.ndarray]: ...


@dataclass(slots=True)
class ExportSummary:
    path: Path
    count: int
    vectors: bool
    bytes: int
    identity: EmbedderIdentity | None
    #: Why vectors were asked for but not written, when that happened.
    note: str | None = None


async def export_entries(
    cache: SemanticCache,
    path: Path | str,
    *,
    include_vectors: bool,
    progress: Progress | None = None,
    source: str | None = None,
) -> ExportSummary:
    """Write every live entry of ``cache`` to ``path`` (gzip JSON lines, replaced atomically).

    Needs only the store (no embedding model). ``source`` (say, the Redis URL) is recorded redacted.
    """
    path = Path(path)
    identity = await cache.open_store()
    store = cache.vector_store
    reader = store if include_vectors and isinstance(store, VectorReader) else None
    note = None
    if include_vectors and reader is None:
        note = f"the {store.kind} store cannot return stored vectors; the import will embed the prompts"
    total = await store.count()
    now = time.time()
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    # The header carries the count, so entries are spooled first and the file is written once at the end.
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=path.parent) as body:
        async for batch in cache.iter_entries(backup_format.BATCH):
            vectors: dict[str, np.ndarray] = {}
            if reader is not None:
                vectors = await reader.get_vectors([entry.key for entry in batch])
                batch = await _still_present(cache, batch, vectors)
            lines = [_entry_line(entry, now, vectors.get(entry.key)) for entry in batch]
            await asyncio.to_thread(body.writelines, lines)
            count += len(batch)
            if progress is not None:
                progress(count, max(total, count))
        header = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.fromtimestamp(now, UTC).isoformat(),
            "index_name": store.name,
            "store": store.kind,
            "embedder": identity.to_dict() if identity is not None else None,
            "vectors": reader is not None,
            "count": count,
        }
        if source:
            header["source"] = redact_url(source)
        await asyncio.to_thread(_write_gzip, path, header, body)
    return ExportSummary(path, count, reader is not None, path.stat().st_size, identity, note)


async def _still_present(
    cache: SemanticCache, batch: list[CacheEntry], vectors: dict[str, np.ndarray]
) -> list[CacheEntry]:
    """``batch`` without the entries that expired or were deleted between listing them and reading their
    vectors (a live cache changes during a long export); an entry still there without a vector is an error."""
    missing = [entry for entry in batch if entry.key not in vectors]
    for entry in missing:
        if await cache.vector_store.get(entry.key) is not None:
            raise BackendUnavailableError(
                f"the store returned entry {entry.key} without its vector", "run the export without vectors"
            )
    return [entry for entry in batch if entry.key in vectors] if missing else batch


async def create_backup(
    cache: SemanticCache,
    directory: Path,
    *,
    include_vectors: bool = False,
    progress: Progress | None = None,
    source: str | None = None,
    now: float | None = None,
) -> ExportSummary:
    """A logical export into ``directory``, named ``semcache-<index>-<UTC timestamp>.jsonl.gz``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = backup_name(cache.vector_store.name, time.time() if now is None else now)
    return await export_entries(
        cache, _unused(directory / name), include_vectors=include_vectors, progress=progress, source=source
    )
