"""The golden-record builder: a component that resolves the staged changes and rebuilds the
pending persons (registry.py) in units of work of its own, publishing through the outbox.

Several replicas may run it: each takes pending rows with SKIP LOCKED, so they share the work
and never rebuild one person at once. A failure rolls the drain back (the persons stay pending)
and is retried with backoff; it is logged by class only, never with a person's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from canbao_identity.protection import Protector
from canbao_identity.registry import Registry
from canbao_identity.store import Store
from canbao_platform.db import Database
from canbao_platform.messaging import Backoff, UnitOfWork, unit_of_work

log = logging.getLogger(__name__)


class GoldenRecordBuilder:
    def __init__(
        self,
        database: Database,
        protector: Protector,
        *,
        service: str,
        name: str = "identity.builder",
        batch_size: int = 500,
        resolve_batch: int = 2000,
        idle_interval_s: float = 0.2,
        retry_backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self._database, self._protector, self._service = database, protector, service
        self._batch_size, self._idle_interval_s = batch_size, idle_interval_s
        self._resolve_batch = resolve_batch
        self._retry_backoff = retry_backoff or Backoff(0.2, 5.0)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.resolved = 0
        self.rebuilt = 0
        self.failures = 0
        self.last_error: str | None = None

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping.set()
            await self._task
            self._task = None

    def health(self) -> dict[str, Any]:
        running = self._task is not None and not self._task.done()
        return {
            "ready": running,
            "resolved": self.resolved,
            "rebuilt": self.rebuilt,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    async def drain_once(self) -> int:
        """Two units of work: staged changes resolved, then up to `batch_size` pending persons
        rebuilt and published. How much was done."""
        async with unit_of_work(self._database, service=self._service) as uow:
            resolved = await self._registry(uow).resolve_pending(limit=self._resolve_batch)
        async with unit_of_work(self._database, service=self._service) as uow:
            rebuilt = await self._registry(uow).rebuild_pending(limit=self._batch_size)
        self.resolved += resolved
        self.rebuilt += rebuilt
        return resolved + rebuilt

    def _registry(self, uow: UnitOfWork) -> Registry:
        return Registry(Store(uow.session, self._protector), self._protector, uow.publish_event)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                busy = await self.drain_once() > 0
                attempt = 0
            except Exception as error:  # retried: the persons stay pending
                self.failures += 1
                self.last_error = type(error).__name__
                log.warning("%s: %s while rebuilding, retrying", self.name, type(error).__name__)
                await self._sleep(self._retry_backoff.delay(attempt))
                attempt += 1
                continue
            if not busy:
                await self._sleep(self._idle_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
