"""Redis restore from an RDB snapshot: a guided procedure, never silent."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.backup.catalog import _unused
from engine.backup.format import _BAD_FILE_HINT
from engine.backup.snapshot import _config_get, _copy_atomically, is_rdb_file
from engine.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from engine.redact import redact_text, redact_url


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
    rdb_file: Path,
    redis_url: str | None,
    *,
    password: str | None = None,
    target: Path | None = None,
    sentinel_password: str | None = None,
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
        import redis.exceptions

        from engine.stores.redis.connection import make_client

        client = make_client(
            redis_url, password, connect_timeout=5, socket_timeout=None, sentinel_password=sentinel_password
        )
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


async def redis_answers(
    redis_url: str, *, password: str | None = None, sentinel_password: str | None = None
) -> bool:
    import redis.exceptions

    from engine.stores.redis.connection import make_client

    client = make_client(
        redis_url, password, connect_timeout=2, socket_timeout=2, sentinel_password=sentinel_password
    )
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
