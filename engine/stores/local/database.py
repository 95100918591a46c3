"""The embedded store's source of truth: one SQLite file per index, in WAL mode.

Why SQLite: a commit is durable when it returns (``synchronous=FULL`` survives ``kill -9`` and power loss),
readers never block the writer and see only committed data (WAL), and several processes on one machine
(the server, the control panel) can share the file safely; SQLite's own locks serialize writers.

Every write that changes which vectors exist takes the next value of one change sequence (``meta.seq``):
changed rows carry it in ``entries.seq``, removed ones leave a row in ``removed``. A process keeping an
HNSW graph in memory asks for everything after the sequence its graph covers and applies the delta, so
it never rebuilds the graph for another process's write. Writers hold SQLite's write lock while taking
the number, so sequences commit in order and a reader never sees seq N+1 without seq N.

The module reads in the order of its sections: the connection, the schema, writes, reads, the change
sequence, the lookup counters, feedback.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import BackendUnavailableError, IndexMismatchError
from engine.models import CacheEntry, EmbedderIdentity, EntryFeedback
from engine.stores.base import LATENCY_WINDOW, NEVER_EXPIRES_RANK, Capacity, eviction_rank

# -- connection --------------------------------------------------------------------------------------
# Opening the SQLite file and running transactions on it: the connection settings (WAL, a full sync at every
# commit, how long to wait for another process's lock), explicit read and write transactions, the mapping of
# SQLite failures to operator-readable errors, and the file's size on disk.

#: How long a statement waits for another process's write lock before we report the file as locked.
BUSY_TIMEOUT_S = 10.0


def _describe(exc: sqlite3.Error) -> str:
    return str(exc) or type(exc).__name__


def translate(exc: BaseException, path: Path) -> BaseException:
    """An engine error with a hint for the SQLite failures we can name; anything else unchanged."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    text = _describe(exc).lower()
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return BackendUnavailableError(
            f"the data file {path} is corrupted ({_describe(exc)})",
            f"stop every semcache process, move {path.name} (and its -wal/-shm files) out of "
            f"{path.parent} and restart with an empty cache, or restore it from a backup",
        )
    if "locked" in text or "busy" in text:
        return BackendUnavailableError(
            f"the data file {path} stayed locked by another process for over {BUSY_TIMEOUT_S:.0f} s",
            "check for a stuck semcache process using the same data folder, then retry",
        )
    if "readonly" in text or "read-only" in text:
        return BackendUnavailableError(
            f"the data file {path} is read-only", f"give this user write access to {path.parent}"
        )
    if "full" in text:
        return BackendUnavailableError(
            f"the disk holding {path} is full",
            "free some space, or run `semcache-tui purge` to drop expired entries",
        )
    return BackendUnavailableError(
        f"the data file {path} cannot be used ({_describe(exc)})",
        f"check that {path.parent} exists, is on a local disk and is writable by this user (SEMCACHE_DATA_DIR)",
    )


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are explicit (BEGIN IMMEDIATE for writes)."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every commit, so an acknowledged write survives power loss as well
        # as a killed process. Lookup counters are batched (~1 s) so this costs one sync per write call.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    # IMMEDIATE takes the write lock up front, so two processes never both read-then-write and deadlock.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def read_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One consistent view of the file across several statements."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def size_on_disk(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            total += (path.parent / (path.name + suffix)).stat().st_size
    return total


# -- schema ------------------------------------------------------------------------------------------
# The layout of the data file: its tables, the entry columns every read selects and how a row becomes a
# ``CacheEntry``, creating the schema on a new file (and migrating an older one), and the ``meta`` records
# (schema version, the file's instance id, the embedder identity the index is bound to).

#: 2 added feedback (the ``feedback`` and ``refused`` tables, the feedback counters).
#: 3 added capacity: ``entries.evict_rank``, the ``scope_sizes`` table, the evictions counter.
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    -- AUTOINCREMENT: an id is never reused, so a graph label always means the same entry.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    hit_count INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL,
    vector BLOB NOT NULL,
    -- The eviction policy's rank (``base.eviction_rank``): the lowest is evicted first.
    evict_rank REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_seq ON entries (seq);
CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_newest ON entries (created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS removed (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_seq ON removed (seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS latencies (n INTEGER PRIMARY KEY AUTOINCREMENT, ms REAL NOT NULL);
-- Feedback hangs on the entry's id, never reused: an entry stored again in another scope (a new id) starts
-- clean by itself, and every write that removes entries removes their rows in the same transaction.
CREATE TABLE IF NOT EXISTS feedback (
    entry_id INTEGER PRIMARY KEY,
    wrong_reports INTEGER NOT NULL DEFAULT 0,
    right_reports INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS refused (
    entry_id INTEGER NOT NULL,
    query_key TEXT NOT NULL,
    PRIMARY KEY (entry_id, query_key)
) WITHOUT ROWID;
-- Entries per scope (expired ones not yet purged included), kept by every write: COUNT(*) is a scan in
-- SQLite, and a capacity is checked at every write.
CREATE TABLE IF NOT EXISTS scope_sizes (scope TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
"""

#: Created after ``evict_rank`` exists (an older file gets the column by ALTER TABLE first).
_RANK_INDEXES = """
CREATE INDEX IF NOT EXISTS entries_rank ON entries (evict_rank, id);
CREATE INDEX IF NOT EXISTS entries_scope_rank ON entries (scope, evict_rank, id);
"""

#: The lookup and feedback totals in ``counters``.
COUNTER_NAMES = ("hits", "misses", "feedback_wrong", "feedback_right", "evictions")

#: What every entry read selects, in the order ``entry_from_row`` reads it.
ENTRY_COLUMNS = "id, key, scope, prompt, response, metadata, created_at, expires_at, hit_count"
#: The condition a live (unexpired) entry meets; its one parameter is the current time.
LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _meta(conn: sqlite3.Connection, key: str) -> object | None:
    row = conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
    return None if row is None else row[0]


#: Notes (``VectorStore.set_note``) are meta records under this prefix, one JSON object each.
NOTE_PREFIX = "note:"


def set_note(conn: sqlite3.Connection, name: str, value: dict[str, Any] | None) -> None:
    with write_transaction(conn):
        if value is None:
            conn.execute("DELETE FROM meta WHERE k = ?", (NOTE_PREFIX + name,))
        else:
            conn.execute(
                "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                (NOTE_PREFIX + name, json.dumps(value)),
            )


def notes(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        "SELECT k, v FROM meta WHERE substr(k, 1, ?) = ?", (len(NOTE_PREFIX), NOTE_PREFIX)
    ).fetchall()
    found: dict[str, dict[str, Any]] = {}
    for key, raw in rows:
        try:
            value = json.loads(raw)
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict):
            found[str(key)[len(NOTE_PREFIX) :]] = value
    return found


def entry_from_row(row: Sequence[object]) -> CacheEntry:
    return CacheEntry(
        key=str(row[1]),
        scope=str(row[2]),
        prompt=str(row[3]),
        response=str(row[4]),
        metadata=json.loads(str(row[5])),
        created_at=float(row[6]),  # type: ignore[arg-type]
        expires_at=None if row[7] is None else float(row[7]),  # type: ignore[arg-type]
        hit_count=int(row[8]),  # type: ignore[call-overload]
    )


def setup(conn: sqlite3.Connection, path: Path, policy: str = "lru") -> None:
    """Create the schema on a new file, bring an older file's up to date (the tables are created above:
    ``IF NOT EXISTS``); refuse a file written by a newer schema. Entries are ranked for ``policy``
    (ranked again when the file was ranked for another one)."""
    with write_transaction(conn):
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(entries)")}
        if "evict_rank" not in columns:  # schema 2: sizes and ranks are filled below
            conn.execute("ALTER TABLE entries ADD COLUMN evict_rank REAL NOT NULL DEFAULT 0")
            conn.execute("DELETE FROM scope_sizes")
            conn.execute("INSERT INTO scope_sizes SELECT scope, COUNT(*) FROM entries GROUP BY scope")
        for statement in _RANK_INDEXES.split(";"):
            if statement.strip():
                conn.execute(statement)
        if _meta(conn, "policy") != policy:
            _rank_again(conn, policy)
        version = _meta(conn, "schema")
        if version is None:
            now = time.time()
            conn.executemany(
                "INSERT INTO meta (k, v) VALUES (?, ?)",
                [
                    ("schema", SCHEMA_VERSION),
                    ("instance", uuid.uuid4().hex),
                    ("seq", 0),
                    ("floor", 0),
                    ("created_at", now),
                ],
            )
        elif int(version) > SCHEMA_VERSION:  # type: ignore[call-overload]
            raise IndexMismatchError(
                f"the data file {path} was written by a newer semcache (schema {version}, this one reads "
                f"{SCHEMA_VERSION})",
                "upgrade semcache, or point SEMCACHE_DATA_DIR at another folder",
            )
        elif int(version) < SCHEMA_VERSION:  # type: ignore[call-overload]
            conn.execute("UPDATE meta SET v = ? WHERE k = 'schema'", (SCHEMA_VERSION,))
        conn.executemany(
            "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", [(n,) for n in COUNTER_NAMES]
        )


def _rank_again(conn: sqlite3.Connection, policy: str) -> None:
    """Rank every entry for ``policy`` (a new file, an older one, or a policy changed by the operator). What
    the previous policy knew is not kept: lru starts from the creation times, lfu from the hit counts."""
    rank = {
        "lru": "created_at",
        "lfu": "hit_count + 1",
        "ttl": f"COALESCE(expires_at, {NEVER_EXPIRES_RANK!r} + created_at)",
    }[policy]
    conn.execute(f"UPDATE entries SET evict_rank = {rank}")
    conn.executemany(
        "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        [("policy", policy), ("lfu_age", 0.0)],
    )


def read_identity(conn: sqlite3.Connection) -> EmbedderIdentity | None:
    raw = _meta(conn, "identity")
    return None if raw is None else EmbedderIdentity.from_dict(json.loads(str(raw)))


def instance(conn: sqlite3.Connection) -> str:
    return str(_meta(conn, "instance"))


def bind(conn: sqlite3.Connection, identity: EmbedderIdentity) -> EmbedderIdentity:
    """Record ``identity`` when none is recorded; return the recorded one (the caller compares)."""
    with write_transaction(conn):
        recorded = read_identity(conn)
        if recorded is None:
            conn.execute("INSERT INTO meta (k, v) VALUES ('identity', ?)", (json.dumps(identity.to_dict()),))
            return identity
        return recorded


# -- writes ------------------------------------------------------------------------------------------
# The writes that change which vectors exist: upsert, delete, purge of expired entries, clear. Each takes
# the next value of the change sequence (``meta.seq``) inside its write transaction; changed rows carry it
# in ``entries.seq``, removed ones leave a tombstone in ``removed`` (pruned past ``KEEP_REMOVED``, raising
# the floor), and ``clear`` raises the floor instead of writing one tombstone per entry.

#: Tombstones kept for processes that are behind; an older process reconciles by ids instead.
KEEP_REMOVED = 50_000


def _next_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("UPDATE meta SET v = v + 1 WHERE k = 'seq' RETURNING v").fetchone()
    return int(row[0])


def upsert(
    conn: sqlite3.Connection,
    items: Sequence[tuple[CacheEntry, np.ndarray]],
    capacity: Capacity | None = None,
    now: float | None = None,
) -> int:
    """Write every item in one transaction, evicting what ``capacity`` requires in the same one; return
    how many entries were evicted. Same key and scope: updated in place (same id). Same key in another
    scope: the old entry is removed and a new id is taken, so an id belongs to one scope for life and a
    graph never needs to move a label between scopes."""
    capacity = capacity or Capacity()
    now = time.time() if now is None else now
    with write_transaction(conn):
        seq = _next_seq(conn)
        lfu_age = float(_meta(conn, "lfu_age") or 0.0)  # type: ignore[arg-type]
        sizes: dict[str, int] = {}
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
                eviction_rank(
                    capacity.policy,
                    now=now,
                    hits=int(entry.hit_count),
                    expires_at=entry.expires_at,
                    created_at=float(entry.created_at),
                    lfu_age=lfu_age,
                ),
            )
            found = existing.get(entry.key)
            if found is not None and found[1] == entry.scope:
                updates.append((*values, found[0]))
                if entry.hit_count <= 0:  # stored again: a new entry, whose feedback starts again
                    _forget_feedback(conn, [found[0]])
                continue
            if found is not None:
                conn.execute("DELETE FROM entries WHERE id = ?", (found[0],))
                conn.execute(
                    "INSERT INTO removed (id, scope, seq) VALUES (?, ?, ?)", (found[0], found[1], seq)
                )
                _forget_feedback(conn, [found[0]])
                sizes[found[1]] = sizes.get(found[1], 0) - 1
            sizes[entry.scope] = sizes.get(entry.scope, 0) + 1
            inserts.append((entry.key, entry.scope, *values))
        conn.executemany(
            "UPDATE entries SET prompt = ?, response = ?, metadata = ?, created_at = ?, expires_at = ?, "
            "hit_count = ?, seq = ?, vector = ?, evict_rank = ? WHERE id = ?",
            updates,
        )
        conn.executemany(
            "INSERT INTO entries (key, scope, prompt, response, metadata, created_at, expires_at, hit_count, "
            "seq, vector, evict_rank) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            inserts,
        )
        _resize(conn, sizes)
        return _evict(conn, seq, capacity, set(sizes), now)


def enforce_capacity(conn: sqlite3.Connection, capacity: Capacity, now: float) -> int:
    """Evict what ``capacity`` requires now (a capacity configured or lowered since the last start)."""
    if not capacity.limited:
        return 0
    with write_transaction(conn):
        scopes = {str(scope) for (scope,) in conn.execute("SELECT scope FROM scope_sizes")}
        over_scope = capacity.max_entries_per_scope > 0 and any(
            _size(conn, scope) > capacity.max_entries_per_scope for scope in scopes
        )
        if not over_scope and not (capacity.max_entries > 0 and _size(conn) > capacity.max_entries):
            return 0
        return _evict(conn, _next_seq(conn), capacity, scopes, now)


def _resize(conn: sqlite3.Connection, deltas: dict[str, int]) -> None:
    changed = [(scope, n) for scope, n in deltas.items() if n]
    conn.executemany(
        "INSERT INTO scope_sizes (scope, n) VALUES (?, ?) ON CONFLICT (scope) DO UPDATE SET n = n + excluded.n",
        changed,
    )
    if any(n < 0 for _, n in changed):
        conn.execute("DELETE FROM scope_sizes WHERE n <= 0")


def _size(conn: sqlite3.Connection, scope: str | None = None) -> int:
    if scope is None:
        return int(conn.execute("SELECT COALESCE(SUM(n), 0) FROM scope_sizes").fetchone()[0])
    row = conn.execute("SELECT n FROM scope_sizes WHERE scope = ?", (scope,)).fetchone()
    return 0 if row is None else int(row[0])


def _evict(conn: sqlite3.Connection, seq: int, capacity: Capacity, scopes: set[str], now: float) -> int:
    """Remove entries until ``capacity`` holds (inside the writer's transaction): expired ones first (not
    counted as evictions), then the policy's lowest-ranked. Each query walks an index for the few rows it
    needs; the sizes come from ``scope_sizes``, never from a count."""
    if not capacity.limited:
        return 0
    evicted = 0
    limits: list[tuple[str | None, int]] = []
    if capacity.max_entries_per_scope > 0:
        limits += [(scope, capacity.max_entries_per_scope) for scope in sorted(scopes)]
    if capacity.max_entries > 0:
        limits.append((None, capacity.max_entries))
    for scope, limit in limits:
        over = _size(conn, scope) - limit
        if over <= 0:
            continue
        where, args = ("scope = ? AND ", (scope,)) if scope is not None else ("", ())
        expired = conn.execute(
            # The expiry index, not the scope one: only the few expired rows are read, never a whole scope.
            "SELECT id, scope, evict_rank FROM entries INDEXED BY entries_expiry "
            f"WHERE {where}expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
            (*args, now, over),
        ).fetchall()
        ranked = (
            conn.execute(
                f"SELECT id, scope, evict_rank FROM entries {'WHERE scope = ? ' if scope is not None else ''}"
                "ORDER BY evict_rank, id LIMIT ?",
                (*args, over - len(expired)),
            ).fetchall()
            if over > len(expired)
            else []
        )
        gone = {int(id_) for id_, _, _ in expired}
        ranked = [row for row in ranked if int(row[0]) not in gone]
        victims = [(int(i), str(s)) for i, s, _ in [*expired, *ranked]]
        conn.executemany("DELETE FROM entries WHERE id = ?", [(id_,) for id_, _ in victims])
        _forget_feedback(conn, [id_ for id_, _ in victims])
        conn.executemany(
            "INSERT OR REPLACE INTO removed (id, scope, seq) VALUES (?, ?, ?)",
            [(id_, s, seq) for id_, s in victims],
        )
        deltas: dict[str, int] = {}
        for _, s in victims:
            deltas[s] = deltas.get(s, 0) - 1
        _resize(conn, deltas)
        evicted += len(ranked)
        if ranked and capacity.policy == "lfu":  # the ageing: later entries start above what was evicted
            conn.execute(
                "UPDATE meta SET v = MAX(v, ?) WHERE k = 'lfu_age'", (max(float(r[2]) for r in ranked),)
            )
    if evicted:
        conn.execute("UPDATE counters SET value = value + ? WHERE name = 'evictions'", (evicted,))
    return evicted


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
        _forget_feedback(conn, [id_ for id_, _ in victims])
        conn.executemany(
            "INSERT OR REPLACE INTO removed (id, scope, seq) VALUES (?, ?, ?)",
            [(id_, scope, seq) for id_, scope in victims],
        )
        deltas: dict[str, int] = {}
        for _, scope in victims:
            deltas[str(scope)] = deltas.get(str(scope), 0) - 1
        _resize(conn, deltas)
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
        _forget_feedback(conn, [id_])
        _resize(conn, {str(scope): -1})
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
        conn.execute("DELETE FROM feedback")
        conn.execute("DELETE FROM refused")
        conn.execute("DELETE FROM scope_sizes")
        conn.execute("UPDATE meta SET v = ? WHERE k = 'floor'", (seq,))
        return live


# -- reads -------------------------------------------------------------------------------------------
# Reading entries: one by key, the live candidates a graph search returned (with their vectors), the live
# count, a page of the newest entries, the keyset walk over every entry, and stored vectors by key.


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


# -- changes -----------------------------------------------------------------------------------------
# Reading the change sequence: where it stands, and what changed after a given point (tombstones, rows
# written, or every live id when the tombstones needed are gone). This is what a process's graph follower
# applies to catch up with every process's writes.


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
    """Rows written after ``seq``, ``batch`` at a time so a full build never holds every vector twice.
    Labels new to a graph come in ascending id order, which its copies append (``VectorCopies``): a
    delta's new entries took their ids and seqs together, and a full build (``seq`` 0) reads by id."""
    if seq <= 0:  # every row: the table in its own order, which is by id
        cursor = conn.execute("SELECT id, scope, vector FROM entries ORDER BY id")
    else:  # ORDER BY seq, not id: ordering by id makes SQLite scan the whole table, not the seq index
        cursor = conn.execute("SELECT id, scope, vector FROM entries WHERE seq > ? ORDER BY seq", (seq,))
    while rows := cursor.fetchmany(batch):
        yield [(int(id_), str(scope), bytes(vector)) for id_, scope, vector in rows]


def rows_by_id(conn: sqlite3.Connection, ids: Sequence[int]) -> list[tuple[int, str, bytes]]:
    """(id, scope, vector) of each of ``ids`` still present, by id: what a graph compaction rebuilds from
    (in the order its copies append, ``VectorCopies``)."""
    found: list[tuple[int, str, bytes]] = []
    ordered = sorted(ids)
    with read_transaction(conn):
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT id, scope, vector FROM entries WHERE id IN ({marks})", chunk)
            found += sorted((int(id_), str(scope), bytes(vector)) for id_, scope, vector in rows)
    return found


def ids_by_scope(conn: sqlite3.Connection) -> dict[str, np.ndarray]:
    """Every entry's id, per scope: what a graph that fell behind the tombstones keeps."""
    grouped: dict[str, list[int]] = {}
    for id_, scope in conn.execute("SELECT id, scope FROM entries"):
        grouped.setdefault(str(scope), []).append(int(id_))
    return {scope: np.asarray(ids, dtype=np.uint64) for scope, ids in grouped.items()}


# -- counters ----------------------------------------------------------------------------------------
# The lookup counters kept in the file: hits, misses, the recent latencies, and per-entry hit counts and
# sliding expiry, written in batches (see ``lookups.PendingLookups``) and read back for reports.


def record_lookups(
    conn: sqlite3.Connection,
    *,
    hits: int,
    misses: int,
    latencies: Sequence[float],
    hit_counts: dict[str, int],
    extend_to: dict[str, float],
    policy: str = "lru",
    now: float | None = None,
) -> None:
    with write_transaction(conn):
        conn.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?", [(hits, "hits"), (misses, "misses")]
        )
        conn.executemany("INSERT INTO latencies (ms) VALUES (?)", [(float(ms),) for ms in latencies])
        conn.execute("DELETE FROM latencies WHERE n <= (SELECT MAX(n) FROM latencies) - ?", (LATENCY_WINDOW,))
        # A hit raises the entry's eviction rank: to now (lru), by its count over the current age (lfu).
        hit_time = time.time() if now is None else now
        if policy == "lru":
            rows = [(n, hit_time, k) for k, n in hit_counts.items()]
            rank = "?"
        elif policy == "lfu":
            rows = [(n, n, k) for k, n in hit_counts.items()]
            rank = "(SELECT v FROM meta WHERE k = 'lfu_age') + hit_count + ? + 1"
        else:
            rows = [(n, 0, k) for k, n in hit_counts.items()]
            rank = "evict_rank + 0 * ?"
        conn.executemany(
            f"UPDATE entries SET hit_count = hit_count + ?, evict_rank = {rank} WHERE key = ?", rows
        )
        # Never shortens a life: an entry stored with a longer TTL than the sliding one keeps it.
        ttl_rank = ", evict_rank = MAX(expires_at, ?)" if policy == "ttl" else ""
        conn.executemany(
            f"UPDATE entries SET expires_at = MAX(expires_at, ?){ttl_rank} WHERE key = ? AND expires_at IS NOT NULL",
            [(when, *((when,) if policy == "ttl" else ()), key) for key, when in extend_to.items()],
        )


def counters(conn: sqlite3.Connection) -> tuple[dict[str, int], list[float]]:
    """The totals of ``COUNTER_NAMES`` by name, and the recent latencies, oldest first."""
    with read_transaction(conn):
        values = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        latencies = [float(ms) for (ms,) in conn.execute("SELECT ms FROM latencies ORDER BY n")]
    return {name: int(values.get(name, 0)) for name in COUNTER_NAMES}, latencies[-LATENCY_WINDOW:]


# -- feedback ----------------------------------------------------------------------------------------
# Reports that a hit was wrong or right, per entry id: the counts, the queries an entry is refused for, and
# the totals in ``counters``. Written at once (not batched like lookups): a wrong answer reported by one
# process must stop being served by every other at its next search.


def _forget_feedback(conn: sqlite3.Connection, ids: Sequence[int]) -> None:
    rows = [(int(id_),) for id_ in ids]
    conn.executemany("DELETE FROM feedback WHERE entry_id = ?", rows)
    conn.executemany("DELETE FROM refused WHERE entry_id = ?", rows)


def record_feedback(
    conn: sqlite3.Connection, entry_key: str, query_key: str, correct: bool, now: float
) -> EntryFeedback | None:
    """Record one report and return the entry's feedback after it; ``None`` (nothing written) when no live
    entry has ``entry_key``."""
    with write_transaction(conn):
        row = conn.execute(f"SELECT id FROM entries WHERE key = ? AND {LIVE}", (entry_key, now)).fetchone()
        if row is None:
            return None
        id_ = int(row[0])
        kind = "right" if correct else "wrong"
        conn.execute(
            f"INSERT INTO feedback (entry_id, {kind}_reports) VALUES (?, 1) "
            f"ON CONFLICT (entry_id) DO UPDATE SET {kind}_reports = {kind}_reports + 1",
            (id_,),
        )
        if correct:
            conn.execute("DELETE FROM refused WHERE entry_id = ? AND query_key = ?", (id_, query_key))
        else:
            conn.execute(
                "INSERT OR IGNORE INTO refused (entry_id, query_key) VALUES (?, ?)", (id_, query_key)
            )
        conn.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (f"feedback_{kind}",))
        return _feedback(conn, [entry_key], now)[entry_key]


def feedback(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> dict[str, EntryFeedback]:
    """The feedback of each live entry among ``keys`` that has any, read in one consistent view."""
    with read_transaction(conn):
        return _feedback(conn, keys, now)


def _feedback(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> dict[str, EntryFeedback]:
    counts: dict[str, tuple[int, int]] = {}
    refused: dict[str, set[str]] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        marks = ",".join("?" * len(chunk))
        live = f"e.key IN ({marks}) AND (e.expires_at IS NULL OR e.expires_at > ?)"
        for key, wrong, right in conn.execute(
            "SELECT e.key, f.wrong_reports, f.right_reports FROM feedback f JOIN entries e "
            f"ON e.id = f.entry_id WHERE {live}",
            (*chunk, now),
        ):
            counts[str(key)] = (int(wrong), int(right))
        for key, query_key in conn.execute(
            f"SELECT e.key, r.query_key FROM refused r JOIN entries e ON e.id = r.entry_id WHERE {live}",
            (*chunk, now),
        ):
            refused.setdefault(str(key), set()).add(str(query_key))
    return {
        key: EntryFeedback(wrong, right, frozenset(refused.get(key, ())))
        for key, (wrong, right) in counts.items()
    }
