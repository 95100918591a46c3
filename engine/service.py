"""``CacheService``: everything the server, the control panel and the command line call on a cache.

Two implementations: ``SemanticCache`` (engine/cache.py, opens the store itself) and ``RemoteCache``
(engine/client.py, talks to a running ``semcache-tui --serve`` over HTTP). The server, the panel and the
command line are written against this protocol only, so they work the same with either, and none of them
needs to ask a cache what it can do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from engine.cache import CachePolicy, StoreRequest
from engine.models import (
    CacheEntry,
    CacheStats,
    Candidate,
    CheckResult,
    EmbedderIdentity,
    EntryPage,
    FeedbackResult,
    HealthReport,
    IndexInfo,
    Match,
)
from engine.verification.model import Verifier


@runtime_checkable
class CacheService(Protocol):
    policy: CachePolicy

    # -- life cycle --------------------------------------------------------------------------------------

    async def start(self) -> EmbedderIdentity:
        """Open the store and load the embedder; concurrent callers share one start."""
        ...

    async def open_store(self) -> EmbedderIdentity | None:
        """Open the store only: enough for stats, listing, deleting and clearing."""
        ...

    @property
    def ready(self) -> bool:
        """``start`` has finished successfully."""
        ...

    async def close(self) -> None: ...

    # -- what is served ----------------------------------------------------------------------------------

    @property
    def identity(self) -> EmbedderIdentity | None:
        """The embedder serving this cache (the configured one, else the index's record), if known yet."""
        ...

    @property
    def index_name(self) -> str | None:
        """The physical index served, if known yet."""
        ...

    @property
    def store_kind(self) -> str | None:
        """``"redis"`` or ``"local"``, if known yet."""
        ...

    # -- operations --------------------------------------------------------------------------------------

    async def check(
        self, prompt: str, scope: str | None = None, threshold: float | None = None, k: int = 5
    ) -> CheckResult: ...

    async def nearest(self, prompt: str, scope: str | None = None, k: int = 10) -> list[Match]:
        """The k nearest entries whatever their distance (with their vectors when opened here)."""
        ...

    def load_verifier(self) -> Verifier:
        """The verifier candidates are judged with, loaded once (``VerifierError`` when its files are
        missing or damaged). Attached to a server, the shipped weights stand for the server's: both come
        with the package, unless the server was given its own ``SEMCACHE_VERIFIER_PATH``."""
        ...

    async def verdicts(
        self,
        prompt: str,
        matches: Sequence[Match],
        *,
        scope: str | None = None,
        threshold: float | None = None,
        target_precision: float | None = None,
    ) -> list[Candidate]:
        """``matches`` judged by ``check``'s rule (``engine.cache.judge``) at the cap ``threshold`` and
        ``target_precision``: each with its score, whether it passes or is served, and why."""
        ...

    def judge(self, prompt: str, match: Match, threshold: float) -> str | None:
        """Why ``match`` is refused by distance or a critical-token rule (no score: ``verdicts`` has the
        whole rule); ``engine.cache.judge_without_score``."""
        ...

    async def feedback(
        self, prompt: str, key: str, correct: bool, scope: str | None = None
    ) -> FeedbackResult:
        """Report that entry ``key`` served for ``prompt`` was wrong (or right)."""
        ...

    async def store(
        self,
        prompt: str,
        response: str,
        scope: str | None = None,
        metadata: dict[str, Any] | None = None,
        ttl: int | None = None,
    ) -> CacheEntry: ...

    async def store_many(self, requests: Sequence[StoreRequest]) -> list[CacheEntry]:
        """Store all or nothing, embedded in one batch."""
        ...

    async def get(self, key: str) -> CacheEntry | None: ...

    async def delete(self, key: str) -> bool: ...

    async def clear(self) -> int: ...

    async def purge_expired(self) -> int: ...

    async def list_entries(
        self, offset: int = 0, limit: int = 50, scope: str | None = None, contains: str | None = None
    ) -> EntryPage: ...

    async def stats(self) -> CacheStats: ...

    async def health(self) -> HealthReport: ...

    async def index_info(self) -> IndexInfo: ...
