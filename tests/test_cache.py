"""Behaviour of the cache's rules, run against every store (the ``cache`` fixture is parametrized over the
embedded store and Redis) with the real bundled model, so the stores cannot drift apart."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from engine.cache import CachePolicy, SemanticCache, StoreRequest
from engine.errors import IndexMismatchError, InvalidInputError
from engine.keys import entry_key
from engine.models import CacheEntry, EmbedderIdentity


async def test_paraphrase_is_a_hit_and_unrelated_is_a_miss(cache: SemanticCache) -> None:
    await cache.store("What is the capital of France?", "Paris.")
    hit = await cache.check("what's the capital of France", threshold=0.3)
    assert hit.is_hit
    assert hit.matches[0].entry.response == "Paris."
    assert 0.0 < hit.matches[0].distance <= 0.3
    miss = await cache.check("How do I bake sourdough bread?")
    assert not miss.is_hit
    assert miss.matches == []


async def test_matches_are_closest_first_clamped_and_at_most_k(cache: SemanticCache) -> None:
    prompts = [f"How do I learn the programming language number {name}?" for name in "ABCDEFG"]
    for prompt in prompts:
        await cache.store(prompt, "Practice.")
    result = await cache.check("How do I learn a programming language?", threshold=2.0, k=5)
    distances = [m.distance for m in result.matches]
    assert len(distances) <= 5
    assert distances == sorted(distances)
    assert all(0.0 <= d <= 2.0 for d in distances)
    assert all(abs(m.similarity - (1.0 - m.distance)) < 1e-9 for m in result.matches)


async def test_exact_repeat_skips_the_embedder(cache: SemanticCache) -> None:
    await cache.store("How many days are in a leap year?", "366.")
    calls: list[int] = []
    original = cache.embedder.embed

    async def counting(texts):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return await original(texts)

    cache.embedder.embed = counting  # type: ignore[method-assign]
    try:
        result = await cache.check("  how many DAYS are in a leap   year? ")
    finally:
        del cache.embedder.embed
    assert result.is_hit and result.exact
    assert result.matches[0].distance == 0.0
    assert calls == []


async def test_threshold_zero_is_honoured_not_treated_as_unset(cache: SemanticCache) -> None:
    await cache.store("What is Redis?", "An in-memory data store.")
    strict = await cache.check("What is Redis exactly?", threshold=0.0)
    assert not strict.is_hit
    loose = await cache.check("What is Redis exactly?", threshold=0.5)
    assert loose.is_hit


async def test_storing_the_same_prompt_updates_instead_of_duplicating(cache: SemanticCache) -> None:
    first = await cache.store("Define HNSW", "old answer")
    second = await cache.store("define   hnsw", "new answer")
    assert first.key == second.key == entry_key("default", "Define HNSW")
    stats = await cache.stats()
    assert stats.entries == 1
    result = await cache.check("Define HNSW")
    assert result.matches[0].entry.response == "new answer"


async def test_scopes_never_match_each_other(cache: SemanticCache) -> None:
    await cache.store("What is our refund policy?", "30 days.", scope="tenant-a")
    other = await cache.check("What is our refund policy?", scope="tenant-b", threshold=2.0)
    assert not other.is_hit and other.matches == []
    same = await cache.check("What is our refund policy?", scope="tenant-a")
    assert same.is_hit
    assert (await cache.check("Can you explain our refund policy?", scope="tenant-a", threshold=0.3)).is_hit


async def test_per_entry_ttl_expires_and_is_never_served(cache: SemanticCache) -> None:
    await cache.store("What is the tallest mountain?", "Everest.")
    await cache.store("What time is it in Tokyo?", "It depends.", ttl=2)
    assert (await cache.check("What time is it in Tokyo?")).is_hit
    await asyncio.sleep(2.5)
    assert not (await cache.check("What time is it in Tokyo?")).is_hit
    assert not (await cache.check("What time is it in Tokyo right now?", threshold=0.5)).is_hit
    await cache.purge_expired()
    page = await cache.list_entries()
    assert [e.prompt for e in page.entries] == ["What is the tallest mountain?"]


async def test_default_ttl_applies_and_zero_keeps_forever(cache: SemanticCache) -> None:
    before = time.time()
    entry = await cache.store("What is a semantic cache?", "A cache keyed by meaning.")
    assert entry.expires_at is not None
    assert entry.expires_at == pytest.approx(before + cache.policy.ttl, abs=5)
    forever = await cache.store("What is a vector?", "A list of numbers.", ttl=0)
    assert forever.expires_at is None


async def test_a_hit_does_not_extend_life_unless_configured(cache: SemanticCache) -> None:
    entry = await cache.store("How tall is the Eiffel Tower?", "330 m.", ttl=100)
    await cache.check("How tall is the Eiffel Tower?")
    stored = await cache.get(entry.key)
    assert stored is not None and stored.expires_at == pytest.approx(entry.expires_at, abs=0.01)
    assert stored.hit_count == 1

    cache.policy.extend_ttl_on_hit = True
    await cache.check("How tall is the Eiffel Tower?")
    extended = await cache.get(entry.key)
    assert extended is not None and extended.expires_at is not None
    assert extended.expires_at > entry.expires_at + 1000  # moved to now + the default TTL


async def test_empty_prompts_and_responses_are_rejected(cache: SemanticCache) -> None:
    for bad in ("", "   ", "\n\t"):
        with pytest.raises(InvalidInputError, match="prompt is empty"):
            await cache.check(bad)
        with pytest.raises(InvalidInputError, match="prompt is empty"):
            await cache.store(bad, "answer")
        with pytest.raises(InvalidInputError, match="response is empty"):
            await cache.store("a question", bad)
    assert (await cache.stats()).entries == 0


async def test_scopes_differing_only_in_letter_case_never_share_answers(cache: SemanticCache) -> None:
    await cache.store("What is our refund policy?", "TenantA: 30 days.", scope="TenantA")
    for other in ("tenanta", "TENANTA", "tenantA"):
        result = await cache.check("What is our refund policy?", scope=other, threshold=2.0)
        assert not result.is_hit and result.matches == []
        assert await cache.nearest("What is our refund policy?", scope=other) == []
        assert (await cache.list_entries(scope=other)).total == 0
    assert (await cache.check("What is our refund policy?", scope="TenantA")).is_hit


async def test_bad_threshold_scope_and_k_are_rejected(cache: SemanticCache) -> None:
    with pytest.raises(InvalidInputError, match="threshold"):
        await cache.check("hello", threshold=2.5)
    with pytest.raises(InvalidInputError, match="scope"):
        await cache.check("hello", scope="has spaces")
    with pytest.raises(InvalidInputError, match="k=0"):
        await cache.check("hello", k=0)


async def test_batch_is_all_or_nothing(cache: SemanticCache) -> None:
    with pytest.raises(InvalidInputError):
        await cache.store_many([StoreRequest("fine prompt", "fine answer"), StoreRequest("", "x")])
    assert (await cache.stats()).entries == 0
    stored = await cache.store_many([StoreRequest(f"question {i}?", f"answer {i}") for i in range(10)])
    assert len(stored) == 10
    assert (await cache.stats()).entries == 10


async def test_delete_clear_and_the_cache_stays_usable(cache: SemanticCache) -> None:
    entries = [await cache.store(f"What is fact number {i}?", f"Fact {i}.") for i in range(3)]
    assert await cache.delete(entries[0].key)
    assert not await cache.delete(entries[0].key)
    assert await cache.clear() == 2
    assert (await cache.stats()).entries == 0
    await cache.store("What is fact number one?", "One.")
    assert (await cache.check("What is fact number one?")).is_hit


async def test_stats_count_hits_misses_and_latency(cache: SemanticCache) -> None:
    await cache.store("What is the boiling point of water?", "100 C.")
    await cache.check("What is the boiling point of water?")
    await cache.check("What's the boiling point of water?", threshold=0.5)
    await cache.check("Who wrote Hamlet?")
    stats = await cache.stats()
    assert (stats.hits, stats.misses) == (2, 1)
    assert stats.hit_rate == pytest.approx(2 / 3)
    assert stats.latency_p50_ms is not None and stats.latency_p95_ms is not None
    assert 0 < stats.latency_p50_ms <= stats.latency_p95_ms


async def test_listing_is_paged(cache: SemanticCache) -> None:
    await cache.store_many([StoreRequest(f"paged question {i}?", "a") for i in range(7)])
    first = await cache.list_entries(offset=0, limit=5)
    second = await cache.list_entries(offset=5, limit=5)
    assert first.total == second.total == 7
    assert len(first.entries) == 5 and len(second.entries) == 2
    keys = {e.key for e in first.entries} | {e.key for e in second.entries}
    assert len(keys) == 7
    only = await cache.list_entries(contains="question 3")
    assert [e.prompt for e in only.entries] == ["paged question 3?"]


async def test_verification_rejects_a_close_candidate_with_different_numbers(cache: SemanticCache) -> None:
    await cache.store("Convert 5 km to miles", "3.1 miles.")
    result = await cache.check("Convert 50 km to miles", threshold=0.5)
    assert not result.is_hit
    assert [reason for _, reason in result.rejected] == ["numbers differ: 50 vs 5"]
    cache.policy.verify_candidates = False
    assert (await cache.check("Convert 50 km to miles", threshold=0.5)).is_hit


async def test_metadata_round_trips(cache: SemanticCache) -> None:
    metadata = {"model": "gpt-x", "tokens": 42, "tags": ["a", "b"], "nested": {"ok": True}}
    await cache.store("What is metadata?", "Data about data.", metadata=metadata)
    result = await cache.check("What is metadata?")
    assert result.matches[0].entry.metadata == metadata


async def test_another_embedder_identity_is_refused_with_both_named(make_store, embedder) -> None:  # type: ignore[no-untyped-def]
    first = SemanticCache(make_store(), embedder, CachePolicy())
    await first.start()
    await first.store("What is a cache?", "A store of answers.")
    await first.close()

    other = make_store()
    opened = await other.open()
    assert opened == EmbedderIdentity("sentence-transformers", "all-MiniLM-L6-v2", 384)
    with pytest.raises(IndexMismatchError) as info:
        await other.bind(EmbedderIdentity("sentence-transformers", "all-MiniLM-L6-v2", 256))
    message = str(info.value)
    assert "384" in message and "256" in message and "semcache-tui migrate" in message
    # Nothing was dropped or mixed: the entry is still there for the right embedder.
    assert await other.count() == 1


async def test_drop_removes_the_index_and_its_entries(make_store, embedder) -> None:  # type: ignore[no-untyped-def]
    first = SemanticCache(make_store(), embedder, CachePolicy())
    await first.start()
    await first.store_many([StoreRequest(f"retired question {i}?", "a") for i in range(4)])
    assert await first.vector_store.drop() == 4
    reopened = make_store()
    assert await reopened.open() is None  # nothing recorded: the index is gone, not merely empty
    await reopened.bind(EmbedderIdentity("sentence-transformers", "all-MiniLM-L6-v2", 256))
    assert await reopened.count() == 0


def _restorable(n: int, dimension: int, hit_count: int = 0) -> tuple[list[CacheEntry], list[np.ndarray]]:
    """``n`` entries as a backup would carry them, with random unit vectors (no embedding needed)."""
    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = time.time()
    entries = [
        CacheEntry(
            key="",
            scope="walk" if i % 3 else "default",
            prompt=f"walked prompt number {i}?",
            response=f"answer {i}",
            created_at=now - i,
            hit_count=hit_count,
        )
        for i in range(n)
    ]
    return entries, list(vectors)


async def test_iter_entries_yields_every_entry_once_in_batches(make_store, embedder) -> None:  # type: ignore[no-untyped-def]
    cache = SemanticCache(make_store(), embedder, CachePolicy())
    try:
        identity = await cache.start()
        entries, vectors = _restorable(61, identity.dimension)
        assert (await cache.restore_entries(entries, vectors)).written == 61
        batches = [batch async for batch in cache.iter_entries(7)]
        prompts = [e.prompt for batch in batches for e in batch]
        assert len(prompts) == len(set(prompts)) == 61
        assert set(prompts) == {e.prompt for e in entries}
        assert all(1 <= len(batch) <= 7 for batch in batches)
        walk = [e async for batch in cache.iter_entries(10, scope="walk") for e in batch]
        assert {e.scope for e in walk} == {"walk"} and len(walk) == 40
        with pytest.raises(InvalidInputError, match="batch=1"):
            await anext(cache.iter_entries(1))
    finally:
        await cache.close()


async def test_a_restore_keeps_hit_counts_and_storing_again_starts_them_over(make_store, embedder) -> None:  # type: ignore[no-untyped-def]
    cache = SemanticCache(make_store(), embedder, CachePolicy())
    try:
        identity = await cache.start()
        entries, vectors = _restorable(3, identity.dimension, hit_count=4)
        await cache.restore_entries(entries, vectors)
        key = entry_key("default", entries[0].prompt)
        restored = await cache.get(key)
        assert restored is not None and restored.hit_count == 4
        walked = {e.key: e async for batch in cache.iter_entries(10) for e in batch}
        assert {e.hit_count for e in walked.values()} == {4}
        await cache.store(entries[0].prompt, "a new answer")
        stored = await cache.get(key)
        assert stored is not None and stored.hit_count == 0 and stored.response == "a new answer"
        assert (await cache.check(entries[0].prompt)).exact
        assert (await cache.get(key)).hit_count == 1  # type: ignore[union-attr]
    finally:
        await cache.close()


async def test_an_empty_scope_is_refused_everywhere_and_no_scope_is_the_default(cache: SemanticCache) -> None:
    """One rule for every operation: ``None`` is the default scope, ``""`` is refused with the same 422."""
    refusals = []
    for attempt in (
        cache.store("What is HNSW?", "A graph index.", scope=""),
        cache.store_many([StoreRequest("What is HNSW?", "A graph index.", "")]),
        cache.check("What is HNSW?", scope=""),
        cache.nearest("What is HNSW?", scope=""),
    ):
        with pytest.raises(InvalidInputError) as refused:
            await attempt
        refusals.append((refused.value.status, str(refused.value)))
    assert (
        refusals == [(422, "scope '' is not allowed (use 1-128 letters, digits, '_', '-', '.' or ':')")] * 4
    )
    assert (await cache.stats()).entries == 0
    entry = await cache.store("What is HNSW?", "A graph index.")
    assert entry.scope == "default" and (await cache.check("What is HNSW?", scope="default")).is_hit
