"""``LocalStore``: the embedded store, the default on a machine without a server.

SQLite (the ``database`` package) holds every entry and its exact float32 vector and is the only thing
that must survive; each process keeps HNSW graphs in memory (graphs.py) that follow SQLite's change
sequence, and snapshots them to disk so reopening a large cache does not rebuild them from scratch.

The class is put together from the modules beside it:

- ``core``: construction, SQLite work under the right lock, lazy open, graphs, background tasks (and why
  three connections);
- ``lifecycle``: bind, close, drop;
- ``entries``: get, upsert, search, delete, clear, count, purge_expired, keeping the graphs fresh;
- ``listing``: list_entries, iter_entries, get_vectors;
- ``counters``: record_lookup, flushing the pending lookups, counters;
- here: inspection (info, health).
"""

from __future__ import annotations

import os
import time
from typing import Any

from engine.errors import SemcacheError
from engine.models import ComponentHealth, IndexInfo
from engine.stores.local import database as db
from engine.stores.local.follower import folder_size
from engine.stores.local.graphs import DTYPE
from engine.stores.local.lifecycle import LifecycleMixin
from engine.stores.local.listing import ListingMixin

__all__ = ["LocalStore"]


class LocalStore(LifecycleMixin, ListingMixin):
    kind = "local"

    # -- reports -----------------------------------------------------------------------------------------

    async def info(self) -> IndexInfo:
        await self.open()
        # Not built here: a panel asking for info should not pay for a graph it never searches.
        graphs = self._follower.graphs
        documents = await self.count()
        state = await self._thread(self._read_lock, db.change_state, self._conn)
        dimension = self._identity.dimension if self._identity else None
        return IndexInfo(
            name=self.name,
            store=self.kind,
            documents=documents,
            identity=self._identity,
            algorithm="HNSW",
            metric="COSINE",
            parameters={
                "M": self.hnsw_m,
                "ef_construction": self.ef_construction,
                "ef_runtime": self.ef_search,
                "graph_dtype": DTYPE.replace("i", "int"),
                "rerank": "float32",
            },
            fields=[
                {"name": "vector", "type": "VECTOR", "dimension": dimension, "metric": "COSINE"},
                {"name": "scope", "type": "TAG"},
                {"name": "prompt", "type": "TEXT"},
                {"name": "response", "type": "TEXT"},
                {"name": "expires_at", "type": "NUMERIC"},
            ],
            memory_bytes=graphs.memory_bytes if graphs is not None else None,
            extra={
                "path": str(self.path),
                "size_on_disk_bytes": db.size_on_disk(self.path) + folder_size(self.snapshot_dir),
                "snapshot_path": str(self.snapshot_dir),
                "graph_loaded": graphs is not None,
                "graph_scopes": graphs.scopes if graphs is not None else 0,
                "graph_labels": graphs.size if graphs is not None else 0,
                "graph_from_snapshot": self._follower.from_snapshot,
                "change_sequence": state.seq,
            },
        )

    async def health(self) -> ComponentHealth:
        started = time.perf_counter()
        facts: dict[str, Any] = {"path": str(self.path)}
        if not self.data_dir.is_dir() or not os.access(self.data_dir, os.W_OK | os.X_OK):
            problem = "does not exist" if not self.data_dir.exists() else "is not a writable folder"
            return ComponentHealth("store", "down", f"data folder {self.data_dir} {problem}", None, facts)
        try:
            await self.open()
            facts["entries"] = await self._quick(self._read_lock, db.count, self._conn, time.time())
        except SemcacheError as exc:
            return ComponentHealth("store", "down", str(exc), None, facts)
        facts["size_on_disk_bytes"] = db.size_on_disk(self.path) + folder_size(self.snapshot_dir)
        latency = (time.perf_counter() - started) * 1000.0
        return ComponentHealth("store", "ok", f"local store at {self.data_dir}", latency, facts)
