"""The layout of the data file: its tables, the entry columns every read selects and how a row becomes a
``CacheEntry``, creating the schema on a new file, and the ``meta`` records (schema version, the file's
instance id, the embedder identity the index is bound to)."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.local.database.connection import write_transaction

SCHEMA_VERSION = 1

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
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_seq ON entries (seq);
CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_newest ON entries (created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS removed (id INTEGER PRIMARY KEY, scope TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_seq ON removed (seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS latencies (n INTEGER PRIMARY KEY AUTOINCREMENT, ms REAL NOT NULL);
"""

#: What every entry read selects, in the order ``entry_from_row`` reads it.
ENTRY_COLUMNS = "id, key, scope, prompt, response, metadata, created_at, expires_at, hit_count"
#: The condition a live (unexpired) entry meets; its one parameter is the current time.
LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _meta(conn: sqlite3.Connection, key: str) -> object | None:
    row = conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
    return None if row is None else row[0]


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


def setup(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema on a new file; refuse a file written by a newer schema."""
    with write_transaction(conn):
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
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
            conn.executemany(
                "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", [("hits",), ("misses",)]
            )
        elif int(version) > SCHEMA_VERSION:  # type: ignore[call-overload]
            from engine.errors import IndexMismatchError

            raise IndexMismatchError(
                f"the data file {path} was written by a newer semcache (schema {version}, this one reads "
                f"{SCHEMA_VERSION})",
                "upgrade semcache, or point SEMCACHE_DATA_DIR at another folder",
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
