"""Collections read back for staff: state, who and when, values masked (api.md); the reviewers'
queue of counter collections waiting for 复核, and a person's waiting values for the popup."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from canbao_contracts.codes import CertificateType, RegistrationItem
from canbao_contracts.id_numbers import mask_name
from canbao_platform.db import Database
from canbao_platform.sealing import Sealer
from canbao_survey.collections import RECHECK, ReviewState, batch_refusals, masked, risk_of
from canbao_survey.store import context_of
from canbao_survey.tables import collections, decisions, subjects

PAGE: Final = 50
# China Standard Time (no daylight saving): the working day a `date` filter means.
CHINA: Final = timezone(timedelta(hours=8))


def person_region() -> sa.ColumnElement[Any]:
    """Whose region a collection is (the reviewer's scope is checked against it): the person's
    region as survey last heard it from identity (registry.persons), else where the gateway
    placed them at submission (collections.placed_in)."""
    return sa.func.coalesce(
        subjects.c.region_code, collections.c.person_region, collections.c.region_code
    )


def with_person() -> sa.FromClause:
    return collections.outerjoin(subjects, subjects.c.person_id == collections.c.person_id)


def masked_items(values: dict[str, str]) -> list[dict[str, str]]:
    """`{"item", "code", "label", "value" (masked)}` in the order of the registration table."""
    return [
        {
            "item": item.value,
            "code": item.code,
            "label": item.label,
            "value": masked(item, values[item.value]),
        }
        for item in RegistrationItem
        if item.value in values
    ]


def refusals_of(row: Any) -> list[str]:
    return batch_refusals(
        person_id=row["person_id"],
        region_code=row["region_code"],
        item_names=list(row["item_names"]),
        resolved_reasons=list(row["resolved_reasons"]),
        verified_statuses=list(row["verified_statuses"]),
    )


def opened(row: Any, sealer: Sealer) -> dict[str, str]:
    values: dict[str, str] = sealer.open(
        row["items_sealed"], key_id=row["key_id"], context=context_of(row["collection_id"])
    )
    return values


class CollectionView(BaseModel):
    """A collection as staff reads it back: state, who and when, values masked."""

    collection_id: UUID
    channel: str
    person_id: UUID | None
    document_type: str
    items: list[dict[str, str]]  # {"item", "code", "label", "value" (masked)}
    resolved_reasons: list[str]
    verified_statuses: list[dict[str, Any]]
    state: str
    handler: str
    handled_at: datetime
    first_reviewer: str | None
    first_reviewed_at: datetime | None
    reviewer: str | None
    reviewed_at: datetime | None
    # Additive (复核): whose region it is, the person's masked name as identity has it, how it
    # is rechecked (`contact` may go in a day's batch), and the reviewer's comment.
    region_code: str | None = None
    masked_name: str | None = None
    risk: str | None = None
    needs_individual_review: list[str] = []
    comment: str | None = None


async def read_collection(
    database: Database, sealer: Sealer, collection_id: UUID
) -> CollectionView | None:
    query = (
        sa.select(
            collections,
            person_region().label("whose_region"),
            subjects.c.masked_name,
        )
        .select_from(with_person())
        .where(collections.c.collection_id == collection_id)
    )
    ledger = (
        sa.select(decisions.c.comment)
        .where(decisions.c.submission_id == collection_id, decisions.c.stage == RECHECK)
        .order_by(decisions.c.decision_id.desc())
        .limit(1)
    )
    async with database.engine.connect() as connection:
        row = (await connection.execute(query)).mappings().one_or_none()
        comment = (await connection.execute(ledger)).scalar_one_or_none()
    if row is None:
        return None
    return view_of(row, sealer, comment=comment)


def view_of(row: Any, sealer: Sealer, *, comment: str | None = None) -> CollectionView:
    values = opened(row, sealer)
    refusals = refusals_of(row)
    name = row["masked_name"] or (mask_name(values["name"]) if "name" in values else None)
    return CollectionView(
        collection_id=row["collection_id"],
        channel=row["channel"],
        person_id=row["person_id"],
        document_type=CertificateType(row["document_type"]).value,
        items=masked_items(values),
        resolved_reasons=list(row["resolved_reasons"]),
        verified_statuses=list(row["verified_statuses"]),
        state=row["state"],
        handler=row["handler"],
        handled_at=row["handled_at"],
        first_reviewer=row["first_reviewer"],
        first_reviewed_at=row["first_reviewed_at"],
        reviewer=row["reviewer"],
        reviewed_at=row["reviewed_at"],
        region_code=row["whose_region"],
        masked_name=name,
        risk=risk_of(refusals).value,
        needs_individual_review=refusals,
        comment=comment or None,
    )


# -- The reviewers' queue (复核) ---------------------------------------------------------------


def _cursor(row: Any) -> str:
    text = json.dumps([row["handled_at"].isoformat(), str(row["collection_id"])])
    return base64.urlsafe_b64encode(text.encode()).decode()


def _after(cursor: str) -> sa.ColumnElement[bool]:
    try:
        at, collection_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        after = (datetime.fromisoformat(str(at)), UUID(str(collection_id)))
    except (ValueError, TypeError):
        raise ValueError("cursor") from None
    if after[0].tzinfo is None:
        raise ValueError("cursor")
    key = sa.tuple_(collections.c.handled_at, collections.c.collection_id)
    return key > sa.tuple_(
        sa.literal(after[0], sa.DateTime(timezone=True)), sa.literal(after[1], PgUUID())
    )


async def list_collections(
    database: Database,
    sealer: Sealer,
    *,
    region: str,
    state: ReviewState | None,
    handler: str | None,
    day: date | None,
    cursor: str | None,
    limit: int = PAGE,
) -> dict[str, Any]:
    """Counter collections of `region` (a GB/T 2260 prefix the caller covers), oldest first,
    page by page (keyset on handled_at, collection_id; ValueError for a bad cursor)."""
    query = (
        sa.select(collections, person_region().label("whose_region"), subjects.c.masked_name)
        .select_from(with_person())
        .where(collections.c.channel == "counter", person_region().like(region + "%"))
        .order_by(collections.c.handled_at, collections.c.collection_id)
        .limit(limit + 1)
    )
    if state is not None:
        query = query.where(collections.c.state == state.value)
    if handler:
        query = query.where(collections.c.handler == handler)
    if day is not None:
        start = datetime.combine(day, time(), tzinfo=CHINA)
        query = query.where(
            collections.c.handled_at >= start, collections.c.handled_at < start + timedelta(1)
        )
    if cursor:
        query = query.where(_after(cursor))
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    page = rows[:limit]
    return {
        "items": [view_of(row, sealer).model_dump(mode="json") for row in page],
        "next": _cursor(page[-1]) if len(rows) > limit else None,
    }


async def pending_of(database: Database, sealer: Sealer, person_id: UUID) -> dict[str, Any]:
    """The person's collected values waiting for 复核 (the popup shows them as pending), oldest
    first, with whose region the person is (for the caller's scope)."""
    query = (
        sa.select(collections, person_region().label("whose_region"))
        .select_from(with_person())
        .where(
            collections.c.person_id == person_id,
            collections.c.state == ReviewState.SUBMITTED.value,
        )
        .order_by(collections.c.handled_at, collections.c.collection_id)
    )
    region = sa.select(subjects.c.region_code).where(subjects.c.person_id == person_id)
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
        known = (await connection.execute(region)).scalar_one_or_none()
    pending = [
        {
            **item,
            "collection_id": str(row["collection_id"]),
            "state": row["state"],
            "submitted_at": row["handled_at"].isoformat(),
        }
        for row in rows
        for item in masked_items(opened(row, sealer))
    ]
    return {"person_id": str(person_id), "region_code": known, "pending": pending}
