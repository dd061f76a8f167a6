"""The scheduled re-check: verdicts that change with time alone (a child turning 16, a release
date reached) are evaluated again on the day, not only when a fact arrives (issue 6 §2).

Each evaluation stores the next day the person's verdict may change (rules.next_recheck); the
re-check evaluates everyone due by today, in batches, one transaction each, and publishes what
changed through the outbox like the consumer does. It wakes every `interval_s` (an hour: the
day's re-checks run within an hour of midnight, China time) and is idempotent, so two instances
or a restart only find nothing left to do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from canbao_contracts.topics import STATUSES
from canbao_matching import store
from canbao_matching.handlers import Clock, reevaluate, system_clock, today_in_china
from canbao_platform.db import Database
from canbao_platform.messaging import unit_of_work

log = logging.getLogger(__name__)


class DailyRecheck:
    name = "matching.recheck"

    def __init__(
        self, database: Database, *, clock: Clock = system_clock, interval_s: float = 3600.0,
        batch_size: int = 500, statuses_topic: str = STATUSES.name,
    ) -> None:  # fmt: skip
        self._database, self._clock = database, clock
        self._interval_s, self._batch_size = interval_s, batch_size
        self._statuses_topic = statuses_topic
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rechecked = 0
        self.changed = 0
        self.last_error: str | None = None

    async def run_once(self) -> int:
        """Evaluate everyone due by today; return how many verdicts changed."""
        now = self._clock()
        today = today_in_china(now)
        changed = 0
        while True:
            async with unit_of_work(self._database, service="matching") as uow:
                due = await store.due_for_recheck(uow.session, today, self._batch_size)
                for person_id in due:
                    event = await reevaluate(uow, person_id, now,
                                             statuses_topic=self._statuses_topic)  # fmt: skip
                    changed += event is not None
            self.rechecked += len(due)
            if len(due) < self._batch_size:
                break
        self.changed += changed
        return changed

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            await asyncio.wait({task}, timeout=30.0)
            if not task.done():
                task.cancel()

    def health(self) -> dict[str, Any]:
        running = self._task is not None and not self._task.done()
        return {"ready": running, "rechecked": self.rechecked, "changed": self.changed,
                "last_error": self.last_error}  # fmt: skip

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
                self.last_error = None
            except Exception as error:  # retried at the next wake-up; the class says what failed
                self.last_error = type(error).__name__
                log.error("%s: re-check failed with %s", self.name, type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
