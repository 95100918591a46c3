"""The "active index" pointer: which physical index serves a logical index name, and the migration record.

A migration fills a new physical index (``{name}__v2``, ``{name}__v3``...) while the old one keeps serving,
then switches by rewriting one small record. Both records live next to the store's own data:

- embedded store: ``{data_dir}/{name}.active.json`` and ``{name}.migration.json``, written atomically
  (a temporary file, then ``os.replace``), so a reader sees the old record or the new one, never half;
- Redis: the keys ``@semcache:{name}:active`` and ``@semcache:{name}:migration`` (the Redis store keeps
  its bookkeeping under ``@semcache:{name}:...``; '@' is never the prefix of an entry key).

No record means the logical name is its own physical index (every cache made before migrations existed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.atomic import atomic_path
from engine.errors import BackendUnavailableError

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.stores.base import VectorStore

ACTIVE = "active"
MIGRATION = "migration"
_VERSION = re.compile(r"^(?P<name>.+)__v(?P<version>\d+)$")


def logical_name(physical: str) -> str:
    """``cache__v3`` -> ``cache``; a name without a version suffix is its own logical name."""
    found = _VERSION.match(physical)
    return found.group("name") if found else physical


def next_physical_name(physical: str) -> str:
    """The name of the index a migration away from ``physical`` fills: ``cache`` -> ``cache__v2``."""
    found = _VERSION.match(physical)
    if found is None:
        return f"{physical}__v2"
    return f"{found.group('name')}__v{int(found.group('version')) + 1}"


def redis_key(name: str, record: str) -> str:
    return f"@semcache:{name}:{record}"


def local_path(data_dir: Path, name: str, record: str) -> Path:
    return Path(data_dir) / f"{name}.{record}.json"


class PointerRecords(Protocol):
    """Where the records of one logical name are kept."""

    name: str

    async def read(self, record: str) -> dict[str, Any] | None: ...

    async def write(self, record: str, data: dict[str, Any]) -> None: ...


class LocalRecords:
    def __init__(self, data_dir: Path, name: str) -> None:
        self.data_dir = Path(data_dir)
        self.name = name

    async def read(self, record: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(_read_json, local_path(self.data_dir, self.name, record))

    async def write(self, record: str, data: dict[str, Any]) -> None:
        await asyncio.to_thread(_write_json, local_path(self.data_dir, self.name, record), data)


class RedisRecords:
    """Uses the store's own client, so the records share its connection settings and credentials."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    async def read(self, record: str) -> dict[str, Any] | None:
        raw = await self._call(self.client.get, redis_key(self.name, record))
        return _parse(raw)

    async def write(self, record: str, data: dict[str, Any]) -> None:
        await self._call(self.client.set, redis_key(self.name, record), json.dumps(data))

    async def _call(self, fn: Any, *args: Any) -> Any:
        import redis.exceptions

        try:
            return await fn(*args)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise BackendUnavailableError(
                f"cannot read or write the index pointer of {self.name} on Redis: {type(exc).__name__}",
                "start Redis or check REDIS_URL / REDIS_PASSWORD",
            ) from None


def physical_of(active: dict[str, Any] | None, name: str) -> str:
    """The physical index an active-index record names; no record (or a damaged one) means ``name`` itself."""
    physical = (active or {}).get("physical")
    return physical if isinstance(physical, str) and physical else name


async def read_active(records: PointerRecords) -> str:
    """The physical index serving ``records``' logical name now."""
    return physical_of(await records.read(ACTIVE), records.name)


def records_for(store: VectorStore) -> PointerRecords:
    """The records of the logical index ``store`` belongs to, kept where ``store`` keeps its data."""
    name = logical_name(store.name)
    if store.kind == "redis":
        return RedisRecords(store.client, name)  # type: ignore[attr-defined]
    return LocalRecords(store.data_dir, name)  # type: ignore[attr-defined]


def resolve_active(settings: Settings) -> tuple[str, dict[str, Any] | None]:
    """The physical index serving ``settings.index_name`` now, and the embedder identity the last migration
    recorded for that index (its target, or its source after a rollback); None when no migration named it.

    Synchronous, because ``build_cache`` is. One client and two reads at most.
    """
    name = settings.index_name
    if settings.store_kind == "redis":
        active = _read_redis_sync(settings, redis_key(name, ACTIVE))
        migration = _read_redis_sync(settings, redis_key(name, MIGRATION)) if active else None
    else:
        folder = settings.resolved_data_dir
        active = _read_json(local_path(folder, name, ACTIVE))
        migration = _read_json(local_path(folder, name, MIGRATION)) if active else None
    physical = physical_of(active, "")
    if not physical:
        return name, None
    identity = None
    if migration is not None:
        if physical == migration.get("target_index"):
            identity = migration.get("target")
        elif physical == migration.get("source_index"):
            identity = migration.get("source")
    return physical, identity if isinstance(identity, dict) else None


def _read_redis_sync(settings: Settings, key: str) -> dict[str, Any] | None:
    import redis.exceptions

    from engine.stores.redis.connection import DEFAULT_URL, make_client

    client = make_client(
        settings.redis_url or DEFAULT_URL,
        settings.redis_password,
        connect_timeout=2,
        socket_timeout=5,
        sentinel_password=settings.redis_sentinel_password,
        sync=True,
    )
    try:
        return _parse(client.get(key))
    except (redis.exceptions.RedisError, OSError):
        # Redis is down or refuses us: the store's own open() reports that with the right words.
        return None
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _parse(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return _parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackendUnavailableError(f"cannot read {path} ({exc.strerror or exc})") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".tmp") as partial:
        partial.write_text(json.dumps(data, indent=2), encoding="utf-8")
