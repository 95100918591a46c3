"""An upstream answer as it is stored, and a stored answer as it is served again (a JSON body or SSE).

Stored: the entry's ``response`` is the assistant's text (a chat) or the completion's text; an answer
made only of tool calls (stored when SEMCACHE_PROXY_STORE_TOOL_CALLS is on) is stored as their JSON with
``metadata.answer = "tool_calls"``. ``metadata`` keeps only what a replay needs and the token counts that
estimate what a hit saved: ``{proxy, model, finish_reason, answer, prompt_tokens, completion_tokens}``.
Never a header, never the request.

Served on a hit: OpenAI's shape with a fresh ``id`` (``chatcmpl-semcache-...``/``cmpl-semcache-...``),
``created`` now, the requested ``model``, and ``usage`` all zeros: no tokens were spent upstream for this
answer (what the original cost is in the ``x-semcache-tokens-saved`` header).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.proxy.request import Kind

ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
DONE = b"data: [DONE]\n\n"
#: A replayed stream sends the text in pieces of about this many characters (at word boundaries).
REPLAY_PIECE_CHARS = 64


@dataclass(slots=True)
class Answer:
    """One complete answer of the upstream (choice 0)."""

    text: str | None
    finish_reason: str | None
    model: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def storable(self, *, store_length: bool, store_tool_calls: bool) -> str | None:
        """Why this answer is not stored, or ``None`` when it is."""
        if self.tool_calls:
            if not store_tool_calls:
                return "a tool-call answer (SEMCACHE_PROXY_STORE_TOOL_CALLS is off)"
            if self.text:
                return "an answer of text and tool calls"
        elif not self.text or not self.text.strip():
            return "an empty answer"
        if self.finish_reason == "length" and store_length:
            return None
        if self.finish_reason == "tool_calls" and self.tool_calls:
            return None
        if self.finish_reason != "stop":
            return f"finish_reason {self.finish_reason!r}"
        return None

    def to_entry(self, kind: Kind) -> tuple[str, dict[str, Any]]:
        """``(response, metadata)`` to store."""
        answer = "tool_calls" if self.tool_calls else "content"
        response = json.dumps(self.tool_calls) if self.tool_calls else (self.text or "")
        metadata = {
            "proxy": kind,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "answer": answer,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }
        return response, metadata

    @classmethod
    def from_entry(cls, response: str, metadata: dict[str, Any]) -> Answer:
        tool_calls = json.loads(response) if metadata.get("answer") == "tool_calls" else None
        return cls(
            text=None if tool_calls else response,
            finish_reason=str(metadata.get("finish_reason") or "stop"),
            model=metadata.get("model"),
            tool_calls=tool_calls,
            prompt_tokens=_count(metadata.get("prompt_tokens")),
            completion_tokens=_count(metadata.get("completion_tokens")),
        )

    @classmethod
    def from_body(cls, kind: Kind, body: Any) -> Answer | None:
        """The answer in a non-streamed upstream body, or ``None`` when it has none."""
        try:
            choice = body["choices"][0]
        except (KeyError, IndexError, TypeError):
            return None
        if not isinstance(choice, dict):
            return None
        usage: dict[str, Any] = body["usage"] if isinstance(body.get("usage"), dict) else {}
        if kind == "chat":
            message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
            text, tool_calls = message.get("content"), message.get("tool_calls") or None
        else:
            text, tool_calls = choice.get("text"), None
        return cls(
            text=text if isinstance(text, str) else None,
            finish_reason=choice.get("finish_reason"),
            model=body.get("model"),
            tool_calls=tool_calls if isinstance(tool_calls, list) else None,
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
        )

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _identity(kind: Kind) -> tuple[str, int]:
    prefix = "chatcmpl" if kind == "chat" else "cmpl"
    return f"{prefix}-semcache-{uuid.uuid4().hex}", int(time.time())


def response_body(kind: Kind, answer: Answer, model: Any) -> dict[str, Any]:
    """A hit as a non-streamed body."""
    answer_id, created = _identity(kind)
    choice: dict[str, Any]
    if kind == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": answer.text}
        if answer.tool_calls:
            message["tool_calls"] = answer.tool_calls
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}
        obj = "chat.completion"
    else:
        choice = {"text": answer.text, "index": 0, "logprobs": None, "finish_reason": answer.finish_reason}
        obj = "text_completion"
    return {
        "id": answer_id,
        "object": obj,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": dict(ZERO_USAGE),
    }


def replay_events(kind: Kind, answer: Answer, model: Any, include_usage: bool) -> Iterator[bytes]:
    """A hit as SSE events, as the upstream would have streamed it: (a role chunk,) text chunks, a final
    chunk with ``finish_reason``, a usage chunk when ``stream_options.include_usage`` asked for one, and
    ``data: [DONE]``."""
    answer_id, created = _identity(kind)
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {"id": answer_id, "object": obj, "created": created, "model": model, "choices": choices}
        body.update(extra)
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def choice(payload: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        if kind == "chat":
            return {"index": 0, "delta": payload, "logprobs": None, "finish_reason": finish_reason}
        return {
            "index": 0,
            "text": payload.get("content", ""),
            "logprobs": None,
            "finish_reason": finish_reason,
        }

    if kind == "chat":
        yield event([choice({"role": "assistant", "content": ""})])
    for piece in split_text(answer.text or ""):
        yield event([choice({"content": piece})])
    if answer.tool_calls:
        calls = [{"index": i, **call} for i, call in enumerate(answer.tool_calls)]
        yield event([choice({"tool_calls": calls})])
    yield event([choice({}, answer.finish_reason)])
    if include_usage:
        yield event([], usage=dict(ZERO_USAGE))
    yield DONE


def split_text(text: str, size: int = REPLAY_PIECE_CHARS) -> list[str]:
    """``text`` in pieces of about ``size`` characters, cut after whitespace; joined, they are ``text``."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            cut = text.rfind(" ", start + 1, end)
            end = cut + 1 if cut > start else end
        pieces.append(text[start:end])
        start = end
    return pieces


@dataclass(slots=True)
class StreamAssembler:
    """Reads an upstream SSE stream as it passes through and assembles the answer it carries."""

    kind: Kind
    done: bool = False
    error: bool = False
    _buffer: bytes = b""
    _text: list[str] = field(default_factory=list)
    _calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    _finish_reason: str | None = None
    _model: str | None = None
    _usage: dict[str, Any] = field(default_factory=dict)

    def feed(self, data: bytes) -> None:
        self._buffer += data.replace(b"\r\n", b"\n")
        while b"\n\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n\n", 1)
            payload = b"\n".join(
                line[5:].lstrip(b" ") for line in raw.split(b"\n") if line.startswith(b"data:")
            )
            if payload:
                self._event(payload)

    def _event(self, payload: bytes) -> None:
        if payload.strip() == b"[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            self.error = True
            return
        if not isinstance(chunk, dict) or "error" in chunk:
            self.error = True
            return
        self._model = chunk.get("model") or self._model
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
            if self.kind == "completion":
                if isinstance(choice.get("text"), str):
                    self._text.append(choice["text"])
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self._text.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                self._tool_call_delta(call)

    def _tool_call_delta(self, call: dict[str, Any]) -> None:
        slot = self._calls.setdefault(
            int(call.get("index", 0)),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        function = call.get("function") or {}
        slot["function"]["name"] += function.get("name") or ""
        slot["function"]["arguments"] += function.get("arguments") or ""

    def answer(self) -> Answer | None:
        """The answer, when the stream ended with ``[DONE]`` and carried no error."""
        if not self.done or self.error:
            return None
        calls = [self._calls[i] for i in sorted(self._calls)] or None
        return Answer(
            text="".join(self._text) if self._text else None,
            finish_reason=self._finish_reason,
            model=self._model,
            tool_calls=calls,
            prompt_tokens=_count(self._usage.get("prompt_tokens")),
            completion_tokens=_count(self._usage.get("completion_tokens")),
        )
