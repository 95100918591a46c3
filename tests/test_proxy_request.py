"""The proxy's pure parts: what a request is looked up as, and answers stored, replayed and reassembled."""

from __future__ import annotations

from typing import Any

import pytest

from engine.keys import valid_scope
from engine.proxy.answer import Answer, StreamAssembler, replay_events, response_body, split_text
from engine.proxy.request import Lookup, Uncacheable, lookup_for

BASE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "temperature": 0.2,
}


def chat(body: dict[str, Any], **options: Any) -> Lookup | Uncacheable:
    return lookup_for("chat", body, max_prompt_chars=1000, **options)


def looked_up(body: dict[str, Any], **options: Any) -> Lookup:
    found = chat(body, **options)
    assert isinstance(found, Lookup), found
    return found


def with_last(text: str, **changes: Any) -> dict[str, Any]:
    return {**BASE, "messages": [*BASE["messages"][:-1], {"role": "user", "content": text}], **changes}


def test_only_the_last_user_message_is_matched_and_delivery_fields_do_not_split_the_scope() -> None:
    first = looked_up(BASE)
    assert first.prompt == "What is the capital of France?"
    assert first.scope.startswith("px:") and valid_scope(first.scope) and len(first.scope) == 35
    assert looked_up(with_last("Which city is France's capital?")).scope == first.scope
    same = looked_up(
        {
            **BASE,
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "u1",
            "n": 1,
            "store": False,
        }
    )
    assert same.scope == first.scope and same.stream and same.include_usage
    parts = {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}
    assert looked_up({**BASE, "messages": [BASE["messages"][0], parts]}) == first


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"messages": [{"role": "system", "content": "You are verbose."}, BASE["messages"][1]]},
        {"messages": [BASE["messages"][1]]},
        {
            "messages": [
                BASE["messages"][0],
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                BASE["messages"][1],
            ]
        },
        {"temperature": 0.9},
        {"top_p": 0.5},
        {"seed": 7},
        {"stop": ["\n"]},
        {"max_tokens": 5},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"tool_choice": "none"},
        {"response_format": {"type": "json_object"}},
        {"top_k": 40},  # a provider's own parameter (vLLM): unknown, so in the scope
    ],
)
def test_everything_else_that_changes_the_answer_splits_the_scope(change: dict[str, Any]) -> None:
    assert looked_up({**BASE, **change}).scope != looked_up(BASE).scope


def test_tenants_and_kinds_never_share_a_scope() -> None:
    plain = looked_up(BASE)
    a, b = looked_up(BASE, tenant="tenant-a"), looked_up(BASE, tenant="tenant-b")
    assert a.scope == "px:tenant-a:" + plain.scope[3:] and valid_scope(a.scope)
    assert len({plain.scope, a.scope, b.scope}) == 3
    completion = lookup_for("completion", {"model": "m", "prompt": "Hi there"}, max_prompt_chars=100)
    as_chat = chat({"model": "m", "messages": [{"role": "user", "content": "Hi there"}]})
    assert isinstance(completion, Lookup) and isinstance(as_chat, Lookup)
    assert completion.prompt == "Hi there" and completion.scope != as_chat.scope


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**BASE, "n": 2}, "n is not 1"),
        ({**BASE, "logprobs": True}, "log probabilities"),
        ({**BASE, "modalities": ["text", "audio"]}, "audio"),
        ({**BASE, "temperature": 1.6}, "over the ceiling"),
        (
            {**BASE, "messages": [*BASE["messages"], {"role": "assistant", "content": "Paris"}]},
            "not the user's",
        ),
        (
            {
                **BASE,
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
            },
            "not only text",
        ),
        (with_last("   "), "empty"),
        (with_last("x" * 1001), "SEMCACHE_MAX_PROMPT_CHARS"),
        ({"model": "m"}, "no messages"),
    ],
)
def test_uncacheable_requests_say_why(body: dict[str, Any], reason: str) -> None:
    found = chat(body, max_temperature=1.5)
    assert isinstance(found, Uncacheable) and reason in found.reason
    assert isinstance(lookup_for("completion", {"prompt": [1, 2, 3]}, max_prompt_chars=10), Uncacheable)
    assert isinstance(chat([1, 2]), Uncacheable)


def test_the_temperature_ceiling_is_off_unless_set() -> None:
    assert isinstance(chat({**BASE, "temperature": 1.9}), Lookup)
    assert isinstance(chat({**BASE, "temperature": 1.5}, max_temperature=1.5), Lookup)


def test_an_answer_is_stored_only_when_complete_text_unless_configured() -> None:
    stop = Answer("Paris.", "stop")
    assert stop.storable(store_length=False, store_tool_calls=False) is None
    length = Answer("Par", "length")
    assert "length" in str(length.storable(store_length=False, store_tool_calls=False))
    assert length.storable(store_length=True, store_tool_calls=False) is None
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    tool = Answer(None, "tool_calls", tool_calls=calls)
    assert tool.storable(store_length=False, store_tool_calls=False) is not None
    assert tool.storable(store_length=False, store_tool_calls=True) is None
    assert Answer("", "stop").storable(store_length=True, store_tool_calls=True) == "an empty answer"
    assert Answer("x", "content_filter").storable(store_length=True, store_tool_calls=True) is not None

    response, metadata = tool.to_entry("chat")
    assert Answer.from_entry(response, metadata).tool_calls == calls
    assert set(metadata) == {
        "proxy",
        "model",
        "finish_reason",
        "answer",
        "prompt_tokens",
        "completion_tokens",
    }


def test_a_hit_has_a_fresh_id_the_requested_model_and_zero_usage() -> None:
    body = response_body("chat", Answer("Paris.", "stop", model="gpt-4o-mini-2024"), "gpt-4o-mini")
    assert body["id"].startswith("chatcmpl-semcache-") and body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Paris."}
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert response_body("chat", Answer("x", "stop"), "m")["id"] != body["id"]


@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_a_replayed_stream_reassembles_to_the_stored_answer_whatever_the_byte_boundaries(kind: Any) -> None:
    text = "The capital of France is Paris, a city of about two million people on the Seine. " * 3
    stream = b"".join(replay_events(kind, Answer(text, "stop"), "m", include_usage=True))
    assert stream.endswith(b"data: [DONE]\n\n") and stream.count(b"data: ") >= 5
    for step in (1, 7, len(stream)):
        assembler = StreamAssembler(kind)
        for start in range(0, len(stream), step):
            assembler.feed(stream[start : start + step])
        answer = assembler.answer()
        assert answer is not None and answer.text == text and answer.finish_reason == "stop"


def test_a_stream_without_done_or_with_an_error_event_has_no_answer() -> None:
    cut = StreamAssembler("chat")
    cut.feed(b'data: {"choices":[{"index":0,"delta":{"content":"Par"}}]}\n\n')
    assert cut.answer() is None
    failed = StreamAssembler("chat")
    failed.feed(b'data: {"error":{"message":"overloaded"}}\n\ndata: [DONE]\n\n')
    assert failed.answer() is None


def test_tool_call_deltas_are_assembled() -> None:
    assembler = StreamAssembler("chat")
    events = [
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"get","arguments":""}}]}}]}',
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"q\\":"}}]}}]}',
        '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" 1}"}}]}}]}',
        '{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}',
        "[DONE]",
    ]
    assembler.feed("".join(f"data: {e}\r\n\r\n" for e in events).encode())
    answer = assembler.answer()
    assert answer is not None and answer.tokens == 7 and answer.finish_reason == "tool_calls"
    assert answer.tool_calls == [
        {"id": "c1", "type": "function", "function": {"name": "get", "arguments": '{"q": 1}'}}
    ]


def test_split_text_joins_back() -> None:
    for text in ("", "a", "word " * 50, "x" * 200, "short text"):
        assert "".join(split_text(text, 16)) == text


def test_a_bad_upstream_url_is_a_configuration_error_naming_the_variable(tmp_path: Any) -> None:
    from engine.config import Settings
    from engine.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        Settings.load(data_dir=tmp_path, upstream_url="ftp://llm.example/v1")
    assert "SEMCACHE_UPSTREAM_URL" in str(refused.value)
    assert (
        Settings.load(data_dir=tmp_path, upstream_url="http://llm:8000/v1/").upstream_url
        == "http://llm:8000/v1"
    )
    assert Settings.load(data_dir=tmp_path).upstream_url is None


def test_serve_takes_upstream_on_the_command_line(tmp_path: Any) -> None:
    from semcache_tui.cli.main import build_parser
    from semcache_tui.cli.options import settings_from_args

    args = build_parser().parse_args(
        ["--serve", "--data-dir", str(tmp_path), "--upstream", "http://vllm:8000/v1"]
    )
    assert settings_from_args(args).upstream_url == "http://vllm:8000/v1"
    assert settings_from_args(build_parser().parse_args(["--data-dir", str(tmp_path)])).upstream_url is None
