"""Moving a cache to another embedder (provider, model or dimension) without losing it.

    plan      what changes, how many entries, how long (a measured embedding rate), storage before/after
    reembed   fill a new physical index ({name}__vN) with every prompt embedded again, while the old one
              keeps serving; catch up with writes made meanwhile; switch the active-index pointer
              (engine/index_pointer.py). The old index stays until ``finalize``; ``rollback`` switches back.
    recreate  the disposable way: switch to an empty index bound to the new embedder, delete the old entries.

Resumable: keys are derived from (scope, prompt), so copying an entry twice writes it once; a run copies
only what the new index lacks (or holds an older version of), and the record of the migration (source,
target, phase, counts) sits next to the pointer, so running again after an interruption continues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from engine.cache import SemanticCache
from engine.config import PROVIDERS, Settings
from engine.embeddings import create_embedder
from engine.embeddings.base import Embedder
from engine.errors import InvalidInputError, NotFoundError
from engine.index_pointer import (
    ACTIVE,
    MIGRATION,
    PointerRecords,
    next_physical_name,
    read_active,
    records_for,
)
from engine.models import CacheEntry, EmbedderIdentity
from engine.stores.base import VectorStore

Strategy = Literal["reembed", "recreate"]
StoreFactory = Callable[[str], VectorStore]
BATCH = 64
FLOAT_BYTES = 4
#: Catch-up passes before switching; each pass only copies what arrived during the previous one.
CATCH_UP_PASSES = 3


@dataclass(frozen=True, slots=True)
class MigrationTarget:
    model: str
    dimension: int | None = None
    provider: str = "sentence-transformers"
    ollama_base_url: str = "http://localhost:11434"
    #: How a sentence-transformers target runs (EMBEDDING_BACKEND): the operator's choice holds here too.
    backend: Literal["auto", "torch", "onnx"] = "auto"
    #: How embedders run otherwise (HF_TOKEN, the model cache folder, the Ollama timeout); when not given,
    #: the environment's.
    settings: Settings | None = field(default=None, compare=False, repr=False)

    @classmethod
    def resuming(cls, identity: EmbedderIdentity, settings: Settings) -> MigrationTarget:
        """The target of a recorded migration (its identity), run the way ``settings`` say embedders run."""
        return cls(
            identity.model,
            identity.dimension,
            identity.provider,
            settings.ollama_base_url,
            backend=settings.embedding_backend,
            settings=settings,
        )

    def create_embedder(self) -> Embedder:
        """Built by ``engine.embeddings.create_embedder``, as every embedder is."""
        if self.provider not in PROVIDERS:
            raise InvalidInputError(
                f"provider {self.provider!r} is unknown", "use sentence-transformers or ollama"
            )
        settings = _or_environment(self.settings)
        return create_embedder(
            settings.model_copy(
                update={
                    "embedding_provider": self.provider,
                    "embedding_model": self.model,
                    "embedding_output_dimension": self.dimension,
                    "ollama_base_url": self.ollama_base_url,
                    "embedding_backend": self.backend,
                }
            )
        )


@dataclass(slots=True)
class MigrationPlan:
    index: str
    source_index: str
    target_index: str
    source: EmbedderIdentity | None
    target: EmbedderIdentity
    changes: list[str]
    entries: int
    #: Prompts per second the target embedder managed on a sample of this cache's prompts.
    embed_rate: float
    estimated_seconds: float
    bytes_before: int
    bytes_after: int

    @property
    def needed(self) -> bool:
        return bool(self.changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = self.source.to_dict() if self.source else None
        data["target"] = self.target.to_dict()
        return data


@dataclass(slots=True)
class MigrationProgress:
    phase: str
    done: int
    total: int
    eta_seconds: float | None


Progress = Callable[[MigrationProgress], None]


@dataclass(slots=True)
class MigrationState:
    """The record kept next to the pointer. ``phase``: copying, catching_up, switched, finalized,
    rolled_back."""

    index: str
    strategy: str
    source_index: str
    target_index: str
    source: dict[str, Any] | None
    target: dict[str, Any]
    phase: str
    total: int = 0
    done: int = 0
    copied: int = 0
    caught_up: int = 0
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @property
    def target_identity(self) -> EmbedderIdentity:
        return EmbedderIdentity.from_dict(self.target)

    @property
    def in_progress(self) -> bool:
        return self.phase in ("copying", "catching_up")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationState:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# -- reading where we are ----------------------------------------------------------------------------------


async def read_state(records: PointerRecords) -> MigrationState | None:
    data = await records.read(MIGRATION)
    return MigrationState.from_dict(data) if data else None


async def migration_status(cache: SemanticCache) -> tuple[str, MigrationState | None]:
    """The active physical index of ``cache``'s logical name, and the last migration's record."""
    records = records_for(cache.vector_store)
    return await read_active(records), await read_state(records)


async def _save(records: PointerRecords, state: MigrationState) -> None:
    state.updated_at = time.time()
    await records.write(MIGRATION, state.to_dict())


async def _switch(records: PointerRecords, physical: str) -> None:
    await records.write(ACTIVE, {"physical": physical, "switched_at": time.time()})


# -- plan --------------------------------------------------------------------------------------------------


def _changes(source: EmbedderIdentity | None, target: EmbedderIdentity) -> list[str]:
    if source is None:
        return []  # an index never bound takes whatever embedder opens it first
    compared = (
        ("provider", source.provider, target.provider),
        ("model", source.model, target.model),
        ("dimension", source.dimension, target.dimension),
    )
    return [f"{what}: {before} -> {after}" for what, before, after in compared if before != after]


async def plan_migration(
    cache: SemanticCache,
    target: MigrationTarget,
    *,
    embedder: Embedder | None = None,
    sample: int = 16,
) -> MigrationPlan:
    """What moving ``cache`` to ``target`` would do. Changes nothing; embeds ``sample`` prompts (with the
    target embedder, loaded here) to measure its rate."""
    await cache.open_store()
    store = cache.vector_store
    source = store.recorded_identity
    embedder = embedder or target.create_embedder()
    identity = await embedder.load()
    entries = await store.count()
    page = await store.list_entries(offset=0, limit=max(sample, 200))
    prompts = [entry.prompt for entry in page.entries[:sample]] or ["How long does a migration take?"] * 8
    text = [_text_bytes(entry) for entry in page.entries]
    average_text = sum(text) / len(text) if text else 0.0
    await embedder.embed(prompts[:1])  # the first call pays for warm-up, which a long run does not
    started = time.perf_counter()
    await embedder.embed(prompts)
    elapsed = max(time.perf_counter() - started, 1e-6)
    rate = len(prompts) / elapsed
    source_dimension = source.dimension if source else identity.dimension
    return MigrationPlan(
        index=records_for(store).name,
        source_index=store.name,
        target_index=next_physical_name(store.name),
        source=source,
        target=identity,
        changes=_changes(source, identity),
        entries=entries,
        embed_rate=rate,
        estimated_seconds=entries / rate,
        bytes_before=int(entries * (source_dimension * FLOAT_BYTES + average_text)),
        bytes_after=int(entries * (identity.dimension * FLOAT_BYTES + average_text)),
    )


def _text_bytes(entry: CacheEntry) -> int:
    return len(entry.prompt.encode()) + len(entry.response.encode())


# -- run ---------------------------------------------------------------------------------------------------


class _Eta:
    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.started = time.monotonic()
        self.base = 0

    def start(self, done: int) -> None:
        self.started, self.base = time.monotonic(), done

    def report(self, phase: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        made = done - self.base
        elapsed = time.monotonic() - self.started
        eta = (total - done) * elapsed / made if made > 0 and total >= done else None
        self.progress(MigrationProgress(phase, done, total, eta))


async def _key_times(cache: SemanticCache) -> dict[str, float]:
    return {entry.key: entry.created_at async for batch in cache.iter_entries(1000) for entry in batch}


async def _copy_missing(
    source: SemanticCache,
    target: SemanticCache,
    present: dict[str, float],
    *,
    batch: int,
    on_batch: Callable[[int], Any] | None = None,
) -> int:
    """Copy every source entry the target lacks or holds an older version of; returns how many."""
    copied = 0
    pending: list[CacheEntry] = []

    async def flush() -> None:
        nonlocal copied
        result = await target.restore_entries(pending)  # no vectors given: embedded by the target embedder
        for entry in pending:
            present[entry.key] = entry.created_at
        copied += result.written
        if on_batch is not None:
            await on_batch(len(pending))
        pending.clear()

    async for page in source.iter_entries(batch):
        for entry in page:
            known = present.get(entry.key)
            if known is not None and known >= entry.created_at:
                continue
            pending.append(entry)
            if len(pending) >= batch:
                await flush()
    if pending:
        await flush()
    return copied


async def run_migration(
    cache: SemanticCache,
    target: MigrationTarget | None,
    stores: StoreFactory,
    *,
    strategy: Strategy = "reembed",
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> MigrationState:
    """Move the logical index of ``cache`` to the target embedder; ``stores(name)`` opens a sibling index
    (same kind, same place) by its physical name. Run it again after an interruption to continue.

    ``target`` may be ``None`` when a migration is in progress and ``embedder`` is given.
    """
    if strategy not in ("reembed", "recreate"):
        raise InvalidInputError(f"strategy {strategy!r} is unknown", "use reembed or recreate")
    if not 2 <= batch <= 1000:
        raise InvalidInputError(f"batch={batch} is out of range", "use 2 to 1000")
    records = records_for(cache.vector_store)
    active = await read_active(records)
    if embedder is None:
        if target is None:
            raise InvalidInputError("no target embedder", "pass --to-model (and --to-dimension)")
        embedder = target.create_embedder()
    identity = await embedder.load()
    state = await read_state(records)
    source_cache = (
        cache if cache.vector_store.name == active else SemanticCache(stores(active), cache.embedder)
    )
    try:
        if state is not None and state.in_progress:
            if state.target_identity != identity or state.strategy != strategy:
                raise InvalidInputError(
                    f"a {state.strategy} migration of {records.name} to "
                    f"{state.target_identity.describe()} is in progress",
                    "run it again with the same target to continue, or `semcache-tui migrate rollback`",
                )
            if source_cache.vector_store.name != state.source_index:
                source_cache = SemanticCache(stores(state.source_index), cache.embedder)
        else:
            recorded = await source_cache.open_store()
            if recorded == identity:
                raise InvalidInputError(
                    f"index {records.name} already holds vectors from {identity.describe()}",
                    "nothing to migrate",
                )
            state = MigrationState(
                index=records.name,
                strategy=strategy,
                source_index=active,
                target_index=next_physical_name(active),
                source=recorded.to_dict() if recorded else None,
                target=identity.to_dict(),
                phase="copying",
            )
        target_cache = SemanticCache(stores(state.target_index), embedder, cache.policy)
        try:
            if strategy == "recreate":
                return await _recreate(records, state, source_cache, target_cache)
            return await _reembed(records, state, source_cache, target_cache, progress, batch)
        finally:
            await target_cache.vector_store.close()
    finally:
        if source_cache is not cache:
            await source_cache.vector_store.close()


async def _recreate(
    records: PointerRecords, state: MigrationState, source: SemanticCache, target: SemanticCache
) -> MigrationState:
    await target.start()
    await target.clear()
    state.total = await source.vector_store.count()
    await _save(records, state)
    await _switch(records, state.target_index)
    await source.vector_store.drop()
    state.phase = "finalized"
    await _save(records, state)
    return state


async def _reembed(
    records: PointerRecords,
    state: MigrationState,
    source: SemanticCache,
    target: SemanticCache,
    progress: Progress | None,
    batch: int,
) -> MigrationState:
    await target.start()
    await source.open_store()
    present = await _key_times(target)
    state.total = await source.vector_store.count()
    state.done = min(len(present), state.total)
    eta = _Eta(progress)
    eta.start(state.done)
    if state.phase == "copying":
        await _save(records, state)

        async def copied(n: int) -> None:
            state.done = len(present)
            state.total = max(state.total, state.done)
            await _save(records, state)
            eta.report("copying", state.done, state.total)

        state.copied += await _copy_missing(source, target, present, batch=batch, on_batch=copied)
        state.phase = "catching_up"
        await _save(records, state)
    for _ in range(CATCH_UP_PASSES):
        made = await _catch_up(source, target, present, batch)
        state.caught_up += made
        if made == 0:
            break
    state.total = state.done = await target.vector_store.count()
    await _switch(records, state.target_index)
    state.phase = "switched"
    await _save(records, state)
    # Writes that reached the old index between the last pass and the switch. Nothing is deleted now: the
    # new index takes writes of its own from here on.
    state.caught_up += await _catch_up(source, target, present, batch, remove_deleted=False)
    state.total = state.done = await target.vector_store.count()
    await _save(records, state)
    eta.report("switched", state.done, state.total)
    return state


async def _catch_up(
    source: SemanticCache,
    target: SemanticCache,
    present: dict[str, float],
    batch: int,
    *,
    remove_deleted: bool = True,
) -> int:
    """Entries written to (or, with ``remove_deleted``, deleted from) the old index since they were copied."""
    fresh = await _key_times(target)
    present.clear()
    present.update(fresh)
    copied = await _copy_missing(source, target, present, batch=batch)
    if not remove_deleted:
        return copied
    live = await _key_times(source)
    gone = [key for key in present if key not in live]
    for key in gone:
        await target.delete(key)
        present.pop(key, None)
    return copied + len(gone)


# -- after the switch --------------------------------------------------------------------------------------


async def _last(cache: SemanticCache, *phases: str) -> tuple[PointerRecords, MigrationState]:
    records = records_for(cache.vector_store)
    state = await read_state(records)
    if state is None:
        raise NotFoundError(f"no migration of index {records.name}", "see `semcache-tui migrate plan`")
    if state.phase not in phases:
        raise InvalidInputError(
            f"the migration of {records.name} is {state.phase.replace('_', ' ')}",
            "see `semcache-tui migrate status`",
        )
    return records, state


async def finalize_migration(
    cache: SemanticCache,
    stores: StoreFactory,
    embedder: Embedder | None = None,
    *,
    settings: Settings | None = None,
) -> int:
    """Drop the old index (entries, vectors, bookkeeping) after a switch; returns how many entries it held.
    No rollback after this.

    Replicas still running with the old configuration keep writing to the old index after the switch; those
    entries are carried over first (re-embedded by ``embedder``, or one built for the target identity as
    ``settings`` say), so finalizing loses nothing that was acknowledged.
    """
    records, state = await _last(cache, "switched")
    old = SemanticCache(stores(state.source_index), cache.embedder, cache.policy)
    new = SemanticCache(
        stores(state.target_index),
        embedder or _embedder_for(cache, state.target_identity, settings),
        cache.policy,
    )
    try:
        await old.open_store()
        await new.open_store()
        state.caught_up += await _copy_missing(old, new, await _key_times(new), batch=BATCH)
        deleted = await old.vector_store.drop()
    finally:
        await old.vector_store.close()
        await new.vector_store.close()
    state.phase = "finalized"
    await _save(records, state)
    return deleted


def _embedder_for(cache: SemanticCache, target: EmbedderIdentity, settings: Settings | None) -> Embedder:
    """The cache's own embedder when it has ``target``'s identity, else a new one for ``target``, run the way
    ``settings`` (the environment's when not given) say embedders run."""
    if cache.embedder.identity == target:
        return cache.embedder
    return MigrationTarget.resuming(target, _or_environment(settings)).create_embedder()


def _or_environment(settings: Settings | None) -> Settings:
    return settings if settings is not None else Settings.load()


async def rollback_migration(
    cache: SemanticCache,
    stores: StoreFactory,
    embedder: Embedder | None = None,
    *,
    settings: Settings | None = None,
) -> MigrationState:
    """Serve from the old index again (its entries are untouched until ``finalize``).

    After a switch, servers wrote to the new index; those entries are carried back first (re-embedded by
    ``embedder``, or one built for the old index's identity as ``settings`` say), so rolling back loses
    nothing acknowledged.
    Deletes made in the new index are not carried back: the old index still holds those entries.
    """
    records, state = await _last(cache, "copying", "catching_up", "switched")
    if state.phase == "switched":
        source_identity = EmbedderIdentity.from_dict(state.source) if state.source else None
        back = embedder or (
            _embedder_for(cache, source_identity, settings) if source_identity is not None else cache.embedder
        )
        new = SemanticCache(stores(state.target_index), cache.embedder, cache.policy)
        old = SemanticCache(stores(state.source_index), back, cache.policy)
        try:
            await new.open_store()
            await old.open_store()
            state.caught_up += await _copy_missing(new, old, await _key_times(old), batch=BATCH)
        finally:
            await new.vector_store.close()
            await old.vector_store.close()
    await _switch(records, state.source_index)
    state.phase = "rolled_back"
    await _save(records, state)
    return state


# -- verify ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    """Counts of both indexes and how many sampled prompts the new index would serve."""

    source_entries: int
    target_entries: int
    hits: int
    sampled: int


async def verify_migration(
    cache: SemanticCache, state: MigrationState, stores: StoreFactory, embedder: Embedder, *, sample: int = 8
) -> Verification:
    """Count both indexes and look ``sample`` stored prompts up through the new index with ``embedder``.

    The lookups are the cache's rule (``nearest`` then ``judge``, what ``check`` would answer) but are not
    ``check`` calls: a verification must not count as traffic in the hit/miss statistics operators read.
    """
    old = SemanticCache(stores(state.source_index), cache.embedder, cache.policy)
    new = SemanticCache(stores(state.target_index), embedder, cache.policy)
    try:
        await old.open_store()
        await new.start()
        source_count = await old.vector_store.count()
        target_count = await new.vector_store.count()
        page = await new.vector_store.list_entries(offset=0, limit=sample)
        hits = 0
        for entry in page.entries:
            matches = await new.nearest(entry.prompt, scope=entry.scope, k=5)
            threshold = cache.policy.threshold
            hits += int(any(new.judge(entry.prompt, m, threshold) is None for m in matches))
    finally:
        await old.vector_store.close()
        await new.vector_store.close()
    return Verification(source_count, target_count, hits, len(page.entries))
