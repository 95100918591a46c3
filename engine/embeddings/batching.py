"""``BatchingEmbedder``: coalesce concurrent ``embed`` calls into one batched call of the inner embedder.

A model computes 32 prompts in one call far faster than in 32 calls, and on a small machine running the
calls side by side only makes them fight for the same cores. So one worker per event loop runs the inner
embedder, at most ``lanes`` calls at a time; whatever arrives while the lanes are busy waits and goes into
the next call together. Two lanes keep the model busy while the requests of the call that just finished do
their search and answer; when requests are queued, they are split evenly over the free lanes. A lone request on an idle embedder is sent at once: batching never adds more than
``max_wait_ms``, and that wait is only spent when recent traffic shows other requests are likely to join.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.embeddings.base import Embedder
from engine.models import ComponentHealth, EmbedderIdentity

#: Called after each inner call with (texts in the call, requests served, seconds the call took).
BatchObserver = Callable[[int, int, float], None]


@dataclass(slots=True)
class _Request:
    texts: list[str]
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)


class BatchingEmbedder:
    """An ``Embedder`` that shares one inner call among the requests that arrive together."""

    def __init__(
        self,
        inner: Embedder,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        observer: BatchObserver | None = None,
        lanes: int = 1,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be 1 or more")
        if lanes < 1:
            raise ValueError("lanes must be 1 or more")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must be 0 or more")
        self.inner = inner
        self.provider = inner.provider
        self.model = inner.model
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.observer = observer
        self.lanes = lanes
        self._in_flight: set[asyncio.Task[None]] = set()
        self._queue: deque[_Request] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_batch_requests = 0
        #: Counters for benchmarks and metrics: inner calls made and requests served through them.
        self.calls = 0
        self.requests = 0

    # -- the Embedder protocol, delegated -----------------------------------------------------------------

    @property
    def identity(self) -> EmbedderIdentity | None:
        return self.inner.identity

    @property
    def loaded(self) -> bool:
        return self.inner.loaded

    async def load(self) -> EmbedderIdentity:
        return await self.inner.load()

    async def health(self) -> ComponentHealth:
        return await self.inner.health()

    async def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        in_flight, self._in_flight = set(self._in_flight), set()
        for task in in_flight:
            task.cancel()
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        self._fail_all(RuntimeError("embedder closed"))
        await self.inner.close()

    # -- batching -----------------------------------------------------------------------------------------

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            raise ValueError("embed() needs at least one text")
        loop = asyncio.get_running_loop()
        self._ensure_worker(loop)
        assert self._wakeup is not None
        request = _Request(list(texts), loop.create_future())
        self._queue.append(request)
        self._wakeup.set()
        return await request.future

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        # Futures and events belong to one loop; a new loop (a test, a restarted server) gets a new worker.
        if self._loop is not loop:
            self._fail_all(RuntimeError("event loop changed"))
            self._loop = loop
            self._wakeup = asyncio.Event()
            self._worker = None
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(), name="semcache-batching-embedder")

    def _fail_all(self, error: Exception) -> None:
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(error)

    def _take_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        size = 0
        # Share the queue evenly among the free lanes, so they finish together rather than one by one.
        free = max(1, self.lanes - len(self._in_flight))
        queued = sum(len(r.texts) for r in self._queue)
        limit = min(self.max_batch, max(1, -(-queued // free)))
        while self._queue:
            request = self._queue[0]
            if request.future.done():  # the caller went away (cancelled): nothing to compute
                self._queue.popleft()
                continue
            if batch and size + len(request.texts) > limit:
                break
            batch.append(self._queue.popleft())
            size += len(request.texts)
        return batch

    async def _gather_window(self) -> None:
        """Let requests that are arriving right now join the batch, for at most ``max_wait``."""
        await asyncio.sleep(0)  # requests scheduled in the same tick enqueue themselves
        if self.max_wait <= 0 or self._last_batch_requests <= 1:
            return  # no sign of concurrent traffic: a lone request goes at once
        deadline = time.perf_counter() + self.max_wait
        while sum(len(r.texts) for r in self._queue) < self.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, 0.0005))

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather_window()
            while len(self._in_flight) >= self.lanes:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            batch = self._take_batch()
            if not batch:
                continue
            task = asyncio.get_running_loop().create_task(self._compute(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _compute(self, batch: list[_Request]) -> None:
        # Identical texts from concurrent requests are computed once.
        unique: dict[str, int] = {}
        for request in batch:
            for text in request.texts:
                unique.setdefault(text, len(unique))
        started = time.perf_counter()
        try:
            vectors = await self.inner.embed(list(unique))
        except asyncio.CancelledError:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(RuntimeError("embedder closed"))
            raise
        except Exception as exc:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            self._last_batch_requests = len(batch)
            return
        elapsed = time.perf_counter() - started
        self.calls += 1
        self.requests += len(batch)
        self._last_batch_requests = len(batch)
        for request in batch:
            if not request.future.done():
                rows = [unique[text] for text in request.texts]
                request.future.set_result(vectors[rows])
        if self.observer is not None:
            self.observer(len(unique), len(batch), elapsed)
