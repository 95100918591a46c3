"""Backup files in a folder: how they are named, listed, pruned, and found by name ("latest")."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import InvalidInputError, NotFoundError

EXPORT_SUFFIX = ".jsonl.gz"
RDB_SUFFIX = ".rdb"

_NAME = re.compile(
    r"^semcache-(?P<index>[A-Za-z0-9_.\-]+)-(?P<stamp>\d{8}T\d{6}Z)(-\d+)?(\.jsonl\.gz|\.rdb)$"
)


@dataclass(slots=True)
class BackupFile:
    path: Path
    kind: str  # "export" | "rdb"
    size: int
    modified: float

    def age_seconds(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.modified)


def backup_name(index_name: str, when: float, suffix: str = EXPORT_SUFFIX) -> str:
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"semcache-{index_name}-{stamp}{suffix}"


def _unused(path: Path) -> Path:
    # Two backups within one second (a cron job and an operator) must not overwrite each other.
    if not path.exists():
        return path
    stem, suffix = _split_suffix(path.name)
    n = 1
    while (candidate := path.with_name(f"{stem}-{n}{suffix}")).exists():
        n += 1
    return candidate


def _split_suffix(name: str) -> tuple[str, str]:
    for suffix in (EXPORT_SUFFIX, RDB_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def list_backups(directory: Path) -> list[BackupFile]:
    """The backups this tool wrote in ``directory`` (other files are ignored), newest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found: list[BackupFile] = []
    for path in directory.iterdir():
        if not _NAME.match(path.name) or not path.is_file():
            continue
        with contextlib.suppress(OSError):
            stat = path.stat()
            kind = "rdb" if path.name.endswith(RDB_SUFFIX) else "export"
            found.append(BackupFile(path, kind, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda b: (b.modified, b.path.name), reverse=True)


def prune_backups(directory: Path, keep_days: int, *, now: float | None = None) -> list[BackupFile]:
    """Delete this tool's backups last modified more than ``keep_days`` days ago; return them."""
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or keep_days < 1:
        raise InvalidInputError(
            f"--keep-days {keep_days} is not allowed", "keep at least 1 day (delete by hand to remove all)"
        )
    cutoff = (time.time() if now is None else now) - keep_days * 86400
    deleted: list[BackupFile] = []
    for backup in list_backups(directory):
        if backup.modified < cutoff:
            with contextlib.suppress(FileNotFoundError):
                backup.path.unlink()
            deleted.append(backup)
    return deleted


def resolve_backup(directory: Path, name: str) -> Path:
    """A backup named in ``directory`` ("latest" is the newest export), or a path as given."""
    if name == "latest":
        exports = [b for b in list_backups(directory) if b.kind == "export"]
        if not exports:
            raise NotFoundError(f"no backups in {directory}", "create one with `semcache-tui backup create`")
        return exports[0].path
    candidate = Path(name).expanduser()
    if candidate.exists():
        return candidate
    inside = Path(directory) / name
    if inside.exists():
        return inside
    raise NotFoundError(f"no backup named {name} in {directory}", "see `semcache-tui backup list`")
