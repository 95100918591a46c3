"""The embedded store's source of truth: one SQLite file per index, in WAL mode.

Why SQLite: a commit is durable when it returns (``synchronous=FULL`` survives ``kill -9`` and power loss),
readers never block the writer and see only committed data (WAL), and several processes on one machine
(the server, the control panel) can share the file safely; SQLite's own locks serialize writers.

Every write that changes which vectors exist takes the next value of one change sequence (``meta.seq``):
changed rows carry it in ``entries.seq``, removed ones leave a row in ``removed``. A process keeping an
HNSW graph in memory asks for everything after the sequence its graph covers and applies the delta, so
it never rebuilds the graph for another process's write. Writers hold SQLite's write lock while taking
the number, so sequences commit in order and a reader never sees seq N+1 without seq N.

The functions live in the modules of this package, all re-exported here (callers use ``database.X``):

- ``connection``: connecting, transactions, error translation, size on disk;
- ``schema``: the tables, ``meta`` records (schema version, instance, bound identity), rows to entries;
- ``writes``: upsert, delete, purge_expired, clear (each takes the next change number);
- ``reads``: get, search candidates, count, listing, the keyset walk, vectors by key;
- ``changes``: where the change sequence stands and what changed after a point;
- ``counters``: lookup counters, recent latencies, per-entry hit counts.
"""

from __future__ import annotations

from engine.stores.local.database.changes import (
    ChangeState,
    change_state,
    changed_since,
    ids_by_scope,
    removed_since,
)
from engine.stores.local.database.connection import (
    BUSY_TIMEOUT_S,
    connect,
    read_transaction,
    size_on_disk,
    translate,
    write_transaction,
)
from engine.stores.local.database.counters import counters, record_lookups
from engine.stores.local.database.reads import candidates, count, entries_after, get, list_entries, vectors
from engine.stores.local.database.schema import (
    SCHEMA_VERSION,
    bind,
    entry_from_row,
    instance,
    read_identity,
    setup,
)
from engine.stores.local.database.writes import KEEP_REMOVED, clear, delete, purge_expired, upsert

__all__ = [
    "BUSY_TIMEOUT_S",
    "KEEP_REMOVED",
    "SCHEMA_VERSION",
    "ChangeState",
    "bind",
    "candidates",
    "change_state",
    "changed_since",
    "clear",
    "connect",
    "count",
    "counters",
    "delete",
    "entries_after",
    "entry_from_row",
    "get",
    "ids_by_scope",
    "instance",
    "list_entries",
    "purge_expired",
    "read_identity",
    "read_transaction",
    "record_lookups",
    "removed_since",
    "setup",
    "size_on_disk",
    "translate",
    "upsert",
    "vectors",
    "write_transaction",
]
