"""Reading entries: one by key, the live candidates a graph search returned (with their vectors), the live
count, a page of the newest entries, the keyset walk over every entry, and stored vectors by key."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.models import CacheEntry
from engine.stores.local.database.connection import read_transaction
from engine.stores.local.database.schema import ENTRY_COLUMNS, LIVE, entry_from_row


def get(conn: sqlite3.Connection, key: str, now: float) -> CacheEntry | None:
    row = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE key = ? AND {LIVE}", (key, now)).fetchone()
    return None if row is None else entry_from_row(row)


def candidates(conn: sqlite3.Connection, ids: Sequence[int], now: float) -> list[tuple[Any, ...]]:
    """The live entries among ``ids``: each row is the entry's columns (``entry_from_row``) then its vector.
    One query for candidates and results alike; only the rows chosen are turned into entries."""
    marks = ",".join("?" * len(ids))
    # Expiry is tested here rather than in SQL: with it in the WHERE clause the planner scans the expiry
    # index instead of looking the ids up, six times slower.
    rows = conn.execute(f"SELECT {ENTRY_COLUMNS}, vector FROM entries WHERE id IN ({marks})", tuple(ids))
    return [row for row in rows if row[7] is None or row[7] > now]


def count(conn: sqlite3.Connection, now: float) -> int:
    # Two index-backed counts instead of a scan testing every row's expiry.
    total = int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
    expired = conn.execute(
        "SELECT COUNT(*) FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
    )
    return total - int(expired.fetchone()[0])


def list_entries(
    conn: sqlite3.Connection, *, offset: int, limit: int, scope: str | None, contains: str | None, now: float
) -> tuple[list[CacheEntry], int]:
    """Newest first; ``contains`` matches prompt or response, ignoring ASCII case."""
    where = [LIVE]
    args: list[object] = [now]
    if scope is not None:
        where.append("scope = ?")
        args.append(scope)
    if contains:
        pattern = "%" + contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(prompt LIKE ? ESCAPE '\\' OR response LIKE ? ESCAPE '\\')")
        args.extend([pattern, pattern])
    clause = " AND ".join(where)
    with read_transaction(conn):
        total = int(conn.execute(f"SELECT COUNT(*) FROM entries WHERE {clause}", args).fetchone()[0])
        rows = conn.execute(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {clause} ORDER BY created_at DESC, id DESC "
            "LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
    return [entry_from_row(row) for row in rows], total


def entries_after(
    conn: sqlite3.Connection, after: str | None, limit: int, scope: str | None, now: float
) -> list[CacheEntry]:
    """Up to ``limit`` live entries whose key sorts after ``after``, in key order: keyset pagination over
    the unique key index, so a walk sees every entry once however many are written or expire meanwhile
    (an OFFSET would shift under it)."""
    where = [LIVE]
    args: list[object] = [now]
    if after is not None:
        where.append("key > ?")
        args.append(after)
    if scope is not None:
        where.append("scope = ?")
        args.append(scope)
    rows = conn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE {' AND '.join(where)} ORDER BY key LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [entry_from_row(row) for row in rows]


def vectors(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The stored float32 vector of each key present (expired or not: the caller listed it live)."""
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for key, blob in conn.execute(f"SELECT key, vector FROM entries WHERE key IN ({marks})", chunk):
            found[str(key)] = np.frombuffer(bytes(blob), dtype=np.float32).copy()
    return found
