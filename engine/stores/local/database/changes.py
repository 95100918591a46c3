"""Reading the change sequence: where it stands, and what changed after a given point (tombstones, rows
written, or every live id when the tombstones needed are gone). This is what a process's graph follower
applies to catch up with every process's writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class ChangeState:
    """Where the change sequence stands: ``seq`` is the last change, ``floor`` the first one whose
    tombstones are all still kept (raised by ``clear`` and by pruning)."""

    seq: int
    floor: int


def change_state(conn: sqlite3.Connection) -> ChangeState:
    rows = dict(conn.execute("SELECT k, v FROM meta WHERE k IN ('seq', 'floor')").fetchall())
    return ChangeState(seq=int(rows["seq"]), floor=int(rows["floor"]))


def removed_since(conn: sqlite3.Connection, seq: int) -> list[tuple[int, str]]:
    return [(int(i), str(s)) for i, s in conn.execute("SELECT id, scope FROM removed WHERE seq > ?", (seq,))]


def changed_since(
    conn: sqlite3.Connection, seq: int, batch: int = 2048
) -> Iterator[list[tuple[int, str, bytes]]]:
    """Rows written after ``seq``, ``batch`` at a time so a full build never holds every vector twice."""
    # ORDER BY seq, not id: ordering by id makes SQLite scan the whole table instead of the seq index.
    cursor = conn.execute("SELECT id, scope, vector FROM entries WHERE seq > ? ORDER BY seq", (seq,))
    while rows := cursor.fetchmany(batch):
        yield [(int(id_), str(scope), bytes(vector)) for id_, scope, vector in rows]


def ids_by_scope(conn: sqlite3.Connection) -> dict[str, np.ndarray]:
    """Every entry's id, per scope: what a graph that fell behind the tombstones keeps."""
    grouped: dict[str, list[int]] = {}
    for id_, scope in conn.execute("SELECT id, scope FROM entries"):
        grouped.setdefault(str(scope), []).append(int(id_))
    return {scope: np.asarray(ids, dtype=np.uint64) for scope, ids in grouped.items()}
