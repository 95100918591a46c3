"""Benchmark the caching proxy end to end with the official ``openai`` client.

    .venv/bin/python -m bench.proxy [--requests 200] [--store local|redis]

Starts the OpenAI protocol peer (tests/support/openai_peer.py, answering at once) and a server process in
front of it (``SEMCACHE_UPSTREAM_URL``), then, with one client asking one request at a time:
- direct: the client against the peer itself, the upstream's own latency as the client sees it;
- miss: unique prompts through the proxy (lookup with an embedding, forward, store with an embedding);
- hit: the same prompts again (exact repeats: no embedding, no upstream call);
- hit (stream): the same, with ``stream=True``, until the last chunk is read;
and prints p50/p95 for each and the overhead a miss adds to the upstream's own latency (miss - direct).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import openai

from tests.support.openai_peer import OpenAIPeer
from tests.support.server_process import ServerProcess

WORDS = [
    "river",
    "mountain",
    "violin",
    "harbour",
    "meadow",
    "lantern",
    "glacier",
    "orchard",
    "canyon",
    "falcon",
    "tundra",
    "compass",
]


def prompts(count: int) -> list[str]:
    # Unrelated questions, so that none is a semantic hit for another.
    return [
        f"In one sentence, how does a {WORDS[i % len(WORDS)]} relate to {WORDS[(i * 7 + 3) % len(WORDS)]} "
        f"number {i} ({uuid.uuid4().hex[:6]})?"
        for i in range(count)
    ]


def timed(call: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def summary(name: str, times: list[float]) -> float:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(f"{name:<22} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   ({len(times)} requests)")
    return p50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--store", choices=("local", "redis"), default="local")
    args = parser.parse_args()

    peer = OpenAIPeer().start()
    env = {"SEMCACHE_UPSTREAM_URL": peer.base_url, "CACHE_DISTANCE_THRESHOLD": "0.05"}
    redis_server = None
    if args.store == "redis":
        from tests.support.redis_server import RedisServer, ensure_redis_stack

        redis_server = RedisServer(ensure_redis_stack()).start()
        env["REDIS_URL"] = redis_server.url
    server = ServerProcess(Path(tempfile.mkdtemp(prefix="semcache-bench-proxy-")), env).start()
    try:
        server.wait_ready()
        direct = openai.OpenAI(base_url=peer.base_url, api_key="sk-bench", max_retries=0)
        proxied = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-bench", max_retries=0)
        questions = prompts(args.requests)

        def ask(client: openai.OpenAI, stream: bool = False) -> Callable[[], object]:
            pending = iter(questions)

            def call() -> object:
                messages = [{"role": "user", "content": next(pending)}]
                if stream:
                    return list(
                        client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
                    )  # type: ignore[arg-type]
                return client.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]

            return call

        # Warm both paths (connections, the model's first batches) on prompts not measured.
        for _ in range(3):
            proxied.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"warm up {uuid.uuid4().hex}"}]
            )
        print(f"proxy on the {args.store} store, upstream: the OpenAI protocol peer (answers at once)")
        direct_p50 = summary("direct to upstream", timed(ask(direct), args.requests))
        miss_p50 = summary("miss through proxy", timed(ask(proxied), args.requests))
        calls = peer.completion_calls
        summary("hit through proxy", timed(ask(proxied), args.requests))
        summary("hit, streamed", timed(ask(proxied, stream=True), args.requests))
        assert peer.completion_calls == calls, "a hit reached the upstream"
        print(f"a miss adds {miss_p50 - direct_p50:.2f} ms (p50) to the upstream's own latency")
    finally:
        server.stop()
        peer.stop()
        if redis_server is not None:
            redis_server.close()


if __name__ == "__main__":
    main()
