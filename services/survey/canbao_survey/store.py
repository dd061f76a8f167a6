"""Collections in the database: a counter collection stored, approved and announced in one
transaction (the event goes through the outbox, so it is published exactly when committed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from canbao_contracts.collected_items import normalised
from canbao_contracts.events.vocabulary import Channel
from canbao_platform.db import Database
from canbao_platform.messaging import unit_of_work
from canbao_platform.problems import InvalidItems
from canbao_platform.sealing import Sealer
from canbao_survey.collections import (
    CounterCollection,
    ReviewState,
    approved_at_counter,
    defects,
)
from canbao_survey.problems import IdempotencyKeyReused
from canbao_survey.tables import collections

SERVICE = "survey"


@dataclass(frozen=True, slots=True)
class Submitted:
    collection_id: UUID
    state: ReviewState
    replayed: bool  # an earlier submission with the same Idempotency-Key


def context_of(collection_id: UUID) -> str:
    """Associated data of a row's ciphertext: its id (a blob moved to another row fails)."""
    return f"survey.collections:{collection_id}"


async def submit_counter_collection(
    database: Database,
    sealer: Sealer,
    collection: CounterCollection,
    *,
    idempotency_key: str | None,
    now: datetime,
) -> Submitted:
    """Validate, store approved and publish CollectionApproved; a repeated idempotency key gives
    the first submission back (and publishes nothing)."""
    if found := defects(collection):
        raise InvalidItems(found)
    if idempotency_key is not None and (
        earlier := await _earlier(database, sealer, collection, idempotency_key)
    ):
        return earlier
    collection_id = uuid4()
    event = approved_at_counter(collection, collection_id=collection_id, at=now)
    row = {
        "collection_id": collection_id,
        "channel": Channel.COUNTER.value,
        "person_id": collection.person_id,
        "document_type": collection.document_type.value,
        "region_code": collection.region_code,
        "items_sealed": sealer.seal(
            {item.value: v for item, v in event.items.items()}, context=context_of(collection_id)
        ),
        "key_id": sealer.key_id,
        "item_names": [item.value for item in event.items],
        "resolved_reasons": [reason.value for reason in event.resolved_reasons],
        "verified_statuses": [s.model_dump(mode="json") for s in event.verified_statuses],
        "handler": event.handler,
        "handled_at": event.handled_at,
        "state": ReviewState.APPROVED.value,
        "reviewer": event.reviewer,
        "reviewed_at": event.reviewed_at,
        "idempotency_key": idempotency_key,
    }
    try:
        async with unit_of_work(database, service=SERVICE) as uow:
            connection = await uow.session.connection()
            await connection.execute(sa.insert(collections).values(row))
            # The collection id as the event id: a re-run can never announce it twice.
            uow.publish_event(event, id=str(collection_id))
    except IntegrityError:  # the same key submitted concurrently: the other one won
        if idempotency_key is None:
            raise
        if earlier := await _earlier(database, sealer, collection, idempotency_key):
            return earlier
        raise
    return Submitted(collection_id, ReviewState.APPROVED, replayed=False)


async def _earlier(
    database: Database, sealer: Sealer, collection: CounterCollection, idempotency_key: str
) -> Submitted | None:
    query = sa.select(collections).where(
        collections.c.handler == collection.handler,
        collections.c.idempotency_key == idempotency_key,
    )
    async with database.engine.connect() as connection:
        row = (await connection.execute(query)).mappings().one_or_none()
    if row is None:
        return None
    if _as_submitted(row, sealer) != _as_submitted_now(collection):
        raise IdempotencyKeyReused()
    return Submitted(row["collection_id"], ReviewState(row["state"]), replayed=True)


def _as_submitted(row: Any, sealer: Sealer) -> tuple[Any, ...]:
    items = sealer.open(
        row["items_sealed"], key_id=row["key_id"], context=context_of(row["collection_id"])
    )
    return (
        row["person_id"],
        row["document_type"],
        row["region_code"],
        items,
        sorted(row["resolved_reasons"]),
        sorted(row["verified_statuses"], key=repr),
    )


def _as_submitted_now(collection: CounterCollection) -> tuple[Any, ...]:
    items = normalised(collection.items, document_type=collection.document_type)
    return (
        collection.person_id,
        collection.document_type.value,
        collection.region_code,
        items,
        sorted(reason.value for reason in collection.resolved_reasons),
        sorted((s.model_dump(mode="json") for s in collection.verified_statuses), key=repr),
    )
