"""Benchmark the HTTP server on loopback against RedisVL's SemanticCache behind a minimal FastAPI route.

    .venv/bin/python -m bench.server [--seconds 6] [--clients 1,8,32] [--stores redis,local] [--verify on,off]

Starts a Redis Stack (tests/support/redis_server.py), our server on it (and on the embedded store), and
bench/redisvl_app.py on the same Redis, each in its own process with the same bundled model. A small
keep-alive HTTP/1.1 load generator (raw asyncio streams: it must cost the 2 cores as little as possible)
then runs, at each client count, for a fixed time:
- unique prompts: questions from the QQP sample that were never stored (every one needs an embedding);
- exact repeats: prompts stored beforehand, asked again verbatim.
It prints throughput and p50/p99 latency per server, workload and client count, and the ratios the issue
sets as targets (unique-prompt throughput at 32 clients >= 4x RedisVL; exact-repeat p50 < 2 ms).
``--verify on,off`` runs our server with and without the learned verifier (SEMCACHE_VERIFY), each at its
own default CACHE_DISTANCE_THRESHOLD (the 0.40 cap, the seed's 0.15), and prints what verification adds
to a unique-prompt check's p50 at the lowest client count and what it costs in throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from tests.support.redis_server import RedisServer, ensure_redis_stack
from tests.support.server_process import ROOT, ServerProcess, free_port

#: The QQP sample, in the shared data folder beside the repository (``../shared/data``).
DATA = ROOT.parent / "shared" / "data" / "qqp_dev.jsonl.gz"
STORED = 200


def questions() -> list[str]:
    if not DATA.is_file():
        raise SystemExit(
            f"bench.server needs the QQP sample at {DATA} (the shared data folder beside the repository)"
        )
    seen: dict[str, None] = {}
    with gzip.open(DATA, "rt") as lines:
        for line in lines:
            pair = json.loads(line)
            for text in (pair["text_a"], pair["text_b"]):
                text = text.strip()
                if 10 <= len(text) <= 300:
                    seen.setdefault(text, None)
    return list(seen)


class Connection:
    """One keep-alive HTTP/1.1 connection; enough protocol for JSON POSTs answered with Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: dict[str, object]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))


async def load(port: int, prompts: list[str], clients: int, seconds: float, warmup: float = 1.0) -> Result:
    """``clients`` connections asking prompts in turn for ``seconds`` (after ``warmup``)."""
    cursor = 0
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = float("inf")

    async def client() -> None:
        nonlocal cursor, errors
        connection = Connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                prompt = prompts[cursor % len(prompts)]
                cursor += 1
                started = time.perf_counter()
                status, _ = await connection.post("/cache/check", {"prompt": prompt})
                elapsed = (time.perf_counter() - started) * 1000.0
                if measuring:
                    latencies.append(elapsed)
                    errors += status != 200
        finally:
            await connection.close()

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(warmup)
    measuring = True
    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(*tasks)
    return Result(len(latencies), errors, time.perf_counter() - began, latencies)


def start_redisvl(redis_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = ServerProcess(workdir).env | {"REDIS_URL": redis_url, "BENCH_INDEX": f"rvl{uuid.uuid4().hex[:8]}"}
    log = (workdir / "redisvl.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.redisvl_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"RedisVL app exited: {(workdir / 'redisvl.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("RedisVL app did not start")
        time.sleep(0.1)


def hydrate(url: str, pairs: list[tuple[str, str]], batch: bool) -> None:
    with httpx.Client(base_url=url, timeout=300) as http:
        if batch:
            items = [{"prompt": p, "response": r} for p, r in pairs]
            http.post("/cache/store/batch", json={"items": items}).raise_for_status()
        else:
            for prompt, response in pairs:
                http.post("/cache/store", json={"prompt": prompt, "response": response}).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured time per scenario")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--stores", default="redis,local", help="our server's stores to run")
    parser.add_argument("--verify", default="on,off", help="SEMCACHE_VERIFY values to run our server with")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]

    texts = questions()
    stored = texts[:STORED]
    unique = texts[STORED:]
    pairs = [(q, f"Answer to: {q}") for q in stored]
    print(f"prompts: {len(unique)} unique questions (QQP sample), {STORED} stored for exact repeats")

    workdir = Path(tempfile.mkdtemp(prefix="semcache-bench-"))
    redis = RedisServer(ensure_redis_stack()).start()
    servers: list[tuple[str, int, object]] = []
    try:
        modes = args.verify.split(",")
        for store in args.stores.split(","):
            for verify in modes:
                env = (
                    {"REDIS_URL": redis.url, "CACHE_INDEX_NAME": f"bench{uuid.uuid4().hex[:8]}"}
                    if store == "redis"
                    else {}
                ) | {"SEMCACHE_VERIFY": verify}
                ours = ServerProcess(workdir / f"ours-{store}-{verify}", env).start()
                ours.wait_ready()
                hydrate(ours.url, pairs, batch=True)
                servers.append((f"semcache {store} v:{verify}", ours.port, ours))
        rvl, rvl_port = start_redisvl(redis.url, workdir)
        hydrate(f"http://127.0.0.1:{rvl_port}", pairs, batch=False)
        servers.append(("redisvl route", rvl_port, rvl))

        results: dict[tuple[str, str, int], Result] = {}
        offset = 0
        print(
            f"\n{'server':<24} {'workload':<14} {'clients':>7} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>6}"
        )
        for name, port, _ in servers:
            for workload in ("unique", "exact repeat"):
                for clients in levels:
                    if workload == "unique":
                        # Fresh prompts for every scenario: none was ever asked of this server before.
                        prompts = unique[offset:] + unique[:offset]
                        offset = (offset + 4000) % len(unique)
                    else:
                        prompts = stored
                    result = asyncio.run(load(port, prompts, clients, args.seconds))
                    results[(name, workload, clients)] = result
                    print(
                        f"{name:<24} {workload:<14} {clients:>7} {result.throughput:>9.1f} "
                        f"{result.p(50):>9.2f} {result.p(99):>9.2f} {result.errors:>6}",
                        flush=True,
                    )

        print()
        top = max(levels)
        baseline = results[("redisvl route", "unique", top)].throughput
        for name, _, _ in servers[:-1]:
            ratio = results[(name, "unique", top)].throughput / baseline
            p50 = results[(name, "exact repeat", top)].p(50)
            p50_one = results[(name, "exact repeat", min(levels))].p(50)
            print(
                f"{name}: unique-prompt throughput at {top} clients = {ratio:.1f}x the RedisVL route "
                f"(target >= 4x: {'met' if ratio >= 4 else 'NOT met'}); exact-repeat p50 = {p50_one:.2f} ms at "
                f"{min(levels)} client(s), {p50:.2f} ms at {top} (target < 2 ms)"
            )
        low = min(levels)
        for store in args.stores.split(","):
            on, off = f"semcache {store} v:on", f"semcache {store} v:off"
            if (on, "unique", low) in results and (off, "unique", low) in results:
                added = results[(on, "unique", low)].p(50) - results[(off, "unique", low)].p(50)
                kept = results[(on, "unique", top)].throughput / results[(off, "unique", top)].throughput
                print(
                    f"{store}: verification adds {added:.2f} ms to a unique-prompt check's p50 at {low} "
                    f"client(s) (target <= 3 ms); at {top} clients it keeps {kept:.0%} of the throughput"
                )
    finally:
        for _, _, process in servers:
            if isinstance(process, ServerProcess):
                process.stop()
            elif isinstance(process, subprocess.Popen):
                process.terminate()
                process.wait(20)
        redis.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
