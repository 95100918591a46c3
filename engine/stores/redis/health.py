"""The Redis store's health, read from one INFO reply, the MODULE LIST and ``CONFIG GET save`` /
``appendonly`` (the store asks for them in one pipeline)."""

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


def _config_value(reply: Any, name: str) -> str | None:
    """One value of a ``CONFIG GET`` reply (a dict, or a flat list), ``None`` when CONFIG was refused."""
    if isinstance(reply, dict):
        plain = {_text(k): v for k, v in reply.items()}
    elif isinstance(reply, list | tuple):
        plain = {_text(k): v for k, v in zip(reply[::2], reply[1::2], strict=False)}
    else:
        return None
    value = plain.get(name)
    return None if value is None else _text(value)


def persistence(info: dict[str, Any], save: Any = None, appendonly: Any = None) -> str:
    """What survives a restart, from the configuration (``CONFIG GET save`` and ``appendonly``), not from
    INFO alone: INFO reports a last save time even when ``save ""`` turned snapshots off. "none" when
    neither is on, so an operator sees that a restart loses the cache. Without CONFIG (a managed Redis
    may refuse it), INFO's ``aof_enabled`` and the ``rdb_saves`` counters are the evidence."""
    schedule = _config_value(save, "save")
    aof_config = _config_value(appendonly, "appendonly")
    aof = aof_config == "yes" if aof_config is not None else str(info.get("aof_enabled", 0)) == "1"
    changes = info.get("rdb_changes_since_last_save")
    parts: list[str] = []
    if aof:
        parts.append(f"AOF ({info.get('aof_last_write_status', '?')})")
    if schedule is not None and schedule.strip():
        pending = f", {changes} changes since the last save" if changes is not None else ""
        parts.append(f"RDB snapshots (save {schedule.strip()}{pending})")
    elif schedule is None and not aof and int(info.get("rdb_saves", 0) or 0) > 0:
        parts.append("RDB snapshots (configuration not readable)")
    return " + ".join(parts) if parts else "none"


def server_health(
    info: dict[str, Any],
    modules: Any,
    latency_ms: float,
    *,
    url: str,
    index: str,
    save: Any = None,
    appendonly: Any = None,
) -> ComponentHealth:
    """The health of a Redis that answered PING in ``latency_ms``, from its INFO and MODULE LIST replies
    and its ``CONFIG GET save`` / ``appendonly`` replies (``None`` or an error when CONFIG is refused);
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
        "persistence": persistence(info, save, appendonly),
        "uptime_s": info.get("uptime_in_seconds"),
    }
    if search is None:
        return ComponentHealth(
            "store", "down", f"Redis {info.get('redis_version')} has no search module", latency_ms, facts
        )
    if str(info.get("loading", 0)) == "1":
        return ComponentHealth("store", "loading", "Redis is loading its data set", latency_ms, facts)
    policy = str(info.get("maxmemory_policy") or "")
    # allkeys-* policies evict any key, our bookkeeping (identity record, counters, eviction ranks) among
    # them; volatile-* ones only keys with an expiry, which entries have and bookkeeping never does.
    facts["bookkeeping_evictable"] = bool(limit) and policy.startswith("allkeys")
    if facts["bookkeeping_evictable"]:
        return ComponentHealth(
            "store",
            "degraded",
            f"maxmemory-policy {policy} may evict the cache's bookkeeping keys (identity record, counters, "
            "eviction ranks): use volatile-lru, or SEMCACHE_MAX_ENTRIES to stay under maxmemory",
            latency_ms,
            facts,
        )
    if limit and used >= MEMORY_WARNING * limit:
        share = used / limit
        return ComponentHealth("store", "degraded", f"memory at {share:.0%} of maxmemory", latency_ms, facts)
    detail = f"Redis {info.get('redis_version')}, search {search}"
    return ComponentHealth("store", "ok", detail, latency_ms, facts)
