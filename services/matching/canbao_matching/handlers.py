"""What matching does with each event: keep it, evaluate the person again (rules.py), publish
registry.statuses when the verdict changed. One handler for the three topics it consumes; the
messaging runtime gives it one transaction per batch with the idempotency records."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final
from uuid import UUID

from canbao_contracts.envelope import encode
from canbao_contracts.events import (
    CollectionApproved,
    FactAsserted,
    PersonDeceased,
    PersonRegistered,
    PersonsMerged,
    PersonUpdated,
    StatusesChanged,
)
from canbao_contracts.topics import STATUSES
from canbao_matching import store
from canbao_matching.rules import evaluate, next_recheck
from canbao_platform.messaging import Handler, InboundMessage, UnitOfWork

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# China Standard Time, no daylight saving: the day on which a person turns 16 is a Chinese day.
CHINA: Final = timezone(timedelta(hours=8), "CST")


def system_clock() -> datetime:
    return datetime.now(UTC)


def today_in_china(now: datetime) -> date:
    return now.astimezone(CHINA).date()


async def reevaluate(
    uow: UnitOfWork, person_id: UUID, now: datetime, *,
    source_observed_at: datetime | None = None, statuses_topic: str = STATUSES.name,
) -> StatusesChanged | None:  # fmt: skip
    """Evaluate the person on today's date; save the verdict and publish it if it changed."""
    loaded = await store.load(uow.session, person_id)
    if loaded is None:
        return None
    today = today_in_china(now)
    verdict = evaluate(loaded.situation, today)
    await store.save_verdict(uow.session, person_id, verdict, evaluated_at=now,
                             recheck_on=next_recheck(loaded.situation, today))  # fmt: skip
    if verdict is None or verdict == loaded.previous:
        return None
    event = StatusesChanged(person_id=person_id, verdict=verdict, previous=loaded.previous,
                            evaluated_at=now, source_observed_at=source_observed_at)  # fmt: skip
    record = encode(event, source=uow.source)
    uow.publish(dataclasses.replace(record, topic=statuses_topic))
    return event


def event_handler(clock: Clock = system_clock, *, statuses_topic: str = STATUSES.name) -> Handler:
    """The handler of registry.persons, registry.facts and registry.collections."""

    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        _, event = message.decode()
        observed: datetime | None = None
        match event:
            case PersonRegistered() | PersonUpdated() | PersonDeceased():
                await store.save_person(uow.session, event)
                person_id = event.person_id
            case PersonsMerged():
                # identity retracts the retired id's facts, asserts them under the survivor and
                # publishes the survivor's PersonUpdated: the survivor is evaluated then.
                await store.retire_person(uow.session, event.merged_person_id,
                                          event.surviving_person_id)  # fmt: skip
                return
            case FactAsserted():
                await store.ensure_person(uow.session, event.person_id)
                if not await store.save_fact(uow.session, event.person_id, event.fact):
                    return  # a duplicate or a late copy of an older revision
                person_id, observed = event.person_id, event.fact.observed_at
            case CollectionApproved(person_id=UUID() as person_id):
                await store.ensure_person(uow.session, person_id)
                await store.save_collection(uow.session, event)
            case CollectionApproved():
                return  # a new registration: identity registers the person, then we hear of them
            case _:
                log.warning("ignored %s on %s", event.type, message.topic)
                return
        await reevaluate(uow, person_id, clock(), source_observed_at=observed,
                         statuses_topic=statuses_topic)  # fmt: skip

    return handle
