"""What a request to the proxy is looked up as: ``(scope, prompt)``, or the reason it is not cacheable.

Only the last user message (a chat) or the prompt (a completion) is matched semantically. Everything
else in the body is hashed into the scope, so an answer is only ever served to a request that differs
from the one that produced it in the wording of that last message:

- **in the scope**: every field of the body except those in ``_NOT_IN_SCOPE``. That is the model, the
  system and developer prompts, earlier turns (with their tool calls and results), the last message's
  role and name, tools, tool choice, response format, and every sampling or decoding parameter
  (temperature, top_p, seed, stop, max_tokens, penalties, logit_bias, reasoning effort, and any
  provider-specific one such as vLLM's ``top_k`` or ``guided_json``). Fields are hashed as sent, so an
  unknown parameter splits the scope instead of being served an answer it might have changed; the cost
  is a lower hit rate, never a wrong answer. A missing field and its default (``temperature`` absent vs
  ``1``) are different scopes, for the same reason.
- **out of the scope**: fields that change the delivery, not the answer (``stream``, ``stream_options``),
  and bookkeeping fields (``user``, ``metadata``, ``store``, ``service_tier``, ``safety_identifier``,
  ``prompt_cache_key``). ``n`` of 1 is the same as no ``n``.
- **not cacheable** (passed through, ``x-semcache: bypass``): ``n`` above 1, log probabilities asked for,
  audio output, a temperature above the operator's ceiling, a last message that is not the user's or is not
  only text, a completion whose prompt is not one string, and a prompt over the cache's length limit.

The scope is ``px:`` and 32 hex digits of SHA-256 over the canonical JSON (sorted keys, no spaces) of the
scoped fields; with an operator's tenant (header ``x-semcache-scope``) it is ``px:TENANT:DIGEST``, so
tenants never share answers and an operator can list one tenant's entries by scope prefix.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["chat", "completion"]

_NOT_IN_SCOPE = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
    }
)
#: A tenant in ``x-semcache-scope``: the cache's scope characters, short enough to leave room for the digest.
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
TENANT_RULE = "1-64 letters, digits, '_', '-' or '.'"


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cacheable request: match ``prompt`` within ``scope``."""

    kind: Kind
    scope: str
    prompt: str
    stream: bool
    include_usage: bool


@dataclass(frozen=True, slots=True)
class Uncacheable:
    reason: str


def lookup_for(
    kind: Kind,
    body: Any,
    *,
    tenant: str | None = None,
    max_temperature: float | None = None,
    max_prompt_chars: int,
) -> Lookup | Uncacheable:
    """The lookup for a request ``body`` to ``/v1/chat/completions`` (``chat``) or ``/v1/completions``."""
    if not isinstance(body, dict):
        return Uncacheable("the body is not a JSON object")
    n = body.get("n")
    if n is not None and n != 1:
        return Uncacheable("n is not 1")
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        return Uncacheable("log probabilities are asked for")
    if body.get("audio") is not None or "audio" in (body.get("modalities") or ()):
        return Uncacheable("audio output is asked for")
    temperature = body.get("temperature")
    if max_temperature is not None and isinstance(temperature, int | float) and temperature > max_temperature:
        return Uncacheable(f"temperature {temperature} is over the ceiling {max_temperature:g}")

    scoped = {k: v for k, v in body.items() if k not in _NOT_IN_SCOPE and not (k == "n" and v == 1)}
    if kind == "chat":
        found = _last_user_text(body.get("messages"))
        if isinstance(found, Uncacheable):
            return found
        prompt, last = found
        scoped["messages"] = [*body["messages"][:-1], {k: v for k, v in last.items() if k != "content"}]
    else:
        raw = body.get("prompt")
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        if not isinstance(raw, str):
            return Uncacheable("the prompt is not one string")
        prompt = raw
        scoped.pop("prompt", None)
    if not prompt.strip():
        return Uncacheable("the prompt is empty")
    if len(prompt) > max_prompt_chars:
        return Uncacheable("the prompt is over SEMCACHE_MAX_PROMPT_CHARS")

    canonical = json.dumps([kind, scoped], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    scope = f"px:{tenant}:{digest}" if tenant else f"px:{digest}"
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return Lookup(kind, scope, prompt, bool(body.get("stream")), include_usage)


def _last_user_text(messages: Any) -> tuple[str, dict[str, Any]] | Uncacheable:
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return Uncacheable("there are no messages")
    last = messages[-1]
    if last.get("role") != "user":
        return Uncacheable("the last message is not the user's")
    content = last.get("content")
    if isinstance(content, str):
        return content, last
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                return Uncacheable("the last message is not only text")
            texts.append(part["text"])
        return "\n".join(texts), last
    return Uncacheable("the last message has no text")
