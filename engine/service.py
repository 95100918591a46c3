"""``CacheService``: what the control panel and the command line need from a cache.

Two implementations: ``SemanticCache`` (engine/cache.py, opens the store itself) and ``RemoteCache``
(engine/client.py, talks to a running ``semcache-tui --serve`` over HTTP). The panel is written against
this protocol only, so it works the same attached to either.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from engine.cache import CachePolicy
from engine.models import (
    CacheEntry,
    CacheStats,
    CheckResult,
    EmbedderIdentity,
    EntryPage,
    HealthReport,
    IndexInfo,
    Match,
)


@runtime_checkable
class CacheService(Protocol):
    policy: CachePolicy

    async def start(self) -> EmbedderIdentity: ...

    async def open_store(self) -> EmbedderIdentity | None: ...

    async def close(self) -> None: ...

    async def check(
        self, prompt: str, scope: str | None = None, threshold: float | None = None, k: int = 5
    ) -> CheckResult: ...

    async def nearest(self, prompt: str, scope: str | None = None, k: int = 10) -> list[Match]: ...

    def judge(self, prompt: str, match: Match, threshold: float) -> str | None: ...

    async def store(
        self,
        prompt: str,
        response: str,
        scope: str | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: int | None = None,
    ) -> CacheEntry: ...

    async def get(self, key: str) -> CacheEntry | None: ...

    async def delete(self, key: str) -> bool: ...

    async def clear(self) -> int: ...

    async def list_entries(
        self, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage: ...

    async def stats(self) -> CacheStats: ...

    async def health(self) -> HealthReport: ...

    async def index_info(self) -> IndexInfo: ...
