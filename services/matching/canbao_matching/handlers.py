"""What matching does with each event of registry.persons, registry.facts and
registry.collections: keep it and mark the person pending. The evaluator (evaluation.py) then
evaluates each pending person once, however many of their events one batch brought, and
publishes the verdict if it changed. The messaging runtime gives the handler one transaction per
batch with the idempotency records; facts, states and pending marks are buffered in it and
written by one statement per kind when it commits (store.py), so the frequent events cost no
round trip each."""

from __future__ import annotations

import logging
from uuid import UUID

from canbao_contracts.events import (
    CollectionApproved,
    FactAsserted,
    FactsAsserted,
    PersonDeceased,
    PersonRegistered,
    PersonsMerged,
    PersonUpdated,
)
from canbao_matching import store
from canbao_platform.messaging import Handler, InboundMessage, UnitOfWork

log = logging.getLogger(__name__)


async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
    _, event = message.decode()
    match event:
        case PersonRegistered() | PersonUpdated() | PersonDeceased():
            store.save_person(uow, event, message.published_at)
        case PersonsMerged():
            # identity retracts the retired id's facts, asserts them under the survivor and
            # publishes the survivor's PersonUpdated: the survivor is evaluated then.
            await store.retire_person(
                uow.session, event.merged_person_id, event.surviving_person_id
            )
        case FactsAsserted():
            # A duplicate or a late copy of an older revision changes nothing.
            for fact in event.facts:
                store.save_fact(uow, event.person_id, fact, message.published_at)
        case FactAsserted():  # one fact per event, as identity published them before
            store.save_fact(uow, event.person_id, event.fact, message.published_at)
        case CollectionApproved(person_id=UUID() as person_id):
            await store.save_collection(uow.session, event)
            store.mark_pending(uow, person_id, message.published_at)
        case CollectionApproved():
            pass  # a new registration: identity registers the person, then we hear of them
        case _:
            log.warning("ignored %s on %s", event.type, message.topic)


HANDLER: Handler = handle
