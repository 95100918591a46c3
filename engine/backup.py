"""Backups: logical exports (any store, local or remote) and Redis RDB snapshots.

A logical export is a gzip of JSON lines. Line 1 is a header::

    {"format": "semcache-backup", "version": 1, "created_at": ..., "index_name": ..., "store": "local|redis",
     "embedder": {"provider", "model", "dimension"} | null, "vectors": bool, "count": N, ...}

then one object per entry (key, scope, prompt, response, metadata, created_at, expires_at, ttl_remaining,
hit_count and, when ``vectors`` is true, ``vector``: base64 of little-endian float32). ``expires_at`` is
what an import honours, so an entry that expired since the export is skipped and counted, never revived.

Imports read the whole file once to validate it (header, every line, the count, gzip's checksum) before
writing anything, so a damaged file changes nothing; then they write in batches through
``SemanticCache.restore_entries``, which derives keys from (scope, prompt): importing twice updates, never
duplicates. Vectors are reused only when the file's embedder identity is the cache's; otherwise prompts are
embedded again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import gzip
import json
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import numpy as np

from engine.atomic import atomic_path
from engine.cache import SemanticCache
from engine.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from engine.models import CacheEntry, EmbedderIdentity
from engine.redact import redact_text, redact_url

FORMAT = "semcache-backup"
VERSION = 1
EXPORT_SUFFIX = ".jsonl.gz"
RDB_SUFFIX = ".rdb"
#: Entries read from the store, or written to it, per batch (one embedding call per batch on import).
BATCH = 256

Progress = Callable[[int, int], None]

_NAME = re.compile(
    r"^semcache-(?P<index>[A-Za-z0-9_.\-]+)-(?P<stamp>\d{8}T\d{6}Z)(-\d+)?(\.jsonl\.gz|\.rdb)$"
)
_BAD_FILE_HINT = "use a file written by `semcache-tui backup create` or `backup export`"
_DAMAGED_HINT = "the file was truncated or altered; pick another one with `semcache-tui backup list`"


@runtime_checkable
class VectorReader(Protocol):
    """The store capability an export needs to carry vectors (both stores have it). A store without it
    gets an export without vectors (the header says so), and its import embeds the prompts again."""

    async def get_vectors(self, keys: list[str]) -> dict[str, np.ndarray]: ...


@dataclass(slots=True)
class ExportSummary:
    path: Path
    count: int
    vectors: bool
    bytes: int
    identity: EmbedderIdentity | None
    #: Why vectors were asked for but not written, when that happened.
    note: str | None = None


@dataclass(slots=True)
class ImportSummary:
    path: Path
    total: int
    written: int
    expired: int
    embedded: int
    #: True when the file's vectors were reused (same embedder identity as the cache's).
    reused_vectors: bool


@dataclass(slots=True)
class BackupFile:
    path: Path
    kind: str  # "export" | "rdb"
    size: int
    modified: float

    def age_seconds(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.modified)


@dataclass(slots=True)
class SnapshotResult:
    saved_at: float
    redis_dir: str | None
    dbfilename: str | None
    #: Where the RDB file was copied, or ``None`` when the Redis data folder is not on this machine.
    copied_to: Path | None
    size: int | None
    #: What the operator should do when the file could not be copied here.
    instructions: str | None = None


# -- names and folders ------------------------------------------------------------------------------------


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


# -- export -----------------------------------------------------------------------------------------------


def _encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _entry_line(entry: CacheEntry, now: float, vector: np.ndarray | None) -> str:
    body: dict[str, Any] = {
        "key": entry.key,
        "scope": entry.scope,
        "prompt": entry.prompt,
        "response": entry.response,
        "metadata": entry.metadata,
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
        "ttl_remaining": entry.remaining_ttl(now),
        "hit_count": entry.hit_count,
    }
    if vector is not None:
        body["vector"] = _encode_vector(vector)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"


async def export_entries(
    cache: SemanticCache,
    path: Path | str,
    *,
    include_vectors: bool,
    progress: Progress | None = None,
    source: str | None = None,
) -> ExportSummary:
    """Write every live entry of ``cache`` to ``path`` (gzip JSON lines, replaced atomically).

    Needs only the store (no embedding model). ``source`` (say, the Redis URL) is recorded redacted.
    """
    path = Path(path)
    identity = await cache.open_store()
    store = cache.vector_store
    reader = store if include_vectors and isinstance(store, VectorReader) else None
    note = None
    if include_vectors and reader is None:
        note = f"the {store.kind} store cannot return stored vectors; the import will embed the prompts"
    total = await store.count()
    now = time.time()
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    # The header carries the count, so entries are spooled first and the file is written once at the end.
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=path.parent) as body:
        async for batch in cache.iter_entries(BATCH):
            vectors: dict[str, np.ndarray] = {}
            if reader is not None:
                vectors = await reader.get_vectors([entry.key for entry in batch])
                batch = await _still_present(cache, batch, vectors)
            lines = [_entry_line(entry, now, vectors.get(entry.key)) for entry in batch]
            await asyncio.to_thread(body.writelines, lines)
            count += len(batch)
            if progress is not None:
                progress(count, max(total, count))
        header = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.fromtimestamp(now, UTC).isoformat(),
            "index_name": store.name,
            "store": store.kind,
            "embedder": identity.to_dict() if identity is not None else None,
            "vectors": reader is not None,
            "count": count,
        }
        if source:
            header["source"] = redact_url(source)
        await asyncio.to_thread(_write_gzip, path, header, body)
    return ExportSummary(path, count, reader is not None, path.stat().st_size, identity, note)


async def _still_present(
    cache: SemanticCache, batch: list[CacheEntry], vectors: dict[str, np.ndarray]
) -> list[CacheEntry]:
    """``batch`` without the entries that expired or were deleted between listing them and reading their
    vectors (a live cache changes during a long export); an entry still there without a vector is an error."""
    missing = [entry for entry in batch if entry.key not in vectors]
    for entry in missing:
        if await cache.vector_store.get(entry.key) is not None:
            raise BackendUnavailableError(
                f"the store returned entry {entry.key} without its vector", "run the export without vectors"
            )
    return [entry for entry in batch if entry.key in vectors] if missing else batch


def _write_gzip(path: Path, header: dict[str, Any], body: IO[str]) -> None:
    with (
        atomic_path(path) as partial,
        partial.open("wb") as raw,
        gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, mtime=0) as gz,
    ):
        gz.write((json.dumps(header, separators=(",", ":")) + "\n").encode("utf-8"))
        body.seek(0)
        while chunk := body.read(1 << 20):
            gz.write(chunk.encode("utf-8"))


async def create_backup(
    cache: SemanticCache,
    directory: Path,
    *,
    include_vectors: bool = False,
    progress: Progress | None = None,
    source: str | None = None,
    now: float | None = None,
) -> ExportSummary:
    """A logical export into ``directory``, named ``semcache-<index>-<UTC timestamp>.jsonl.gz``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = backup_name(cache.vector_store.name, time.time() if now is None else now)
    return await export_entries(
        cache, _unused(directory / name), include_vectors=include_vectors, progress=progress, source=source
    )


# -- import -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Header:
    identity: EmbedderIdentity | None
    vectors: bool
    count: int
    raw: dict[str, Any]


def read_header(path: Path | str) -> dict[str, Any]:
    """The header of a backup file, checked (format, version, fields); raises ``InvalidInputError``."""
    path = Path(path)
    with _open_backup(path) as lines:
        return _parse_header(path, next(lines, "")).raw


@contextlib.contextmanager
def _open_backup(path: Path) -> Iterator[Iterator[str]]:
    if not path.is_file():
        raise NotFoundError(f"no backup file at {path}", "see `semcache-tui backup list`")
    try:
        handle = gzip.open(path, "rt", encoding="utf-8")  # noqa: SIM115  (closed by the with below)
    except OSError as exc:
        raise InvalidInputError(f"{path} cannot be read: {exc.strerror or exc}", _BAD_FILE_HINT) from None
    # Only reading the file is guarded here: an error from the store while importing stays what it is.
    with handle:
        yield _guarded(path, handle)


def _guarded(path: Path, handle: IO[str]) -> Iterator[str]:
    try:
        yield from handle
    except gzip.BadGzipFile:
        raise InvalidInputError(f"{path} is not a gzip file", _BAD_FILE_HINT) from None
    except (EOFError, zlib.error, UnicodeDecodeError) as exc:
        reason = "it ends early" if isinstance(exc, EOFError) else "its data is corrupted"
        raise InvalidInputError(f"{path} is damaged: {reason}", _DAMAGED_HINT) from None
    except OSError as exc:  # CRC or length check at the end of the gzip stream
        raise InvalidInputError(f"{path} is damaged: {exc}", _DAMAGED_HINT) from None


def _parse_header(path: Path, line: str) -> _Header:
    try:
        header = json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InvalidInputError(f"{path} is not a semcache backup (no header on line 1)", _BAD_FILE_HINT)
    version = header.get("version")
    if version != VERSION:
        raise InvalidInputError(
            f"{path} is a version {version} backup; this semcache reads version {VERSION}",
            "import it with the semcache-tui release that wrote it, or upgrade this one",
        )
    count, vectors, embedder = header.get("count"), header.get("vectors"), header.get("embedder")
    try:
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or count < 0
            or not isinstance(vectors, bool)
        ):
            raise ValueError
        identity = EmbedderIdentity.from_dict(embedder) if embedder is not None else None
        if identity is not None and identity.dimension < 1:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidInputError(f"{path} has a damaged header", _DAMAGED_HINT) from None
    if vectors and identity is None:
        raise InvalidInputError(f"{path} has vectors but names no embedder", _DAMAGED_HINT)
    return _Header(identity, vectors, count, header)


def _parse_entry(line: str, header: _Header) -> tuple[CacheEntry, np.ndarray | None]:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    for name in ("scope", "prompt", "response"):
        if not isinstance(data.get(name), str):
            raise ValueError(f"{name} is missing")
    entry = CacheEntry(
        key=str(data.get("key", "")),
        scope=data["scope"],
        prompt=data["prompt"],
        response=data["response"],
        metadata=data.get("metadata", {}),
        created_at=data.get("created_at"),  # type: ignore[arg-type]  # checked by prepare_restore
        expires_at=data.get("expires_at"),
        hit_count=data.get("hit_count", 0),
    )
    vector = None
    if header.vectors:
        assert header.identity is not None
        raw = base64.b64decode(str(data.get("vector", "")), validate=True)
        vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if vector.shape != (header.identity.dimension,) or not np.all(np.isfinite(vector)):
            raise ValueError("its vector has the wrong size")
    return entry, vector


def _entries(
    path: Path, header: _Header, lines: Iterator[str]
) -> Iterator[tuple[CacheEntry, np.ndarray | None]]:
    number = 1
    for line in lines:
        number += 1
        if not line.strip():
            continue
        try:
            yield _parse_entry(line, header)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise InvalidInputError(
                f"{path} is damaged: line {number} is unreadable ({exc})", _DAMAGED_HINT
            ) from None


def _validate(cache: SemanticCache, path: Path) -> _Header:
    """Read the whole file once: header, every entry under the cache's rules, the count, the checksum."""
    with _open_backup(path) as lines:
        header = _parse_header(path, next(lines, ""))
        seen = 0
        for entry, _ in _entries(path, header, lines):
            seen += 1
            try:
                cache.prepare_restore(entry)
            except InvalidInputError as exc:
                raise InvalidInputError(
                    f"{path} is damaged: entry {seen}: {exc.message}", _DAMAGED_HINT
                ) from None
    if seen != header.count:
        raise InvalidInputError(
            f"{path} is damaged: {seen} entries, the header says {header.count}", _DAMAGED_HINT
        )
    return header


async def import_entries(
    cache: SemanticCache,
    path: Path | str,
    *,
    progress: Progress | None = None,
    replace: bool = False,
) -> ImportSummary:
    """Load a backup into ``cache``. Nothing is written unless the whole file is valid.

    With ``replace``, the cache is cleared first (after validation), so it holds exactly the backup.
    """
    path = Path(path)
    await cache.open_store()
    header = await asyncio.to_thread(_validate, cache, path)
    identity = await cache.start()
    reuse = header.vectors and header.identity == identity
    if replace:
        await cache.clear()
    summary = ImportSummary(path, header.count, 0, 0, 0, reuse)
    done = 0
    with _open_backup(path) as lines:
        next(lines)
        entries = _entries(path, header, lines)
        while True:
            batch = await asyncio.to_thread(_take, entries, BATCH)
            if not batch:
                break
            vectors = [vector if reuse else None for _, vector in batch]
            result = await cache.restore_entries([entry for entry, _ in batch], vectors)
            summary.written += result.written
            summary.expired += result.expired
            summary.embedded += result.embedded
            done += len(batch)
            if progress is not None:
                progress(done, header.count)
    return summary


def _take(
    entries: Iterator[tuple[CacheEntry, np.ndarray | None]], n: int
) -> list[tuple[CacheEntry, np.ndarray | None]]:
    batch = []
    for item in entries:
        batch.append(item)
        if len(batch) == n:
            break
    return batch


# -- Redis snapshots --------------------------------------------------------------------------------------


def _redis_error(url: str, exc: Exception) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"Redis at {redact_url(url)}: {redact_text(str(exc))}",
        "start Redis or check REDIS_URL / REDIS_PASSWORD",
    )


async def _config_get(client: Any, name: str) -> str | None:
    import redis.exceptions

    try:
        value = await client.config_get(name)
    except redis.exceptions.ResponseError:  # CONFIG renamed or forbidden (managed Redis, ACLs)
        return None
    found = value.get(name)
    return found.decode() if isinstance(found, bytes) else found


def _info_int(info: dict[str, Any], name: str) -> int | None:
    value = info.get(name)
    return int(value) if value is not None else None


async def snapshot_rdb(
    redis_url: str,
    dest_dir: Path,
    *,
    password: str | None = None,
    filename: str | None = None,
    timeout: float = 600.0,
    poll: float = 0.2,
) -> SnapshotResult:
    """BGSAVE, wait until that save has finished, and copy the RDB file into ``dest_dir`` when Redis
    keeps it on this machine. When it does not, ``copied_to`` is ``None`` and ``instructions`` says what
    to do instead."""
    import redis.asyncio as aioredis
    import redis.exceptions

    client = aioredis.Redis.from_url(
        redis_url, password=password, socket_connect_timeout=5, socket_timeout=30
    )
    try:
        try:
            before = await client.info("persistence")
            await _start_bgsave(client)
            info = await _wait_for_save(client, before, timeout, poll)
            saved_at = float((await client.lastsave()).timestamp())
            redis_dir = await _config_get(client, "dir")
            dbfilename = await _config_get(client, "dbfilename")
        except redis.exceptions.RedisError as exc:
            raise _redis_error(redis_url, exc) from None
    finally:
        await client.aclose()
    if info.get("rdb_last_bgsave_status") not in (None, "ok"):
        raise BackendUnavailableError(
            f"Redis at {redact_url(redis_url)} failed to save its snapshot", "see the Redis log for why"
        )
    if redis_dir is None or dbfilename is None:
        return SnapshotResult(
            saved_at, redis_dir, dbfilename, None, None,
            "the snapshot was saved, but this Redis does not tell where (CONFIG GET is not allowed): "
            "copy dump.rdb from the Redis host's data folder, or use your provider's backup feature; "
            "`semcache-tui backup create` writes a logical export that works anywhere",
        )  # fmt: skip
    source = Path(redis_dir) / dbfilename
    if not _is_this_snapshot(source, saved_at):
        return SnapshotResult(
            saved_at, redis_dir, dbfilename, None, None,
            f"the snapshot was saved on the Redis host as {source}, which is not on this machine: copy it "
            f"from there (for example `scp <redis-host>:{source} .` or `docker cp <container>:{source} .`), "
            "or use `semcache-tui backup create` for a logical export",
        )  # fmt: skip
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = _unused(
        dest_dir / (filename or f"redis-{datetime.fromtimestamp(saved_at, UTC):%Y%m%dT%H%M%SZ}.rdb")
    )
    await asyncio.to_thread(_copy_atomically, source, target)
    if not is_rdb_file(target):
        target.unlink(missing_ok=True)
        raise BackendUnavailableError(
            f"{source} is not an RDB file", "check Redis's dir and dbfilename settings"
        )
    return SnapshotResult(saved_at, redis_dir, dbfilename, target, target.stat().st_size)


async def _start_bgsave(client: Any) -> None:
    import redis.exceptions

    try:
        await client.bgsave(schedule=True)  # SCHEDULE: runs after an AOF rewrite instead of failing
    except redis.exceptions.ResponseError as exc:
        if "already in progress" not in str(exc):
            raise
        # A save that started before we asked may not hold writes made since: wait for it, then ours.
        deadline = time.monotonic() + 600
        while (
            int((await client.info("persistence")).get("rdb_bgsave_in_progress", 0))
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.2)
        await client.bgsave(schedule=True)


async def _wait_for_save(client: Any, before: dict[str, Any], timeout: float, poll: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    saves_before = _info_int(before, "rdb_saves")
    last_before = _info_int(before, "rdb_last_save_time")
    while True:
        info = await client.info("persistence")
        idle = not int(info.get("rdb_bgsave_in_progress", 0))
        scheduled = int(info.get("rdb_bgsave_scheduled", 0) or 0) if "rdb_bgsave_scheduled" in info else 0
        saves = _info_int(info, "rdb_saves")
        if saves_before is not None and saves is not None:
            finished = saves > saves_before
        else:  # older Redis: LASTSAVE has one-second resolution, so also wait for a new second
            finished = _info_int(info, "rdb_last_save_time") != last_before
        if idle and not scheduled and finished:
            return dict(info)
        if time.monotonic() > deadline:
            raise BackendUnavailableError(
                f"Redis did not finish its snapshot within {timeout:.0f} s",
                "see the Redis log; try again later",
            )
        await asyncio.sleep(poll)


def _is_this_snapshot(path: Path, saved_at: float) -> bool:
    # A path that exists here may belong to another machine's Redis (a container, a remote host with the
    # same layout): trust it only if it was written when this Redis says it saved.
    try:
        return path.is_file() and abs(path.stat().st_mtime - saved_at) <= 2.0
    except OSError:
        return False


def _copy_atomically(source: Path, target: Path) -> None:
    with atomic_path(target) as partial:
        shutil.copyfile(source, partial)


def is_rdb_file(path: Path) -> bool:
    try:
        with Path(path).open("rb") as handle:
            return handle.read(5) == b"REDIS"
    except OSError:
        return False


# -- Redis restore: a guided procedure, never silent ------------------------------------------------------


@dataclass(slots=True)
class RdbRestorePlan:
    rdb_file: Path
    #: Where Redis loads its snapshot from (``dir``/``dbfilename``), when known.
    target: Path | None
    #: True when ``target``'s folder is on this machine, so ``replace_rdb`` can do the file step.
    local: bool
    appendonly: bool
    steps: list[str]


async def plan_rdb_restore(
    rdb_file: Path, redis_url: str | None, *, password: str | None = None, target: Path | None = None
) -> RdbRestorePlan:
    """The steps to restore ``rdb_file`` into a Redis; asks Redis where it loads from unless ``target``
    is given (needed when Redis is already stopped)."""
    rdb_file = Path(rdb_file)
    if not rdb_file.is_file():
        raise NotFoundError(f"no RDB file at {rdb_file}", "see `semcache-tui backup list`")
    if not is_rdb_file(rdb_file):
        raise InvalidInputError(
            f"{rdb_file} is not an RDB file (it does not start with REDIS)", _BAD_FILE_HINT
        )
    appendonly = False
    if target is None:
        if not redis_url:
            raise InvalidInputError("no Redis to ask where its dump file is", "pass --target PATH/dump.rdb")
        import redis.asyncio as aioredis
        import redis.exceptions

        client = aioredis.Redis.from_url(redis_url, password=password, socket_connect_timeout=5)
        try:
            redis_dir = await _config_get(client, "dir")
            dbfilename = await _config_get(client, "dbfilename")
            appendonly = (await _config_get(client, "appendonly")) == "yes"
        except redis.exceptions.RedisError as exc:
            raise BackendUnavailableError(
                f"Redis at {redact_url(redis_url)} cannot be asked where it keeps dump.rdb: {redact_text(str(exc))}",
                "pass --target PATH/dump.rdb when Redis is already stopped",
            ) from None
        finally:
            await client.aclose()
        if redis_dir is None or dbfilename is None:
            raise InvalidInputError(
                "this Redis does not tell where it keeps dump.rdb (CONFIG GET is not allowed)",
                "pass --target PATH/dump.rdb, or restore through your provider's backup feature",
            )
        target = Path(redis_dir) / dbfilename
    local = target.parent.is_dir()
    where = redact_url(redis_url) if redis_url else "the Redis server"
    steps = [
        f"stop Redis ({where}) without saving: `redis-cli -u <url> SHUTDOWN NOSAVE`, or stop its service/container "
        "(a plain SHUTDOWN would save over the file you are about to restore)",
        f"replace {target} with {rdb_file} (keep the old one aside)",
    ]
    if appendonly:
        steps.append(
            "appendonly is on, and Redis loads the AOF instead of dump.rdb: start it once with "
            "`--appendonly no`, then run `CONFIG SET appendonly yes` so it rewrites the AOF from the snapshot"
        )
    else:
        steps.append("start Redis again; it loads the snapshot")
    steps.append("check the result with `semcache-tui index` and `semcache-tui stats`")
    return RdbRestorePlan(rdb_file, target, local, appendonly, steps)


async def redis_answers(redis_url: str, *, password: str | None = None) -> bool:
    import redis.asyncio as aioredis
    import redis.exceptions

    client = aioredis.Redis.from_url(redis_url, password=password, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(await client.ping())
    except redis.exceptions.ResponseError:
        # Up but refusing PING (NOAUTH, LOADING, a wrong password): still running, still owns the file.
        return True
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False
    finally:
        await client.aclose()


def replace_rdb(plan: RdbRestorePlan, *, now: float | None = None) -> Path | None:
    """The file step of the plan: keep the current dump aside, move the backup into place atomically.
    Returns where the old dump was kept (``None`` when there was none). The caller makes sure Redis is
    stopped first."""
    if plan.target is None or not plan.local:
        raise InvalidInputError(
            f"{plan.target} is not on this machine", "follow the printed steps on the Redis host"
        )
    kept = None
    if plan.target.exists():
        stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y%m%dT%H%M%SZ")
        kept = _unused(plan.target.with_name(f"{plan.target.name}.before-restore-{stamp}"))
        shutil.copy2(plan.target, kept)
    _copy_atomically(plan.rdb_file, plan.target)
    return kept
