"""Logical imports: a backup file checked whole, then loaded into a cache.

Imports read the whole file once to validate it (header, every line, the count, gzip's checksum) before
writing anything, so a damaged file changes nothing; then they write in batches through
``SemanticCache.restore_entries``, which derives keys from (scope, prompt): importing twice updates, never
duplicates. Vectors are reused only when the file's embedder identity is the cache's; otherwise prompts are
embedded again.

An import marks the index while it writes: the note ``import`` (``VectorStore.set_note``) is written before
the first entry, updated after each batch (entries written so far) and removed after the last. An import
killed half-way leaves it behind, so health (``semcache-tui health``, the panel, ``/health``) and
``semcache-tui backup list`` say "import incomplete" until the import is run again to the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.backup import format as backup_format
from engine.backup.format import _DAMAGED_HINT, Progress, _entries, _Header, _open_backup, _parse_header
from engine.cache import SemanticCache
from engine.errors import InvalidInputError
from engine.models import CacheEntry
from engine.stores.base import IMPORT_NOTE


@dataclass(slots=True)
class ImportSummary:
    path: Path
    total: int
    written: int
    expired: int
    embedded: int
    #: True when the file's vectors were reused (same embedder identity as the cache's).
    reused_vectors: bool


def _validate(cache: SemanticCache, path: Path) -> _Header:
    """Read the whole file once: header, every entry under the cache's rules, the count, the checksum."""
    with _open_backup(path) as lines:
        header = _parse_header(path, next(lines, ""))
        seen = 0
        for entry, _ in _entries(path, header, lines):
            seen += 1
            if seen > header.count:  # stop at once: the rest of the file may be endless
                raise InvalidInputError(
                    f"{path} is damaged: more entries than the {header.count} its header says", _DAMAGED_HINT
                )
            try:
                cache.prepare_restore(entry)
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"{path} is damaged: entry {seen}: {exc.message}", _DAMAGED_HINT
                ) from None
    if seen != header.count:
        raise InvalidInputError(
            f"{path} is damaged: {seen} entries, the header says {header.count}", _DAMAGED_HINT
        )
    return header


async def import_entries(
    cache: SemanticCache,
    path: Path | str,
    *,
    progress: Progress | None = None,
    replace: bool = False,
) -> ImportSummary:
    """Load a backup into ``cache``. Nothing is written unless the whole file is valid.

    With ``replace``, the cache is cleared first (after validation), so it holds exactly the backup.
    """
    path = Path(path)
    await cache.open_store()
    header = await asyncio.to_thread(_validate, cache, path)
    identity = await cache.start()
    reuse = header.vectors and header.identity == identity
    store = cache.vector_store
    marker: dict[str, Any] = {
        "file": str(path),
        "started_at": time.time(),
        "written": 0,
        "total": header.count,
        "replace": replace,
    }
    await store.set_note(IMPORT_NOTE, marker)  # before the first write, so no interruption goes unseen
    if replace:
        await cache.clear()
    summary = ImportSummary(path, header.count, 0, 0, 0, reuse)
    done = 0
    with _open_backup(path) as lines:
        next(lines)
        entries = _entries(path, header, lines)
        while True:
            batch = await asyncio.to_thread(_take, entries, backup_format.BATCH)
            if not batch:
                break
            vectors = [vector if reuse else None for _, vector in batch]
            result = await cache.restore_entries([entry for entry, _ in batch], vectors)
            summary.written += result.written
            summary.expired += result.expired
            summary.embedded += result.embedded
            done += len(batch)
            await store.set_note(IMPORT_NOTE, {**marker, "written": done})
            if progress is not None:
                progress(done, header.count)
    await store.set_note(IMPORT_NOTE, None)
    return summary


def describe_import(marker: dict[str, Any]) -> str:
    """One line for an import marker left in a store (health, ``backup list``, the panel)."""
    started = marker.get("started_at")
    when = (
        datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if isinstance(started, int | float)
        else "at an unknown time"
    )
    return (
        f"import incomplete: {marker.get('file', 'a backup')} (started {when}, "
        f"{marker.get('written', '?')} of {marker.get('total', '?')} entries written); "
        "rerun `semcache-tui backup import` with that file to complete it"
    )


def _take(
    entries: Iterator[tuple[CacheEntry, np.ndarray | None]], n: int
) -> list[tuple[CacheEntry, np.ndarray | None]]:
    batch = []
    for item in entries:
        batch.append(item)
        if len(batch) == n:
            break
    return batch
