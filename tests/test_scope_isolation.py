"""Property: no scope ever sees another scope's entries, on both stores.

Scopes are drawn to be hard on the Redis store's TAG queries: case variants of one name, the characters
RediSearch treats as syntax, unicode, and the punctuation scopes allow ('.', ':', '-', '_'). Scopes the
cache refuses are refused the same way whatever the store; every accepted one sees exactly its own entry
through search (k nearest and within a distance), listing and walking.
"""

from __future__ import annotations

import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cache import SemanticCache
from engine.errors import InvalidInputError
from engine.keys import entry_key, valid_scope
from engine.models import CacheEntry, EmbedderIdentity

DIM = 8
IDENTITY = EmbedderIdentity("test", "synthetic", DIM)
VECTOR = np.eye(DIM, dtype=np.float32)[0]

_ALLOWED = "abcXYZ019_.:-"
_REDISEARCH_SYNTAX = "{}|@*()!~\"' $%^&[];,<>=/\\\t"
_UNICODE = "éßİıΣσﬁ漢🙂"


def _case_variants(base: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(base), max_size=len(base)).map(
        lambda flips: "".join(c.upper() if f else c.lower() for c, f in zip(base, flips, strict=True))
    )


scope_text = st.one_of(
    st.text(alphabet=_ALLOWED, min_size=1, max_size=12),
    st.text(alphabet=_ALLOWED + _REDISEARCH_SYNTAX + _UNICODE, min_size=0, max_size=12),
    st.sampled_from(["TenantA", "tenant-a", "a.b:c", "default", "DEFAULT"]).flatmap(_case_variants),
)


def _entry(scope: str) -> CacheEntry:
    prompt = "What is our refund policy?"
    return CacheEntry(entry_key(scope, prompt), scope, prompt, f"answer for {scope}", {}, time.time())


@settings(
    max_examples=40,
    deadline=None,  # real stores on a shared machine: time is not the property
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(scopes=st.lists(scope_text, min_size=2, max_size=6, unique=True))
async def test_no_scope_sees_another_scopes_entries(make_store, scopes: list[str]) -> None:  # type: ignore[no-untyped-def]
    store = make_store()
    await store.open()
    await store.bind(IDENTITY)
    await store.clear()
    accepted = []
    for scope in scopes:
        if valid_scope(scope):
            accepted.append(scope)
        else:
            try:
                SemanticCache._scope(scope)
            except InvalidInputError:
                continue
            raise AssertionError(f"scope {scope!r} is neither valid nor refused")
    entries = {scope: _entry(scope) for scope in accepted}
    await store.upsert([(entry, VECTOR) for entry in entries.values()])
    for scope, own in entries.items():
        nearest = await store.search(VECTOR, scope=scope, k=10)
        within = await store.search(VECTOR, scope=scope, k=10, max_distance=2.0)
        page = await store.list_entries(scope=scope, limit=100)
        walked = [e async for batch in store.iter_entries(batch=100, scope=scope) for e in batch]
        assert [m.entry.key for m in nearest] == [own.key], scope
        assert [m.entry.key for m in within] == [own.key], scope
        assert [e.key for e in page.entries] == [own.key] and page.total == 1, scope
        assert [e.key for e in walked] == [own.key], scope
