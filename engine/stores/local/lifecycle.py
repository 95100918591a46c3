"""The life cycle of ``LocalStore`` beyond opening: binding the file to an embedder, closing (pending
counters written, graph snapshot saved, connections closed) and dropping the files."""

from __future__ import annotations

import asyncio
import shutil

from engine.errors import SemcacheError
from engine.models import EmbedderIdentity
from engine.stores.base import mismatch_error
from engine.stores.local import database as db
from engine.stores.local.core import log
from engine.stores.local.counters import CountersMixin
from engine.stores.local.entries import EntriesMixin


class LifecycleMixin(CountersMixin, EntriesMixin):
    """Bind, close and drop; closing flushes the counters (``CountersMixin``), dropping reports the
    count it removes (``EntriesMixin``)."""

    async def bind(self, identity: EmbedderIdentity) -> None:
        await self.open()
        recorded = await self._thread(self._write_lock, db.bind, self._wconn, identity)
        self._identity = recorded
        if recorded != identity:
            raise mismatch_error(self.name, recorded, identity)
        await self._ensure_graphs()

    async def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._reader is None:
            return
        try:
            await self._flush()
        except SemcacheError as exc:
            log.warning("lookup counters of %s were not saved: %s", self.name, exc)
        if self._follower.dirty:
            await asyncio.to_thread(self._follower.save_snapshot)
        for lock, conn in ((self._write_lock, self._writer), (self._read_lock, self._reader)):
            with lock:
                if conn is not None:
                    conn.close()
        await asyncio.to_thread(self._follower.close)
        self._writer = self._reader = None

    async def drop(self) -> int:
        held = await self.count()
        await self.close()

        def remove_files() -> None:
            # The database with its WAL and shared-memory files, then the graph snapshots.
            for path in self.data_dir.glob(f"{self.path.name}*"):
                path.unlink(missing_ok=True)
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)

        await asyncio.to_thread(remove_files)
        return held
