"""The writes that change which vectors exist: upsert, delete, purge of expired entries, clear.

Each takes the next value of the change sequence (``meta.seq``) inside its write transaction; changed rows
carry it in ``entries.seq``, removed ones leave a tombstone in ``removed`` (pruned past ``KEEP_REMOVED``,
raising the floor), and ``clear`` raises the floor instead of writing one tombstone per entry."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import numpy as np

from engine.models import CacheEntry
from engine.stores.local.database.connection import write_transaction
from engine.stores.local.database.schema import LIVE

#: Tombstones kept for processes that are behind; an older process reconciles by ids instead.
KEEP_REMOVED = 50_000


def _next_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("UPDATE meta SET v = v + 1 WHERE k = 'seq' RETURNING v").fetchone()
    return int(row[0])


def upsert(conn: sqlite3.Connection, items: Sequence[tuple[CacheEntry, np.ndarray]]) -> int:
    """Write every item in one transaction; return its change sequence. Same key and scope: updated in
    place (same id). Same key in another scope: the old entry is removed and a new id is taken, so an id
    belongs to one scope for life and a graph never needs to move a label between scopes."""
    with write_transaction(conn):
        seq = _next_seq(conn)
        existing: dict[str, tuple[int, str]] = {}
        keys = [entry.key for entry, _ in items]
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, id_, scope in conn.execute(
                f"SELECT key, id, scope FROM entries WHERE key IN ({marks})", chunk
            ):
                existing[key] = (int(id_), str(scope))
        updates: list[tuple[object, ...]] = []
        inserts: list[tuple[object, ...]] = []
        for entry, vector in items:
            values = (
                entry.prompt,
                entry.response,
                json.dumps(entry.metadata, ensure_ascii=False),
                float(entry.created_at),
                entry.expires_at,
                int(entry.hit_count),
                seq,
                np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
            )
            found = existing.get(entry.key)
            if found is not None and found[1] == entry.scope:
                updates.append((*values, found[0]))
                continue
            if found is not None:
                conn.execute("DELETE FROM entries WHERE id = ?", (found[0],))
                conn.execute(
                    "INSERT INTO removed (id, scope, seq) VALUES (?, ?, ?)", (found[0], found[1], seq)
                )
            inserts.append((entry.key, entry.scope, *values))
        conn.executemany(
            "UPDATE entries SET prompt = ?, response = ?, metadata = ?, created_at = ?, expires_at = ?, "
            "hit_count = ?, seq = ?, vector = ? WHERE id = ?",
            updates,
        )
        conn.executemany(
            "INSERT INTO entries (key, scope, prompt, response, metadata, created_at, expires_at, hit_count, "
            "seq, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        return seq


def purge_expired(conn: sqlite3.Connection, now: float) -> int:
    """Delete expired entries, leaving a tombstone for each so other processes drop them from their graph."""
    with write_transaction(conn):
        victims = conn.execute(
            "SELECT id, scope FROM entries WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
        ).fetchall()
        if not victims:
            return 0
        seq = _next_seq(conn)
        conn.executemany("DELETE FROM entries WHERE id = ?", [(id_,) for id_, _ in victims])
        conn.executemany(
            "INSERT OR REPLACE INTO removed (id, scope, seq) VALUES (?, ?, ?)",
            [(id_, scope, seq) for id_, scope in victims],
        )
    _prune_tombstones(conn)
    return len(victims)


def delete(conn: sqlite3.Connection, key: str, now: float) -> bool:
    """True when a live entry was deleted (an expired one is removed as well, but it was already gone)."""
    with write_transaction(conn):
        row = conn.execute("SELECT id, scope, expires_at FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return False
        id_, scope, expires_at = row
        seq = _next_seq(conn)
        conn.execute("DELETE FROM entries WHERE id = ?", (id_,))
        conn.execute("INSERT OR REPLACE INTO removed (id, scope, seq) VALUES (?, ?, ?)", (id_, scope, seq))
        return expires_at is None or float(expires_at) > now


def _prune_tombstones(conn: sqlite3.Connection) -> None:
    if conn.execute("SELECT COUNT(*) FROM removed").fetchone()[0] <= 2 * KEEP_REMOVED:
        return
    with write_transaction(conn):
        row = conn.execute(
            "SELECT seq FROM removed ORDER BY seq DESC LIMIT 1 OFFSET ?", (KEEP_REMOVED,)
        ).fetchone()
        if row is None:
            return
        cut = int(row[0])
        conn.execute("DELETE FROM removed WHERE seq <= ?", (cut,))
        conn.execute("UPDATE meta SET v = MAX(v, ?) WHERE k = 'floor'", (cut,))


def clear(conn: sqlite3.Connection, now: float) -> int:
    """Delete every entry; raising the floor tells other processes to drop their whole graph, instead of
    writing one tombstone per entry."""
    with write_transaction(conn):
        live = int(conn.execute(f"SELECT COUNT(*) FROM entries WHERE {LIVE}", (now,)).fetchone()[0])
        seq = _next_seq(conn)
        conn.execute("DELETE FROM entries")
        conn.execute("DELETE FROM removed")
        conn.execute("UPDATE meta SET v = ? WHERE k = 'floor'", (seq,))
        return live
