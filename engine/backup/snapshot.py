"""Redis RDB snapshots: BGSAVE, wait until that save has finished, and copy the RDB file here when Redis
keeps it on this machine (the guided restore of such a file is in ``rdb_restore``)."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.atomic import atomic_path
from engine.backup.catalog import _unused
from engine.errors import BackendUnavailableError
from engine.redact import redact_text, redact_url


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
    sentinel_password: str | None = None,
    filename: str | None = None,
    timeout: float = 600.0,
    poll: float = 0.2,
) -> SnapshotResult:
    """BGSAVE, wait until that save has finished, and copy the RDB file into ``dest_dir`` when Redis
    keeps it on this machine. When it does not, ``copied_to`` is ``None`` and ``instructions`` says what
    to do instead."""
    import redis.exceptions

    from engine.stores.redis.connection import make_client

    client = make_client(
        redis_url, password, connect_timeout=5, socket_timeout=30, sentinel_password=sentinel_password
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
