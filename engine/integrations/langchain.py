"""semcache as LangChain's LLM cache: ``set_llm_cache(SemcacheCache.connect("http://cache:8000"))``.

Needs the ``langchain`` extra (``pip install semcache-tui[langchain]``: langchain-core). Works with any
``CacheService``: a running server (``connect``, through ``RemoteCache``) or a cache in this process
(``in_process``).

What is matched: a plain LLM's prompt; for a chat model (whose prompt LangChain serializes as the JSON of
its messages), the text of the last human message. Everything else that changes the answer is the scope:
the LLM's parameters (``llm_string``: model, temperature, stop...) and, for a chat model, every earlier
message. The scope is ``lc:`` and 32 hex digits of SHA-256 over them. The entry's response is the first
generation's text (what the panel shows); the generations travel in ``metadata.lc_generations`` as plain
data (text, generation info, and a chat generation's message as ``message_to_dict`` writes it), never as
LangChain's serialized objects: reviving those instantiates classes named by the entry, and anyone who
can write to the cache could name one.

A lookup or store the cache refuses (a prompt past SEMCACHE_MAX_PROMPT_CHARS, metadata past the limits)
or cannot do (the server down) is logged and skipped: the LLM answers as if there were no cache.

The cache's service lives on one event loop in a thread of its own, so the sync (``lookup``) and async
(``alookup``) faces share one client and neither blocks a caller's loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

from engine.config import Settings
from engine.errors import SemcacheError
from engine.service import CacheService

log = logging.getLogger("semcache.langchain")

T = TypeVar("T")

SCOPE_PREFIX = "lc:"
_PAGE = 500


def lookup_key(prompt: str, llm_string: str) -> tuple[str, str]:
    """``(scope, matched text)`` for LangChain's ``(prompt, llm_string)``."""
    matched, context = prompt, ""
    last = _last_human_text(prompt)
    if last is not None:
        matched, context = last
    digest = hashlib.sha256(json.dumps([llm_string, context]).encode()).hexdigest()[:32]
    return SCOPE_PREFIX + digest, matched


def _last_human_text(prompt: str) -> tuple[str, str] | None:
    """For a chat model's serialized messages: the last human message's text, and the earlier messages."""
    if not prompt.startswith("["):
        return None
    try:
        messages = json.loads(prompt)
    except ValueError:
        return None
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return None
    last = messages[-1]
    kwargs = last.get("kwargs") or {}
    if last.get("id", [])[-1:] != ["HumanMessage"] or not isinstance(kwargs.get("content"), str):
        return None
    rest = {k: v for k, v in kwargs.items() if k not in ("content", "id")}
    return kwargs["content"], json.dumps([messages[:-1], rest], sort_keys=True)


class SemcacheCache(BaseCache):
    def __init__(
        self, service: CacheService, *, threshold: float | None = None, close_service: bool = True
    ) -> None:
        self.service = service
        self.threshold = threshold
        self._close_service = close_service
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="semcache-langchain", daemon=True)
        self._thread.start()

    @classmethod
    def connect(
        cls, url: str, api_key: str | None = None, *, threshold: float | None = None
    ) -> SemcacheCache:
        """A cache backed by a running ``semcache-tui --serve`` at ``url``."""
        from engine.client import RemoteCache

        return cls(RemoteCache(url, api_key=api_key), threshold=threshold)

    @classmethod
    def in_process(cls, settings: Settings | None = None, *, threshold: float | None = None) -> SemcacheCache:
        """A cache opened in this process (the embedded store or Redis, as ``settings`` say)."""
        from engine.assembly import build_cache

        return cls(build_cache(settings or Settings.load()), threshold=threshold)

    # -- LangChain's interface ---------------------------------------------------------------------------

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self._run(self._lookup(prompt, llm_string)).result()

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        self._run(self._update(prompt, llm_string, return_val)).result()

    def clear(self, **kwargs: Any) -> None:
        """Delete the entries LangChain stored (scopes ``lc:*``); other entries stay."""
        self._run(self._clear()).result()

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await asyncio.wrap_future(self._run(self._lookup(prompt, llm_string)))

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await asyncio.wrap_future(self._run(self._update(prompt, llm_string, return_val)))

    async def aclear(self, **kwargs: Any) -> None:
        await asyncio.wrap_future(self._run(self._clear()))

    def close(self) -> None:
        """Close the service (when this cache made it) and stop the cache's thread."""
        if self._loop.is_closed():
            return
        if self._close_service:
            self._run(self.service.close()).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- on the cache's loop -----------------------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    async def _lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        scope, matched = lookup_key(prompt, llm_string)
        try:
            result = await self.service.check(matched, scope=scope, threshold=self.threshold)
        except SemcacheError as exc:  # a prompt past the limits, the cache down: the LLM answers instead
            log.warning("semcache lookup skipped: %s", exc)
            return None
        best = result.best if result.is_hit else None
        if best is None:
            return None
        stored = best.entry.metadata.get("lc_generations")
        try:
            return [_generation(item) for item in stored] if isinstance(stored, list) and stored else None
        except (KeyError, TypeError, ValueError):
            return [Generation(text=best.entry.response)]

    async def _update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        if not return_val or not return_val[0].text.strip():
            return  # nothing worth serving again (a tool-call-only answer has no text)
        scope, matched = lookup_key(prompt, llm_string)
        metadata = {"lc_generations": [_plain(generation) for generation in return_val]}
        try:
            await self.service.store(matched, return_val[0].text, scope=scope, metadata=metadata)
        except SemcacheError as exc:  # the caller has its answer; a failed store only costs a later hit
            log.warning("semcache store skipped: %s", exc)

    async def _clear(self) -> None:
        keys: list[str] = []
        offset = 0
        while True:
            page = await self.service.list_entries(offset=offset, limit=_PAGE)
            keys += [entry.key for entry in page.entries if entry.scope.startswith(SCOPE_PREFIX)]
            offset += len(page.entries)
            if not page.entries or offset >= page.total:
                break
        for key in keys:
            await self.service.delete(key)


def _plain(generation: Generation) -> dict[str, Any]:
    plain: dict[str, Any] = {"text": generation.text, "info": generation.generation_info}
    if isinstance(generation, ChatGeneration):
        plain["message"] = message_to_dict(generation.message)
    return plain


def _generation(plain: dict[str, Any]) -> Generation:
    if plain.get("message") is not None:
        message = messages_from_dict([plain["message"]])[0]
        return ChatGeneration(message=message, generation_info=plain.get("info"))
    return Generation(text=str(plain["text"]), generation_info=plain.get("info"))
