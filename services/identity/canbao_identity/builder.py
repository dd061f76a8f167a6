"""The golden-record builder: a component that resolves the staged changes and rebuilds the
pending persons (golden_records.py) in units of work of its own, publishing through the outbox.

A pass resolves every staged change first (a unit of work per `resolve_batch`), then rebuilds
every pending person (a unit of work per `batch_size`): a person's rows arrive on several topics,
often far apart in a burst (a snapshot goes table by table), and rebuilding after each batch of
changes rebuilt and republished everyone several times. Persons reached only by a snapshot's
reads are left to settle while it streams in (`settling`, tables.pending_persons), so a first
load rebuilds each person about once; a streamed change is rebuilt at the next pass. Each half
of a pass stops early after `pass_budget_s`, so a backlog that keeps growing cannot starve the
rebuilds (nor the reverse).

Several replicas may run it, and share both halves (or only the second, `resolves=False`: the
rebuilds are the CPU of a first load and need no coordination beyond SKIP LOCKED, while each more
resolver contends for the shares with the others): each resolves the staged changes of shares
no other replica holds (store.take_staged: a share's changes are resolved by one replica at a
time, in staging order), and takes pending persons with SKIP LOCKED, so no two rebuild one person
at once. A transient failure (database away, deadlock) rolls the drain back (the changes stay
staged, the persons pending) and is retried with backoff. Any other failure of a batch's
rebuild is one person's data the database or the code refuses: the batch is rebuilt again person
by person in savepoints, and whoever still fails is set aside with the reason (as matching sets
aside a person it cannot evaluate), so the others are built and published; the count is in
/readyz and a gauge, and `python -m canbao_identity.set_aside` lists and retries them. Failures
are logged by class and count only, never with a person's data.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from canbao_identity.golden_records import GoldenRecords, failure_reason, golden_records_work
from canbao_identity.metrics import Backlog, identity_metrics
from canbao_identity.protection import Protector
from canbao_identity.store import MarkFloor, Settling, ShareFloors, Store
from canbao_platform.background import BackgroundLoop
from canbao_platform.db import Database
from canbao_platform.messaging import Backoff
from canbao_platform.messaging.failures import Failure, classify

log = logging.getLogger(__name__)
# How often the loop counts its backlog (health, metrics): every second, but never more than 1% of
# its time — counting is a scan of staged_changes and pending_persons, which hold millions of rows
# while a province's snapshot goes through (78 ms a count at 10^6 people).
BACKLOG_EVERY_S = 1.0
BACKLOG_SHARE = 0.01
SETTLING = Settling()  # the defaults of IDENTITY_SNAPSHOT_QUIET_S and …_MAX_WAIT_S


class GoldenRecordBuilder(BackgroundLoop):
    def __init__(
        self,
        database: Database,
        protector: Protector,
        *,
        service: str,
        name: str = "identity.builder",
        resolves: bool = True,
        batch_size: int = 500,
        resolve_batch: int = 2000,
        pass_budget_s: float = 5.0,
        idle_interval_s: float = 0.2,
        retry_backoff: Backoff | None = None,
        settling: Settling | None = SETTLING,
    ) -> None:
        super().__init__()
        self.name, self._resolves = name, resolves
        self._database, self._protector, self._service = database, protector, service
        self._batch_size, self._idle_interval_s = batch_size, idle_interval_s
        self._resolve_batch, self._pass_budget_s = resolve_batch, pass_budget_s
        self._retry_backoff = retry_backoff or Backoff(0.2, 5.0)
        self._settling = settling
        self._floors = ShareFloors()
        # Rebuilds only: a rebuild person by person (_rebuild_apart) takes from the beginning,
        # so the persons whose batch failed are the ones it takes.
        self._pending_floor = MarkFloor()
        self.resolved = 0
        self.rebuilt = 0
        self.set_aside = 0  # by this builder since it started (the table holds everyone's)
        self.failures = 0
        self.last_error: str | None = None
        # The retried failures by reason (value-free: class and SQLSTATE): replicas resolving
        # at once may deadlock now and then (40P01), which is retried like any transient one.
        self.failure_reasons: collections.Counter[str] = collections.Counter()
        self._backlog: Backlog | None = None  # as last measured
        self._backlog_measured = -math.inf  # time.monotonic() of that
        self._backlog_due = -math.inf  # when to measure it again

    async def start(self) -> None:
        await super().start()
        identity_metrics().watch(self)

    def health(self) -> dict[str, Any]:
        backlog = self.backlog()
        return {
            "ready": self.running,
            "resolved": self.resolved,
            "rebuilt": self.rebuilt,
            "failures": self.failures,
            "last_error": self.last_error,
            # Value-free (class and SQLSTATE): replicas deadlocking now and then show as 40P01.
            "failure_reasons": dict(self.failure_reasons),
            "staged": None if backlog is None else backlog.staged,
            "oldest_staged_age_s": None if backlog is None else backlog.oldest_staged_age_s,
            "pending_persons": None if backlog is None else backlog.pending_persons,
            # Of those, waiting for the rest of a snapshot (not stuck: see the module's doc).
            "settling_persons": None if backlog is None else backlog.settling_persons,
            # Details, not a failure of readiness: the others are being built meanwhile.
            "set_aside_persons": None if backlog is None else backlog.set_aside_persons,
        }

    def backlog(self) -> Backlog | None:
        """The backlog as last measured (None before the first measure), the oldest change's
        age carried forward to now."""
        if (measured := self._backlog) is None or not measured.staged:
            return measured
        since = time.monotonic() - self._backlog_measured
        return dataclasses.replace(
            measured, oldest_staged_age_s=measured.oldest_staged_age_s + since
        )

    async def measure_backlog(self) -> Backlog:
        """Count what is staged and pending (the loop does it when due: see BACKLOG_EVERY_S)."""
        started = time.monotonic()
        async with self._database.sessions() as session:
            backlog = await Store(session, self._protector).backlog()
        self._backlog, self._backlog_measured = backlog, time.monotonic()
        took = self._backlog_measured - started
        self._backlog_due = started + max(BACKLOG_EVERY_S, took / BACKLOG_SHARE)
        return backlog

    async def _measure_if_due(self) -> None:
        if time.monotonic() >= self._backlog_due:
            await self.measure_backlog()

    async def drain_once(self) -> int:
        """One pass: the staged changes resolved (if this builder resolves), then the pending
        persons rebuilt and published, each until none is left or the pass budget is spent. How
        much was done."""
        resolved = await self._until_done(self._resolve_some) if self._resolves else 0
        rebuilt = await self._until_done(self._rebuild_some)
        return resolved + rebuilt

    async def _until_done(self, step: Callable[[], Awaitable[tuple[int, int]]]) -> int:
        """`step` (one unit of work: how much it did, out of how much it could) repeated until
        a step finds less than it could take, or the budget is spent."""
        deadline = time.monotonic() + self._pass_budget_s
        total = 0
        while True:
            done, limit = await step()
            total += done
            await self._measure_if_due()
            if done < limit or time.monotonic() >= deadline:
                return total

    async def _resolve_some(self) -> tuple[int, int]:
        async with self._work() as golden_records:
            resolved = await golden_records.resolve_pending(
                limit=self._resolve_batch, floors=self._floors
            )
        self.resolved += resolved
        return resolved, self._resolve_batch

    async def _rebuild_some(self) -> tuple[int, int]:
        try:
            async with self._work() as golden_records:
                rebuilt = await golden_records.rebuild_pending(
                    limit=self._batch_size, settling=self._settling, floor=self._pending_floor
                )
        except Exception as error:
            if _transient(error):
                raise
            log.warning(
                "%s: %s in a rebuild, rebuilding person by person", self.name, type(error).__name__
            )
            return await self._rebuild_apart()
        self.rebuilt += rebuilt
        return rebuilt, self._batch_size

    async def _rebuild_apart(self) -> tuple[int, int]:
        """The pending persons rebuilt one savepoint each; whoever fails is set aside."""
        async with self._work() as golden_records:
            taken, set_aside = await golden_records.rebuild_pending_apart(
                limit=self._batch_size, transient=_transient, settling=self._settling
            )
        if set_aside:
            log.error("%s: %d person(s) set aside after a failed rebuild", self.name, set_aside)
        self.rebuilt += taken - set_aside
        self.set_aside += set_aside
        return taken, self._batch_size

    def _work(self) -> AbstractAsyncContextManager[GoldenRecords]:
        return golden_records_work(self._database, self._protector, service=self._service)

    async def run(self) -> None:
        attempt = 0
        while not self.stopping:
            try:
                busy = await self.drain_once() > 0
                attempt = 0
            except Exception as error:  # retried: the persons stay pending
                self.failures += 1
                self.last_error = type(error).__name__
                self.failure_reasons[failure_reason(error)] += 1
                log.warning("%s: %s while rebuilding, retrying", self.name, type(error).__name__)
                await self.sleep(self._retry_backoff.delay(attempt))
                attempt += 1
                continue
            if not busy:
                await self.sleep(self._idle_interval_s)


def _transient(error: BaseException) -> bool:
    """The messaging runtime's judgement (canbao_platform.messaging.failures): retry the batch."""
    return classify(error) is Failure.TRANSIENT
