"""The lookup counters kept in the file: hits, misses, the recent latencies, and per-entry hit counts and
sliding expiry, written in batches (see ``lookups.PendingLookups``) and read back for reports."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from engine.stores.base import LATENCY_WINDOW
from engine.stores.local.database.connection import read_transaction, write_transaction


def record_lookups(
    conn: sqlite3.Connection,
    *,
    hits: int,
    misses: int,
    latencies: Sequence[float],
    hit_counts: dict[str, int],
    extend_to: dict[str, float],
) -> None:
    with write_transaction(conn):
        conn.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?", [(hits, "hits"), (misses, "misses")]
        )
        conn.executemany("INSERT INTO latencies (ms) VALUES (?)", [(float(ms),) for ms in latencies])
        conn.execute("DELETE FROM latencies WHERE n <= (SELECT MAX(n) FROM latencies) - ?", (LATENCY_WINDOW,))
        conn.executemany(
            "UPDATE entries SET hit_count = hit_count + ? WHERE key = ?",
            [(n, k) for k, n in hit_counts.items()],
        )
        # Never shortens a life: an entry stored with a longer TTL than the sliding one keeps it.
        conn.executemany(
            "UPDATE entries SET expires_at = MAX(expires_at, ?) WHERE key = ? AND expires_at IS NOT NULL",
            [(when, key) for key, when in extend_to.items()],
        )


def counters(conn: sqlite3.Connection) -> tuple[int, int, list[float]]:
    with read_transaction(conn):
        values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        latencies = [float(ms) for (ms,) in conn.execute("SELECT ms FROM latencies ORDER BY n")]
    return int(values.get("hits", 0)), int(values.get("misses", 0)), latencies[-LATENCY_WINDOW:]
