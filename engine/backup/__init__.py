"""Backups: logical exports (any store, local or remote) and Redis RDB snapshots.

- ``format``: the export file (a versioned gzip of JSON lines): its header and lines, written and read back.
- ``export``: every live entry of a cache into such a file (``export_entries``, ``create_backup``).
- ``import_``: such a file validated whole, then loaded into a cache (``import_entries``).
- ``catalog``: backup names in a folder, listing, pruning, finding one by name.
- ``snapshot``: a Redis BGSAVE and a copy of its RDB file.
- ``rdb_restore``: the guided procedure that puts an RDB file back under a Redis.

The public names are re-exported here, so callers import them from ``engine.backup``. ``BATCH`` is not:
it lives in ``engine.backup.format``, where export and import read it, and that is where to change it.
"""

from engine.backup.catalog import (
    EXPORT_SUFFIX,
    RDB_SUFFIX,
    BackupFile,
    backup_name,
    list_backups,
    prune_backups,
    resolve_backup,
)
from engine.backup.export import ExportSummary, VectorReader, create_backup, export_entries
from engine.backup.format import FORMAT, VERSION, Progress, read_header
from engine.backup.import_ import ImportSummary, describe_import, import_entries
from engine.backup.rdb_restore import RdbRestorePlan, plan_rdb_restore, redis_answers, replace_rdb
from engine.backup.snapshot import SnapshotResult, is_rdb_file, snapshot_rdb

__all__ = [
    "EXPORT_SUFFIX",
    "FORMAT",
    "RDB_SUFFIX",
    "VERSION",
    "BackupFile",
    "ExportSummary",
    "ImportSummary",
    "Progress",
    "RdbRestorePlan",
    "SnapshotResult",
    "VectorReader",
    "backup_name",
    "create_backup",
    "describe_import",
    "export_entries",
    "import_entries",
    "is_rdb_file",
    "list_backups",
    "plan_rdb_restore",
    "prune_backups",
    "read_header",
    "redis_answers",
    "replace_rdb",
    "resolve_backup",
    "snapshot_rdb",
]
