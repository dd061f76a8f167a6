"""Collections in the database: a counter collection stored, encrypted, `submitted`, to wait for
its 复核 (recheck.py decides it and announces the passed ones through the outbox)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from canbao_contracts.codes import RegistrationItem
from canbao_contracts.collected_items import normalised
from canbao_contracts.events.base import table_position
from canbao_contracts.events.vocabulary import Channel
from canbao_platform.db import Database
from canbao_platform.problems import InvalidItems
from canbao_platform.sealing import Sealer
from canbao_survey.collections import CounterCollection, ReviewState, defects, placed_in
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
    """Validate and store as submitted, for a reviewer's 复核 (nothing is published yet); a
    repeated idempotency key gives the first submission back, in its state now."""
    if found := defects(collection):
        raise InvalidItems(found)
    if idempotency_key is not None and (
        earlier := await _earlier(database, sealer, collection, idempotency_key)
    ):
        return earlier
    collection_id = uuid4()
    items = {
        RegistrationItem(name): value
        for name, value in normalised(
            collection.items, document_type=collection.document_type
        ).items()
    }
    row = {
        "collection_id": collection_id,
        "channel": Channel.COUNTER.value,
        "person_id": collection.person_id,
        "document_type": collection.document_type.value,
        "region_code": collection.region_code,
        "items_sealed": sealer.seal(
            {item.value: v for item, v in items.items()}, context=context_of(collection_id)
        ),
        "key_id": sealer.key_id,
        "item_names": [item.value for item in sorted(items, key=table_position)],
        "resolved_reasons": [
            reason.value for reason in sorted(collection.resolved_reasons, key=table_position)
        ],
        "verified_statuses": [s.model_dump(mode="json") for s in collection.verified_statuses],
        "handler": collection.handler,
        "handled_at": now,
        "state": ReviewState.SUBMITTED.value,
        "idempotency_key": idempotency_key,
        "person_region": placed_in(collection),
    }
    try:
        async with database.engine.begin() as connection:
            await connection.execute(sa.insert(collections).values(row))
    except IntegrityError:  # the same key submitted concurrently: the other one won
        if idempotency_key is None:
            raise
        if earlier := await _earlier(database, sealer, collection, idempotency_key):
            return earlier
        raise
    return Submitted(collection_id, ReviewState.SUBMITTED, replayed=False)


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
