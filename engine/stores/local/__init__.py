"""The embedded on-disk store: SQLite for the entries (durable, shared between processes), in-memory HNSW
graphs per process for nearest-neighbour search. ``LocalStore`` is the whole public surface."""

from __future__ import annotations

from engine.stores.local.store import LocalStore

__all__ = ["LocalStore"]
