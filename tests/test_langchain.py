"""semcache as LangChain's LLM cache, with langchain-core's own fake LLM and chat model, sync and async,
in process and against a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from engine.cache import CachePolicy, SemanticCache
from engine.integrations.langchain import SemcacheCache, lookup_key
from engine.keys import valid_scope
from tests.conftest import SharedEmbedder
from tests.support.server_process import ServerProcess


@pytest.fixture
def lc_cache(tmp_path: Path, embedder: SharedEmbedder) -> Iterator[SemcacheCache]:
    from engine.stores.local import LocalStore

    cache = SemcacheCache(
        SemanticCache(LocalStore(tmp_path / "data", name="lc"), embedder, CachePolicy(threshold=0.3))
    )
    yield cache
    cache.close()


def test_a_plain_llm_is_served_from_the_cache_sync(lc_cache: SemcacheCache) -> None:
    llm = FakeListLLM(responses=["Paris.", "a second answer"], cache=lc_cache)
    assert llm.invoke("What is the capital of France?") == "Paris."
    assert llm.invoke("What is the capital of France?") == "Paris."
    assert llm.invoke("what's the capital of France") == "Paris."  # a paraphrase
    assert llm.invoke("How do I bake sourdough bread?") == "a second answer"
    other = FakeListLLM(responses=["from another LLM"], cache=lc_cache)  # other parameters: another scope
    assert other.invoke("What is the capital of France?") == "from another LLM"


async def test_a_chat_model_matches_the_last_human_message_within_its_conversation_async(
    lc_cache: SemcacheCache,
) -> None:
    chat = FakeListChatModel(responses=["Eight.", "Arr, eight!", "Six.", "unused"], cache=lc_cache)
    brief = [SystemMessage("Answer briefly."), HumanMessage("How many legs does a spider have?")]
    first = await chat.ainvoke(brief)
    assert isinstance(first, AIMessage) and first.content == "Eight."
    pirate = [SystemMessage("Answer like a pirate."), HumanMessage("How many legs does a spider have?")]
    assert (await chat.ainvoke(pirate)).content == "Arr, eight!"
    paraphrase = [SystemMessage("Answer briefly."), HumanMessage("how many legs do spiders have")]
    assert (await chat.ainvoke(paraphrase)).content == "Eight."
    assert (await chat.ainvoke(pirate)).content == "Arr, eight!"
    other = [SystemMessage("Answer briefly."), HumanMessage("What is the capital of Japan?")]
    assert (await chat.ainvoke(other)).content == "Six."


def test_what_the_cache_refuses_never_fails_the_llm_call(lc_cache: SemcacheCache) -> None:
    huge = "word " * 10_000  # past SEMCACHE_MAX_PROMPT_CHARS
    llm = FakeListLLM(responses=["first", "second"], cache=lc_cache)
    assert llm.invoke(huge) == "first" and llm.invoke(huge) == "second"


def test_scopes_and_clear(lc_cache: SemcacheCache) -> None:
    scope, matched = lookup_key("Hello", "[('_type', 'fake')]")
    assert matched == "Hello" and valid_scope(scope) and scope.startswith("lc:")
    assert lookup_key("Hello", "[('_type', 'other')]")[0] != scope

    llm = FakeListLLM(responses=["one", "two"], cache=lc_cache)
    llm.invoke("Remember this please")
    service = lc_cache.service
    lc_cache._run(service.store("an entry of someone else", "kept", scope="tenant-a")).result()
    lc_cache.clear()
    remaining = lc_cache._run(service.list_entries()).result()
    assert [e.scope for e in remaining.entries] == ["tenant-a"]
    assert llm.invoke("Remember this please") == "two"


@pytest.mark.slow
async def test_against_a_running_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "server", {"SEMCACHE_API_KEY": "lc-test-key"}).start()
    try:
        server.wait_ready()
        cache = SemcacheCache.connect(server.url, api_key="lc-test-key", threshold=0.3)
        try:
            llm = FakeListLLM(responses=["Shakespeare.", "unused"], cache=cache)
            assert await llm.ainvoke("Who wrote Hamlet?") == "Shakespeare."
            assert llm.invoke("Who was the author of Hamlet?") == "Shakespeare."
            chat = FakeListChatModel(responses=["Blue.", "unused"], cache=cache)
            assert chat.invoke("What colour is the sky?").content == "Blue."
            assert (await chat.ainvoke("What colour is the sky?")).content == "Blue."
        finally:
            cache.close()
    finally:
        server.stop()
