"""Hardening (issue 11), in process over both stores: what a hostile or careless client sends is refused at
the door with a 422 that names the rule, and nothing it sent before the rules can fail a reader.

Metadata depth and size (defect 2), TTL and timestamp ranges (3), paging (5), lone surrogates (6), the
published contract (12). The same over real server processes is in test_hardening_process.py.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.backup import export_entries, import_entries
from engine.cache import MAX_TTL, CachePolicy, SemanticCache, StoreRequest
from engine.errors import InvalidInputError
from engine.keys import entry_key
from engine.models import MAX_METADATA_BYTES, MAX_METADATA_DEPTH, CacheEntry
from engine.server import create_app
from tests.conftest import SharedEmbedder
from tests.test_server import serving, settings


def nested(depth: int) -> dict[str, Any]:
    """A metadata object ``depth`` levels deep (``{}`` is one level)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.fixture
async def both(make_store, embedder: SharedEmbedder) -> AsyncIterator[SemanticCache]:  # type: ignore[no-untyped-def]
    """A started cache on each store kind (the model is one: these rules are the cache's, not the model's)."""
    cache = SemanticCache(make_store(), embedder, CachePolicy())
    await cache.start()
    yield cache
    await cache.close()


@pytest.fixture
async def http(both: SemanticCache, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings(tmp_path), both)) as client:
        yield client


async def total(http: httpx.AsyncClient) -> int:
    return int((await http.get("/cache/stats")).json()["total_entries"])


async def post_raw(http: httpx.AsyncClient, path: str, body: str | bytes) -> httpx.Response:
    """JSON as written (httpx would refuse to encode NaN, a lone surrogate or 10**400 itself)."""
    content = body.encode() if isinstance(body, str) else body
    return await http.post(path, content=content, headers={"content-type": "application/json"})


def refused(response: httpx.Response, needle: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_input" and needle in body["message"], body


# -- 2: metadata -----------------------------------------------------------------------------------------


async def test_deep_or_big_metadata_is_refused_at_the_door(http: httpx.AsyncClient) -> None:
    deep = {"prompt": "What is deep?", "response": "This.", "metadata": nested(300)}
    big = {"prompt": "What is big?", "response": "This.", "metadata": {"x": "y" * MAX_METADATA_BYTES}}
    refused(await http.post("/cache/store", json=deep), f"limit of {MAX_METADATA_DEPTH} levels")
    refused(await http.post("/cache/store", json=big), f"limit of {MAX_METADATA_BYTES}")
    ok = {"prompt": "What is fine?", "response": "This.", "metadata": nested(MAX_METADATA_DEPTH)}
    refused(await http.post("/cache/store/batch", json={"items": [ok, deep]}), "levels")
    assert await total(http) == 0  # all or nothing
    assert (await http.post("/cache/store", json=ok)).status_code == 200
    nan = b'{"prompt": "What is NaN?", "response": "No number.", "metadata": {"x": NaN}}'
    refused(await post_raw(http, "/cache/store", nan), "not valid JSON")


async def test_reads_survive_metadata_written_before_the_limits(
    both: SemanticCache, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    prompt = "What did the old tool write?"
    entry = CacheEntry(entry_key("default", prompt), "default", prompt, "Deep metadata.", nested(300))
    entry.created_at = time.time()
    vector = (await both.embedder.embed([prompt]))[0]
    await both.vector_store.upsert([(entry, vector)])  # behind the door, as an older version or tool would

    answers = [
        await http.post("/cache/check", json={"prompt": prompt}),
        await http.post("/cache/check", json={"prompt": "What did the old tool write down?", "threshold": 2}),
        await http.post("/cache/search", json={"prompt": prompt}),
        await http.get("/cache/entries"),
        await http.get(f"/cache/entries/{entry.key}"),
    ]
    assert [a.status_code for a in answers] == [200] * 5, [a.text[:300] for a in answers]
    assert answers[0].json()["is_hit"] is True
    listed = answers[3].json()["entries"][0]["metadata"]
    assert set(listed) == {"_semcache_unreadable"} and "levels" in listed["_semcache_unreadable"]
    assert answers[4].json()["metadata"] == listed
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


# -- 3: TTL and timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", ["1e16", pytest.param("1" + "0" * 400, id="10**400"), "1.5", "-1", "true"])
async def test_a_ttl_out_of_range_is_refused_naming_the_range(http: httpx.AsyncClient, ttl: str) -> None:
    body = '{"prompt": "How long?", "response": "Forever.", "ttl": ' + ttl + "}"
    refused(await post_raw(http, "/cache/store", body), "ttl")
    items = [{"prompt": f"Question {i}?", "response": "Answer."} for i in range(2)]
    batch = '{"items": [' + ", ".join([*(json.dumps(item) for item in items), body]) + "]}"
    answer = await post_raw(http, "/cache/store/batch", batch)
    refused(answer, "ttl")
    if ttl != "true":  # a boolean is refused by type, before the range is checked
        assert str(MAX_TTL) in answer.json()["message"]
    assert await total(http) == 0


async def test_the_ttl_range_ends_are_accepted(http: httpx.AsyncClient) -> None:
    for ttl in (0, 1, MAX_TTL, 3600.0):
        answer = await http.post(
            "/cache/store", json={"prompt": f"ttl {ttl}?", "response": "Yes.", "ttl": ttl}
        )
        assert answer.status_code == 200, answer.text
    assert await total(http) == 4


async def test_a_backup_with_a_time_out_of_range_is_refused_before_writing(
    both: SemanticCache, tmp_path: Path
) -> None:
    await both.store_many([StoreRequest(f"What is {n} squared?", f"{n * n}.") for n in range(5)])
    good = await export_entries(both, tmp_path / "good.jsonl.gz", include_vectors=False)
    await both.clear()
    with gzip.open(good.path, "rt", encoding="utf-8") as handle:
        header, *entries = [json.loads(line) for line in handle if line.strip()]
    for name, value in (("expires_at", 1e300), ("created_at", -1.0), ("created_at", 1e300)):
        damaged = tmp_path / f"{name}.jsonl.gz"
        with gzip.open(damaged, "wt", encoding="utf-8") as handle:
            for item in (header, *entries[:-1], entries[-1] | {name: value}):
                handle.write(json.dumps(item) + "\n")
        with pytest.raises(InvalidInputError, match=f"{name} .* out of range"):
            await import_entries(both, damaged)
        assert await both.vector_store.count() == 0
    stringly = tmp_path / "stringly.jsonl.gz"
    with gzip.open(stringly, "wt", encoding="utf-8") as handle:
        for item in (header | {"version": "1"}, *entries):
            handle.write(json.dumps(item) + "\n")
    with pytest.raises(
        InvalidInputError, match=r"has version '1' in its header; .* reads version 1, a number"
    ):
        await import_entries(both, stringly)
    deep = tmp_path / "deep.jsonl.gz"
    with gzip.open(deep, "wt", encoding="utf-8") as handle:
        for item in (header, *entries[:-1], entries[-1] | {"metadata": nested(300)}):
            handle.write(json.dumps(item) + "\n")
    with pytest.raises(InvalidInputError, match="levels"):
        await import_entries(both, deep)
    assert await both.vector_store.count() == 0


# -- 5: paging -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("offset=1000001", "offset"),
        ("offset=999999&limit=2", "deepest page"),
        ("offset=9223372036854775807", "offset"),
        ("offset=9223372036854775808", "offset"),
        ("offset=-1", "offset"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("scope=", "scope '' is not allowed"),
        ("scope=no%20spaces", "scope 'no spaces' is not allowed"),
    ],
)
async def test_paging_is_validated_at_the_door(http: httpx.AsyncClient, query: str, needle: str) -> None:
    refused(await http.get(f"/cache/entries?{query}"), needle)


async def test_the_deepest_page_answers(http: httpx.AsyncClient) -> None:
    await http.post("/cache/store", json={"prompt": "Only one?", "response": "Yes.", "scope": "TenantA"})
    deepest = await http.get("/cache/entries?offset=999000&limit=1000")
    assert deepest.status_code == 200 and deepest.json()["entries"] == []
    listed = (await http.get("/cache/entries?scope=TenantA&contains=only")).json()
    assert [e["prompt"] for e in listed["entries"]] == ["Only one?"]


# -- 6: lone surrogates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/cache/store", '{"prompt": "a\\ud800b", "response": "r"}'),
        ("/cache/store", '{"prompt": "p", "response": "a\\udfffb"}'),
        ("/cache/store", '{"prompt": "p", "response": "r", "metadata": {"k": "a\\ud800"}}'),
        ("/cache/store", '{"prompt": "p", "response": "r", "metadata": {"\\ud800": 1}}'),
        (
            "/cache/store/batch",
            '{"items": [{"prompt": "ok", "response": "r"}, {"prompt": "\\ud800", "response": "r"}]}',
        ),
        ("/cache/check", '{"prompt": "a\\ud800b"}'),
        ("/cache/search", '{"prompt": "a\\ud800b"}'),
    ],
)
async def test_a_lone_surrogate_is_refused(http: httpx.AsyncClient, path: str, body: str) -> None:
    answer = await post_raw(http, path, body)
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_input", answer.text
    assert "surrogate" in answer.json()["message"] or "not valid JSON" in answer.json()["message"]
    assert await total(http) == 0
