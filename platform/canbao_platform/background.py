"""The loops a service runs beside its routes (the consumer runners, the outbox relay, identity's
golden-record builder, matching's evaluator, the pruner, partner callbacks): one way to start
them, wait in them and stop them, so that every component of the service shell
(`canbao_platform.service.Component`) stops the same way.

How a loop stops: `stop()` asks it to (`stopping` turns true and any `sleep` returns at once)
and waits up to `stop_timeout_s` for `run()` to return. A loop checks `stopping` between its
units of work, and each unit is one transaction, so a loop that returns in time leaves nothing
half-done. One that does not (stuck on an unreachable broker or database) is cancelled: the
unit under way rolls back and its work stays where it was, for the next start or another
instance to take.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

log = logging.getLogger(__name__)


class BackgroundLoop(ABC):
    """A component that runs `run()` as a task from `start()` until `stop()`."""

    name: str
    stop_timeout_s: float = 30.0

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run(self) -> None:
        """The loop: units of work until `self.stopping`, `await self.sleep(...)` between them.
        An exception escaping it ends the loop (`running` turns false: the service is not
        ready); a loop that should outlive a failure catches it and retries."""

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def running(self) -> bool:
        """Started, not stopped, and `run()` has not ended."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({task}, timeout=self.stop_timeout_s)
        if not done:
            log.warning(
                "%s: still busy %.0f s after being asked to stop; cancelled",
                self.name,
                self.stop_timeout_s,
            )
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s: had ended with %s", self.name, type(error).__name__)

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        """Wait `seconds`, or less if `wake` is set or the loop is asked to stop; whether it
        is asked to stop."""
        waiters = {asyncio.ensure_future(self._stopping.wait())}
        if wake is not None:
            waiters.add(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self.stopping
