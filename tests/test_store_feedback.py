"""What the verifier and the feedback endpoint need from a store, proved the same on both stores (the real
Redis Stack and the embedded store on a real folder): vectors with search results, feedback per entry and
query shared by every replica, and batches written whole or not at all.

Vectors are small synthetic ones with known cosine distances, so each rule is checked exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pytest

from engine.errors import InvalidInputError, NotFoundError
from engine.keys import entry_key
from engine.models import CacheEntry, EmbedderIdentity, EntryFeedback
from engine.stores.base import MAX_EXPIRES_AT, VectorStore

DIM = 8
IDENTITY = EmbedderIdentity("test", "synthetic", DIM)
MakeStore = Callable[..., VectorStore]


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def entry(
    prompt: str, *, expires_at: float | None = None, hit_count: int = 0, scope: str = "default"
) -> CacheEntry:
    return CacheEntry(
        key=entry_key(scope, prompt),
        scope=scope,
        prompt=prompt,
        response=f"answer to {prompt}",
        created_at=time.time(),
        expires_at=expires_at,
        hit_count=hit_count,
    )


async def bound(make_store: MakeStore) -> VectorStore:
    store = make_store()
    await store.open()
    await store.bind(IDENTITY)
    return store


# -- vectors with search results -------------------------------------------------------------------------


async def test_search_with_vectors_returns_the_stored_unit_vectors(make_store: MakeStore) -> None:
    store = await bound(make_store)
    near, far = entry("near"), entry("far")
    # Not unit length on purpose: every store keeps (and hands back) the normalized vector.
    await store.upsert([(near, 3 * unit(1, 0.1)), (far, unit(1, 1))])
    stored = await store.get_vectors([near.key, far.key])
    for max_distance in (None, 0.5):
        matches = await store.search(
            unit(1), scope="default", k=5, max_distance=max_distance, with_vectors=True
        )
        assert [m.entry.key for m in matches] == [near.key, far.key]
        for match in matches:
            assert match.vector is not None and match.vector.dtype == np.float32
            np.testing.assert_allclose(match.vector, unit(*match.vector[:2].tolist()), atol=1e-6)
            np.testing.assert_array_equal(match.vector, stored[match.entry.key])
        np.testing.assert_allclose(matches[0].vector, unit(1, 0.1), atol=1e-6)
        plain = await store.search(unit(1), scope="default", k=5, max_distance=max_distance)
        assert [m.distance for m in plain] == [m.distance for m in matches]
        assert all(m.vector is None for m in plain)


# -- feedback --------------------------------------------------------------------------------------------


async def test_feedback_round_trip_and_refused_queries(make_store: MakeStore) -> None:
    store = await bound(make_store)
    served, quiet = entry("served"), entry("quiet")
    await store.upsert([(served, unit(1)), (quiet, unit(0, 1))])
    assert await store.feedback([served.key, quiet.key]) == {}

    assert await store.record_feedback(served.key, "q1", False) == EntryFeedback(1, 0, frozenset({"q1"}))
    assert await store.record_feedback(served.key, "q2", False) == EntryFeedback(
        2, 0, frozenset({"q1", "q2"})
    )
    # Reported wrong again for the same query: counted, refused once.
    assert await store.record_feedback(served.key, "q2", False) == EntryFeedback(
        3, 0, frozenset({"q1", "q2"})
    )
    # Right for q1 takes it out of the refused set; right for a query never refused only counts.
    assert await store.record_feedback(served.key, "q1", True) == EntryFeedback(3, 1, frozenset({"q2"}))
    assert await store.record_feedback(served.key, "q9", True) == EntryFeedback(3, 2, frozenset({"q2"}))

    read = await store.feedback([served.key, quiet.key, "no-such-entry"])
    assert read == {served.key: EntryFeedback(3, 2, frozenset({"q2"}))}
    assert await store.feedback([]) == {}

    counters = await store.counters()
    assert (counters.feedback_wrong, counters.feedback_right) == (3, 2)
    assert (counters.hits, counters.misses) == (0, 0)


async def test_feedback_on_a_missing_or_expired_entry_is_not_found(make_store: MakeStore) -> None:
    store = await bound(make_store)
    gone = entry("gone", expires_at=time.time() - 60)
    await store.upsert([(gone, unit(1))])
    for key in (gone.key, "never-stored"):
        with pytest.raises(NotFoundError, match="no entry"):
            await store.record_feedback(key, "q", False)
    counters = await store.counters()
    assert (counters.feedback_wrong, counters.feedback_right) == (0, 0)
    assert await store.feedback([gone.key]) == {}


async def test_feedback_is_shared_by_replicas(make_store: MakeStore) -> None:
    one, two = await bound(make_store), await bound(make_store)
    shared = entry("shared")
    await one.upsert([(shared, unit(1))])
    await one.record_feedback(shared.key, "q1", False)
    await two.record_feedback(shared.key, "q2", False)
    await two.record_feedback(shared.key, "q1", True)
    expected = EntryFeedback(2, 1, frozenset({"q2"}))
    assert await one.feedback([shared.key]) == await two.feedback([shared.key]) == {shared.key: expected}
    for replica in (one, two):
        counters = await replica.counters()
        assert (counters.feedback_wrong, counters.feedback_right) == (2, 1)


async def test_feedback_goes_with_its_entry(make_store: MakeStore) -> None:
    store = await bound(make_store)
    first, second = entry("first"), entry("second")

    async def reported(*entries: CacheEntry) -> None:
        await store.upsert([(e, unit(1)) for e in entries])
        for e in entries:
            await store.record_feedback(e.key, "q", False)
        assert set(await store.feedback([e.key for e in entries])) == {e.key for e in entries}

    def restored(e: CacheEntry) -> CacheEntry:
        """The same entry written back with a carried hit count: a restore, which keeps feedback it finds."""
        return entry(e.prompt, hit_count=3)

    # A restore or a migration (carried hit count) keeps the feedback; the prompt stored again drops it.
    await reported(first)
    await store.upsert([(restored(first), unit(1))])
    assert set(await store.feedback([first.key])) == {first.key}
    await store.upsert([(entry("first"), unit(1))])
    assert await store.feedback([first.key]) == {}

    # Deleted, cleared, expired and purged: nothing comes back with an entry restored under the same key.
    await reported(first)
    assert await store.delete(first.key)
    await store.upsert([(restored(first), unit(1))])
    assert await store.feedback([first.key]) == {}

    await reported(first, second)
    assert await store.clear() == 2
    await store.upsert([(restored(first), unit(1)), (restored(second), unit(1))])
    assert await store.feedback([first.key, second.key]) == {}

    await reported(first)
    expired = entry("first", expires_at=time.time() - 1, hit_count=3)
    await store.upsert([(expired, unit(1))])
    assert await store.feedback([first.key]) == {}  # an expired entry has no feedback to show
    await store.purge_expired()
    await store.upsert([(restored(first), unit(1))])
    assert await store.feedback([first.key]) == {}

    # The totals count reports ever made, whatever became of the entries.
    assert (await store.counters()).feedback_wrong == 5


# -- all or nothing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [MAX_EXPIRES_AT + 1, 1e300, math.inf, math.nan, 0.0, -5.0])
async def test_a_batch_with_one_bad_expiry_writes_nothing(make_store: MakeStore, bad: float) -> None:
    store = await bound(make_store)
    good, wrong = entry("good"), entry("bad", expires_at=bad)
    with pytest.raises(InvalidInputError, match=f"entry {wrong.key} expires at .*253402300799"):
        await store.upsert([(good, unit(1)), (wrong, unit(0, 1))])
    assert await store.count() == 0
    assert await store.get(good.key) is None
    assert await store.search(unit(1), scope="default", k=5) == []


async def test_the_last_second_of_year_9999_is_a_valid_expiry(make_store: MakeStore) -> None:
    store = await bound(make_store)
    late = entry("late", expires_at=MAX_EXPIRES_AT)
    await store.upsert([(late, unit(1))])
    found = await store.get(late.key)
    assert found is not None and found.expires_at == MAX_EXPIRES_AT
