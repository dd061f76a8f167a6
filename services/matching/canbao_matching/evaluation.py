"""The evaluator: applies the rules (rules.py) to every person who is pending (an event about
them arrived) or due (the day stored at their last evaluation has come: a 16th birthday, a
release date), saves the verdict and publishes registry.statuses through the outbox when it
changed: a StatusesChanged, or a StatusesWithdrawn when a living person with a published verdict
has left the registry's scope.

It is the daily re-check too: verdicts that change with time alone are evaluated
again on the day, not only when a fact arrives. It works in batches, one transaction each,
taking rows with SKIP LOCKED, so several instances share the work; it wakes every
`poll_interval_s` and at once while there is more to do. Evaluating once per person per batch,
not once per event, is what keeps a person's burst of facts (a snapshot, a month-end) from
publishing a verdict per fact."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final
from uuid import UUID

from canbao_contracts.envelope import encode
from canbao_contracts.events import StatusesChanged, StatusesWithdrawn
from canbao_contracts.topics import STATUSES
from canbao_matching import store
from canbao_matching.rules import evaluate, next_recheck
from canbao_platform.background import BackgroundLoop
from canbao_platform.db import Database
from canbao_platform.messaging import UnitOfWork, unit_of_work

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# China Standard Time, no daylight saving: the day a person turns 16 is a Chinese day.
CHINA: Final = timezone(timedelta(hours=8), "CST")


def system_clock() -> datetime:
    return datetime.now(UTC)


def today_in_china(now: datetime) -> date:
    return now.astimezone(CHINA).date()


async def evaluate_due(
    uow: UnitOfWork,
    now: datetime,
    *,
    limit: int = 500,
    consumed_through: datetime | None = None,
    max_wait_s: float = 0.0,
    statuses_topic: str = STATUSES.name,
) -> tuple[int, list[StatusesChanged | StatusesWithdrawn]]:
    """Evaluate up to `limit` people due on `now` or pending (past `consumed_through`, or
    waiting `max_wait_s`: store.take_due): (how many, the changes published)."""
    today = today_in_china(now)
    loaded = await store.take_due(
        uow.session, today, limit, consumed_through=consumed_through, max_wait_s=max_wait_s
    )
    rows: list[store.VerdictRow] = []
    published: list[StatusesChanged | StatusesWithdrawn] = []
    failed: list[UUID] = []
    for person in loaded:
        try:
            row, event = _evaluate_one(person, today, now)
        except ValueError as error:  # a pydantic ValidationError: data the contracts refuse
            log.error(
                "evaluation of person %s failed with %s; set aside until tomorrow",
                person.person_id,
                type(error).__name__,
            )
            failed.append(person.person_id)
            continue
        rows.append(row)
        if event is not None:
            record = encode(event, source=uow.source)
            uow.publish(dataclasses.replace(record, topic=statuses_topic))
            published.append(event)
    await store.save_verdicts(uow.session, rows)
    await store.set_aside(uow.session, failed, today + timedelta(days=1))
    return len(loaded), published


def _evaluate_one(
    person: store.Loaded, today: date, now: datetime
) -> tuple[store.VerdictRow, StatusesChanged | StatusesWithdrawn | None]:
    """The row to save for the person, and the change to publish if the verdict changed."""
    situation = person.situation()
    verdict = None if situation is None else evaluate(situation, today)
    row = store.verdict_row(
        person.person_id,
        verdict,
        evaluated=situation is not None,
        evaluated_at=now,
        recheck_on=None if situation is None else next_recheck(situation, today),
    )
    if verdict is None:
        # Out of scope (alive), or identity has not published the person yet. A verdict
        # published before is withdrawn: downstream must not go on counting it.
        previous = person.previous() if situation is not None else None
        if previous is None:
            return row, None
        return row, StatusesWithdrawn(
            person_id=person.person_id,
            previous=previous,
            evaluated_at=now,
            source_observed_at=person.source_observed_at,
        )
    if person.unchanged(verdict):
        return row, None
    event = StatusesChanged(
        person_id=person.person_id,
        verdict=verdict,
        previous=person.previous(),
        evaluated_at=now,
        source_observed_at=person.source_observed_at,
    )
    return row, event


class Evaluator(BackgroundLoop):
    """A Component of the service shell: the evaluation loop.

    identity publishes a rebuilt person's state on registry.persons and their facts on
    registry.facts, and a consumer that lags reads the two topics' partitions unevenly: a
    person evaluated as soon as one part arrived was evaluated again on the rest (1.9 times per
    person at 10^5 people, with the evaluator's row locks holding up the consumer's marks). So a
    pending person waits until the consumer has applied everything published up to the newest
    message that marked them (`consumed_through`: ConsumerRunner.consumed_through, None when it
    does not lag), or for `max_wait_s` at most. A consumer that keeps up waits for nothing; one
    that lags waits for its slowest partition, which during a first load may be minutes behind
    the others."""

    name = "matching.evaluator"

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = system_clock,
        batch_size: int = 500,
        poll_interval_s: float = 0.2,
        consumed_through: Callable[[], datetime | None] = lambda: None,
        max_wait_s: float = 300.0,
        statuses_topic: str = STATUSES.name,
    ) -> None:
        super().__init__()
        self._database, self._clock = database, clock
        self._batch_size, self._poll_interval_s = batch_size, poll_interval_s
        self._consumed_through, self._max_wait_s = consumed_through, max_wait_s
        self._statuses_topic = statuses_topic
        self.evaluated = 0
        self.published = 0
        self.last_error: str | None = None

    async def run_once(self) -> int:
        """Evaluate everyone pending or due now; return how many verdicts changed."""
        now, changed = self._clock(), 0
        while True:
            async with unit_of_work(self._database, service="matching") as uow:
                count, events = await evaluate_due(
                    uow,
                    now,
                    limit=self._batch_size,
                    consumed_through=self._consumed_through(),
                    max_wait_s=self._max_wait_s,
                    statuses_topic=self._statuses_topic,
                )
            self.evaluated += count
            changed += len(events)
            if count < self._batch_size:
                break
        self.published += changed
        return changed

    def health(self) -> dict[str, Any]:
        return {
            "ready": self.running,
            "evaluated": self.evaluated,
            "published": self.published,
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.run_once()
                self.last_error = None
            except Exception as error:  # retried at the next wake-up; the class says what failed
                self.last_error = type(error).__name__
                log.error("%s: evaluation failed with %s", self.name, type(error).__name__)
            await self.sleep(self._poll_interval_s)
