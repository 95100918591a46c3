"""The Redis store's health, read from one INFO reply and the MODULE LIST (the store asks for both)."""

from __future__ import annotations

from typing import Any

from engine.models import ComponentHealth
from engine.stores.redis.query import text as _text

#: Above this share of maxmemory, Redis is about to evict entries or refuse writes.
MEMORY_WARNING = 0.9


def _search_version(modules: Any) -> str | None:
    for module in modules or []:
        fields = module if isinstance(module, dict) else dict(zip(module[::2], module[1::2], strict=False))
        plain = {_text(k): v for k, v in fields.items()}
        if _text(plain.get("name", "")) in ("search", "ft"):
            version = int(plain.get("ver", 0))
            return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
    return None


def _persistence(info: dict[str, Any]) -> str:
    aof = str(info.get("aof_enabled", 0)) == "1"
    rdb = info.get("rdb_last_save_time")
    if aof:
        return f"AOF ({info.get('aof_last_write_status', '?')})"
    if info.get("rdb_changes_since_last_save") is not None and rdb:
        return f"RDB snapshots ({info.get('rdb_changes_since_last_save')} changes since the last save)"
    return "none"


def server_health(
    info: dict[str, Any], modules: Any, latency_ms: float, *, url: str, index: str
) -> ComponentHealth:
    """The health of a Redis that answered PING in ``latency_ms``, from its INFO and MODULE LIST replies;
    ``url`` (already redacted) and ``index`` are reported among the facts."""
    search = _search_version(modules)
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    facts: dict[str, Any] = {
        "store": "redis",
        "url": url,
        "index": index,
        "redis_version": info.get("redis_version"),
        "search_version": search,
        "used_memory": used,
        "used_memory_human": info.get("used_memory_human"),
        "maxmemory": limit,
        "maxmemory_policy": info.get("maxmemory_policy"),
        "connected_clients": info.get("connected_clients"),
        "ops_per_sec": info.get("instantaneous_ops_per_sec"),
        "encrypted": url.startswith("rediss://"),  # TLS to Redis: rediss:// is never downgraded
        "evicted_keys": info.get("evicted_keys"),
        "persistence": _persistence(info),
        "uptime_s": info.get("uptime_in_seconds"),
    }
    if search is None:
        return ComponentHealth(
            "store", "down", f"Redis {info.get('redis_version')} has no search module", latency_ms, facts
        )
    if str(info.get("loading", 0)) == "1":
        return ComponentHealth("store", "loading", "Redis is loading its data set", latency_ms, facts)
    if limit and used >= MEMORY_WARNING * limit:
        share = used / limit
        return ComponentHealth("store", "degraded", f"memory at {share:.0%} of maxmemory", latency_ms, facts)
    detail = f"Redis {info.get('redis_version')}, search {search}"
    return ComponentHealth("store", "ok", detail, latency_ms, facts)
