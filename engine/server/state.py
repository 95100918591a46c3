"""What the routes of one app share: the cache, the settings, the metrics and the start-up state."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from engine.config import Settings
from engine.models import EmbedderIdentity
from engine.redact import redact_secret
from engine.server.metrics import ServerMetrics
from engine.service import CacheService


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """The secret values to remove from messages. Replacing a value of one to three characters would
    mangle every message while protecting nothing (such a key is guessed at once), so those are skipped."""
    secrets = (settings.api_key, settings.redis_password, settings.redis_sentinel_password)
    return tuple(s for s in secrets if s and len(s) >= 4)


@dataclass(slots=True)
class ServerState:
    cache: CacheService
    settings: Settings
    metrics: ServerMetrics
    #: The last failure of the background start (the store down, the model missing), until it succeeds.
    start_error: Exception | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def retire(self, closing: Coroutine[Any, Any, None]) -> None:
        """Run ``closing`` (the clean-up of a cache no longer served) as a task the server cancels at stop."""
        task = asyncio.create_task(closing, name="semcache-retire")
        self.tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        if task in self.tasks:
            self.tasks.remove(task)

    def redact(self, text: str) -> str:
        return redact_secret(text, *secrets_of(self.settings))

    @property
    def ready(self) -> bool:
        return self.cache.ready

    @property
    def index_name(self) -> str:
        return self.cache.index_name or self.settings.index_name

    @property
    def store_kind(self) -> str:
        return self.cache.store_kind or self.settings.store_kind

    @property
    def identity(self) -> EmbedderIdentity | None:
        return self.cache.identity


def server_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state
