"""The caching proxy as applications meet it: the official ``openai`` client against a real server process
(``SEMCACHE_UPSTREAM_URL``) on the session's Redis Stack, in front of the OpenAI protocol peer
(tests/support/openai_peer.py), which counts the calls it gets, so a hit is seen to cost no upstream call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.support.openai_peer import OpenAIPeer
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.slow

SEMCACHE_KEY = "semcache-key-" + uuid.uuid4().hex
#: The client's own key for the upstream: it must reach the upstream and nothing else.
CLIENT_SECRET = "sk-client-" + uuid.uuid4().hex
CEILING = 1.5


@pytest.fixture(scope="module")
def peer() -> Iterator[OpenAIPeer]:
    upstream = OpenAIPeer().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def proxy_server(
    redis_url: str, peer: OpenAIPeer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "REDIS_URL": redis_url,
        "CACHE_INDEX_NAME": f"px{uuid.uuid4().hex[:10]}",
        "CACHE_DISTANCE_THRESHOLD": "0.3",
        "SEMCACHE_API_KEY": SEMCACHE_KEY,
        "SEMCACHE_UPSTREAM_URL": peer.base_url,
        "SEMCACHE_PROXY_MAX_TEMPERATURE": str(CEILING),
    }
    server = ServerProcess(tmp_path_factory.mktemp("proxy"), env).start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def admin(proxy_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy_server.url, headers={"X-API-Key": SEMCACHE_KEY}, timeout=60) as client:
        assert client.delete("/cache/clear").status_code == 200
        yield client


@pytest.fixture
def client(proxy_server: ServerProcess, peer: OpenAIPeer, admin: httpx.Client) -> Iterator[openai.OpenAI]:
    peer.reset()
    with openai.OpenAI(
        base_url=proxy_server.url + "/v1",
        api_key=CLIENT_SECRET,
        default_headers={"X-API-Key": SEMCACHE_KEY},
        max_retries=0,
        timeout=60,
    ) as sdk:
        yield sdk


def ask(
    client: openai.OpenAI,
    prompt: str,
    *,
    system: str | None = None,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> tuple[httpx.Headers, Any]:
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    raw = client.chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=messages, extra_headers=headers, **kw
    )
    return raw.headers, raw.parse()


def entries(admin: httpx.Client, contains: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin.get("/cache/entries", params={"contains": contains}).json()["entries"]
    return found


# -- hit, miss, paraphrase, scopes -----------------------------------------------------------------------


def test_a_miss_goes_upstream_and_the_repeat_is_served_without_an_upstream_call(
    client: openai.OpenAI, peer: OpenAIPeer
) -> None:
    headers, first = ask(client, "What is the capital of France?", temperature=0)
    assert headers["x-semcache"] == "miss" and "x-semcache-distance" not in headers
    assert first.choices[0].message.content == "Reply 1 from gpt-4o-mini: What is the capital of France?"
    assert first.usage.total_tokens > 0 and peer.completion_calls == 1
    assert headers["x-upstream-request-id"] == "req_peer"  # the upstream's own headers come through
    assert headers["x-request-id"] != "req_peer"  # semcache's own request id, one value

    headers, again = ask(client, "What is the capital of France?", temperature=0)
    assert peer.completion_calls == 1
    assert headers["x-semcache"] == "hit" and float(headers["x-semcache-distance"]) == 0.0
    assert int(headers["x-semcache-tokens-saved"]) == first.usage.total_tokens
    assert again.choices[0].message.content == first.choices[0].message.content
    assert again.choices[0].finish_reason == "stop" and again.choices[0].message.role == "assistant"
    assert again.id.startswith("chatcmpl-semcache-") and again.id != first.id
    assert again.model == "gpt-4o-mini" and again.object == "chat.completion"
    assert again.created >= first.created
    assert (again.usage.prompt_tokens, again.usage.completion_tokens, again.usage.total_tokens) == (0, 0, 0)

    headers, similar = ask(client, "what's the capital of France", temperature=0)
    assert headers["x-semcache"] == "hit" and 0.0 < float(headers["x-semcache-distance"]) <= 0.3
    assert similar.choices[0].message.content == first.choices[0].message.content
    assert peer.completion_calls == 1


def test_model_system_prompt_and_earlier_turns_separate_answers(
    client: openai.OpenAI, peer: OpenAIPeer
) -> None:
    question = "How many legs does a spider have?"
    _, base = ask(client, question, system="Answer briefly.")
    _, other_model = ask(client, question, system="Answer briefly.", model="gpt-4o")
    _, other_system = ask(client, question, system="Answer like a pirate.")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Let's talk about insects."},
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": question},
        ],
    )
    assert raw.headers["x-semcache"] == "miss"
    answers = {base.choices[0].message.content, other_model.choices[0].message.content}
    answers |= {other_system.choices[0].message.content, raw.parse().choices[0].message.content}
    assert len(answers) == 4 and peer.completion_calls == 4
    assert "from gpt-4o " in other_model.choices[0].message.content
    assert "pirate" in other_system.choices[0].message.content

    for model, system, expected in (
        (None, "Answer briefly.", base),
        ("gpt-4o", "Answer briefly.", other_model),
    ):
        headers, served = ask(client, question, system=system, **({"model": model} if model else {}))
        assert headers["x-semcache"] == "hit"
        assert served.choices[0].message.content == expected.choices[0].message.content
    assert peer.completion_calls == 4


def test_text_completions_are_cached_too(client: openai.OpenAI, peer: OpenAIPeer) -> None:
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test"
    )
    assert raw.headers["x-semcache"] == "miss"
    first = raw.parse()
    raw = client.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test"
    )
    assert raw.headers["x-semcache"] == "hit" and peer.completion_calls == 1
    served = raw.parse()
    assert served.choices[0].text == first.choices[0].text and served.object == "text_completion"
    assert served.id.startswith("cmpl-semcache-") and served.usage.total_tokens == 0

    text = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Say this is a test", stream=True
        )
    )
    assert text == first.choices[0].text and peer.completion_calls == 1


# -- streaming -------------------------------------------------------------------------------------------


def stream(client: openai.OpenAI, prompt: str, **kw: Any) -> tuple[httpx.Headers, list[Any]]:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True, **kw
    )
    return raw.headers, list(raw.parse())


def test_streaming_both_ways(client: openai.OpenAI, peer: OpenAIPeer) -> None:
    prompt = "Write one sentence about the sea."
    headers, chunks = stream(client, prompt, stream_options={"include_usage": True})
    assert headers["x-semcache"] == "miss" and headers["content-type"].startswith("text/event-stream")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Reply 1 from gpt-4o-mini: {prompt}" and len(chunks) > 5  # as the upstream sent them
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0

    headers, replayed = stream(client, prompt, stream_options={"include_usage": True})
    assert headers["x-semcache"] == "hit" and peer.completion_calls == 1
    assert replayed[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in replayed if c.choices) == text
    finals = [c for c in replayed if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert replayed[-1].choices == [] and replayed[-1].usage.total_tokens == 0
    assert len({c.id for c in replayed}) == 1 and replayed[0].id.startswith("chatcmpl-semcache-")

    # A streamed miss serves a later non-streamed request, and the other way round.
    _, whole = ask(client, prompt)
    assert whole.choices[0].message.content == text and peer.completion_calls == 1
    ask(client, "Name a colour of the rainbow.")
    headers, chunks = stream(client, "Name a colour of the rainbow.")
    assert headers["x-semcache"] == "hit" and peer.completion_calls == 2
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_client_gone_mid_stream_stores_nothing(
    client: openai.OpenAI, peer: OpenAIPeer, proxy_server: ServerProcess, admin: httpx.Client
) -> None:
    prompt = "Tell me a long story about a lighthouse keeper."
    finished_before = proxy_server.log().count("POST /v1/chat/completions 200")
    peer.hold()
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
    )
    first = next(iter(response))
    assert first.choices[0].delta.role == "assistant"
    assert peer.stream_started.wait(30)
    response.close()  # the client goes away while the upstream is still answering
    deadline = time.monotonic() + 30
    while proxy_server.log().count("POST /v1/chat/completions 200") == finished_before:
        assert time.monotonic() < deadline, "the proxy did not finish the abandoned stream"
        time.sleep(0.05)
    peer.release()
    assert peer.stream_ended.wait(30)
    assert entries(admin, "lighthouse keeper") == []
    headers, _ = stream(client, prompt)
    assert headers["x-semcache"] == "miss" and peer.completion_calls == 2


# -- what is not cached ----------------------------------------------------------------------------------


def test_upstream_errors_pass_through_and_are_never_cached(
    client: openai.OpenAI, peer: OpenAIPeer, admin: httpx.Client
) -> None:
    peer.fail(429, times=1)
    with pytest.raises(openai.RateLimitError) as limited:
        ask(client, "Is the upstream rate limiting us?")
    assert limited.value.status_code == 429
    assert limited.value.body["message"] == "The upstream peer was told to fail this request."  # type: ignore[index]
    peer.fail(500, times=1)
    with pytest.raises(openai.InternalServerError):
        stream(client, "Is the upstream rate limiting us?")
    assert entries(admin, "rate limiting") == []
    headers, answer = ask(client, "Is the upstream rate limiting us?")
    assert headers["x-semcache"] == "miss" and answer.choices[0].message.content.startswith("Reply 3 ")

    with pytest.raises(openai.NotFoundError) as missing:
        ask(client, "Which model is this?", model="gpt-9")
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]

    peer.finish_reason = "length"
    for _ in range(2):
        headers, cut = ask(client, "Write an essay on rivers.")
        assert headers["x-semcache"] == "miss" and cut.choices[0].finish_reason == "length"
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    peer.finish_reason = "stop"
    for _ in range(2):
        headers, chunks = stream(client, "Look up the weather.", tools=tools, tool_choice="required")
        assert headers["x-semcache"] == "miss"
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert entries(admin, "rivers") == [] and entries(admin, "weather") == []


def test_an_upstream_outage_does_not_affect_hits(
    client: openai.OpenAI, peer: OpenAIPeer, proxy_server: ServerProcess
) -> None:
    _, first = ask(client, "What is the boiling point of water at sea level?")
    peer.stop()
    try:
        headers, served = ask(client, "What is the boiling point of water at sea level?")
        assert headers["x-semcache"] == "hit"
        assert served.choices[0].message.content == first.choices[0].message.content
        with pytest.raises(openai.InternalServerError) as down:
            ask(client, "Who painted the Mona Lisa?")
        assert down.value.status_code == 502 and down.value.response.headers["x-semcache"] == "miss"
    finally:
        peer.start()


def test_bypass_no_cache_and_no_store_headers(
    client: openai.OpenAI, peer: OpenAIPeer, admin: httpx.Client
) -> None:
    question = "What is the tallest mountain on Earth?"
    ask(client, question)
    headers, _ = ask(client, question, headers={"x-semcache-bypass": "1"})
    assert headers["x-semcache"] == "bypass" and headers["x-semcache-reason"] == "x-semcache-bypass"
    assert peer.completion_calls == 2
    assert [e["response"] for e in entries(admin, "tallest mountain")] == [
        f"Reply 1 from gpt-4o-mini: {question}"
    ]

    headers, fresh = ask(client, question, headers={"Cache-Control": "no-cache"})
    assert headers["x-semcache"] == "bypass" and peer.completion_calls == 3
    headers, served = ask(client, question)  # no-cache refreshed the entry
    assert headers["x-semcache"] == "hit"
    assert (
        served.choices[0].message.content
        == fresh.choices[0].message.content
        == f"Reply 3 from gpt-4o-mini: {question}"
    )

    for value in ({"Cache-Control": "no-store"}, {"x-semcache-no-store": "1"}):
        headers, _ = ask(client, "What is the deepest lake?", headers=value)
        assert headers["x-semcache"] == "miss"
    assert entries(admin, "deepest lake") == [] and peer.completion_calls == 5


def test_n_above_one_and_temperature_over_the_ceiling_pass_through(
    client: openai.OpenAI, peer: OpenAIPeer
) -> None:
    for _ in range(2):
        headers, answer = ask(client, "Give me a name for a cat.", n=2)
        assert headers["x-semcache"] == "bypass" and headers["x-semcache-reason"] == "n is not 1"
        assert len(answer.choices) == 2
    for _ in range(2):
        headers, _ = ask(client, "Give me a name for a dog.", temperature=CEILING + 0.3)
        assert headers["x-semcache"] == "bypass" and "ceiling" in headers["x-semcache-reason"]
    assert peer.completion_calls == 4
    ask(client, "Give me a name for a dog.", temperature=CEILING)
    headers, _ = ask(client, "Give me a name for a dog.", temperature=CEILING)
    assert headers["x-semcache"] == "hit" and peer.completion_calls == 5


def test_tenants_from_the_scope_header_never_share(client: openai.OpenAI, peer: OpenAIPeer) -> None:
    ask(client, "What is our refund policy?", headers={"x-semcache-scope": "tenant-a"})
    headers, _ = ask(client, "What is our refund policy?", headers={"x-semcache-scope": "tenant-b"})
    assert headers["x-semcache"] == "miss"
    headers, _ = ask(client, "What is our refund policy?", headers={"x-semcache-scope": "tenant-a"})
    assert headers["x-semcache"] == "hit" and peer.completion_calls == 2
    with pytest.raises(openai.UnprocessableEntityError):
        ask(client, "What is our refund policy?", headers={"x-semcache-scope": "no spaces/slashes"})


# -- the rest of /v1, keys, secrets, metrics -------------------------------------------------------------


def test_other_v1_routes_pass_through_unchanged(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct"]
    assert client.models.retrieve("gpt-4o").owned_by == "system"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-9")
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_the_two_keys_semcache_s_and_the_upstream_s(proxy_server: ServerProcess, peer: OpenAIPeer) -> None:
    peer.reset()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello?"}]}
    url = proxy_server.url + "/v1/chat/completions"
    without = httpx.post(url, json=body, headers={"Authorization": f"Bearer {CLIENT_SECRET}"})
    assert without.status_code == 401 and without.json()["error"] == "unauthorized"
    wrong = httpx.post(
        url, json=body, headers={"X-API-Key": "wrong", "Authorization": f"Bearer {SEMCACHE_KEY}"}
    )
    assert wrong.status_code == 401 and peer.completion_calls == 0  # the Bearer is never semcache's key here
    upstream_refuses = httpx.post(url, json=body, headers={"X-API-Key": SEMCACHE_KEY})
    assert (
        upstream_refuses.status_code == 401
        and upstream_refuses.json()["error"]["type"] == "invalid_request_error"
    )
    assert peer.completion_calls == 1 and entries_count(proxy_server) == 0


def entries_count(server: ServerProcess) -> int:
    return int(
        httpx.get(server.url + "/cache/stats", headers={"X-API-Key": SEMCACHE_KEY}).json()["total_entries"]
    )


def redis_values(url: str) -> Iterator[bytes]:
    """Every value in the Redis server, whatever its type."""
    connection = redis.Redis.from_url(url)
    try:
        for key in connection.scan_iter(count=1000):
            kind = connection.type(key).decode()
            yield key
            if kind == "string":
                yield connection.get(key) or b""
            elif kind == "hash":
                for field, value in connection.hgetall(key).items():
                    yield field + b"=" + value
            elif kind == "ReJSON-RL":
                yield str(connection.execute_command("JSON.GET", key)).encode()
            elif kind in ("list", "set", "zset", "stream"):
                yield str(connection.execute_command("DUMP", key)).encode()
    finally:
        connection.close()


def test_the_client_s_authorization_reaches_the_upstream_only(
    client: openai.OpenAI, peer: OpenAIPeer, proxy_server: ServerProcess, admin: httpx.Client, redis_url: str
) -> None:
    ask(client, "Where is the Eiffel Tower?")
    ask(client, "Where is the Eiffel Tower?")
    stream(client, "Where is the Colosseum?")
    client.models.list()
    forwarded = peer.requests
    assert forwarded and all(r.headers.get("authorization") == f"Bearer {CLIENT_SECRET}" for r in forwarded)
    assert not any(
        "x-api-key" in r.headers or any(h.startswith("x-semcache") for h in r.headers) for r in forwarded
    )

    stored = entries(admin, "Eiffel") + entries(admin, "Colosseum")
    assert len(stored) == 2
    assert all(
        CLIENT_SECRET not in repr(entry) and "authorization" not in repr(entry).lower() for entry in stored
    )
    assert set(stored[0]["metadata"]) == {
        "proxy",
        "model",
        "finish_reason",
        "answer",
        "prompt_tokens",
        "completion_tokens",
    }
    values = list(redis_values(redis_url))
    assert values and not any(CLIENT_SECRET.encode() in value for value in values)
    log = proxy_server.log()
    assert CLIENT_SECRET not in log and SEMCACHE_KEY not in log and "POST /v1/chat/completions" in log


def test_metrics_and_stats_count_hits_misses_bypasses_and_tokens_saved(
    client: openai.OpenAI, admin: httpx.Client
) -> None:
    before = admin.get("/proxy/stats").json()
    ask(client, "What is the speed of sound?")
    ask(client, "What is the speed of sound?")
    ask(client, "What is the speed of sound?", headers={"x-semcache-bypass": "1"})
    after = admin.get("/proxy/stats").json()
    assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"] + 1
    assert after["bypasses"] == before["bypasses"] + 1 and after["tokens_saved"] > before["tokens_saved"]
    assert after["upstream_calls"] == before["upstream_calls"] + 2 and after["upstream_mean_seconds"] > 0
    text = admin.get("/metrics").text
    assert 'semcache_proxy_requests_total{outcome="hit",route="/v1/chat/completions"}' in text
    assert (
        "semcache_proxy_tokens_saved_total" in text
        and "semcache_proxy_upstream_duration_seconds_count" in text
    )
    assert admin.get("/cache/stats").json()["hits"] >= 1  # the cache's own shared stats count proxy lookups


def test_a_proxy_only_mounts_with_an_upstream(tmp_path: Path) -> None:
    from engine.config import Settings
    from engine.server import create_app

    paths = set(create_app(Settings.load(data_dir=tmp_path)).openapi()["paths"])
    assert "/cache/check" in paths and not any(p.startswith(("/v1", "/proxy")) for p in paths)


async def test_an_upstream_timeout_answers_504_and_a_refused_connection_502(
    tmp_path: Path, peer: OpenAIPeer, embedder: Any
) -> None:
    """In process (httpx over ASGI), with a short SEMCACHE_UPSTREAM_TIMEOUT: a deadline as a setting."""
    from engine.cache import CachePolicy, SemanticCache
    from engine.config import Settings
    from engine.server import create_app
    from engine.stores.local import LocalStore
    from tests.support.server_process import free_port

    peer.reset()
    cache = SemanticCache(LocalStore(tmp_path / "data", name="timeouts"), embedder, CachePolicy())
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Are you there?"}]}
    headers = {"Authorization": f"Bearer {CLIENT_SECRET}"}
    try:
        for upstream, status, kind in (
            (peer.base_url, 504, "upstream_timeout"),
            (f"http://127.0.0.1:{free_port()}/v1", 502, "upstream_unavailable"),
        ):
            settings = Settings.load(data_dir=tmp_path / "data", upstream_url=upstream, upstream_timeout=0.2)
            app = create_app(settings, cache)
            peer.delay = 2.0
            async with app.router.lifespan_context(app):
                await cache.start()
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                    answer = await http.post("/v1/chat/completions", json=body, headers=headers)
            assert answer.status_code == status and answer.json()["error"]["type"] == kind
            assert answer.headers["x-semcache"] == "miss"
        assert (await cache.stats()).entries == 0
    finally:
        peer.reset()
        await cache.close()
