"""Collections read back for staff: state, who and when, values masked (api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel

from canbao_contracts.codes import CertificateType, RegistrationItem
from canbao_platform.db import Database
from canbao_platform.sealing import Sealer
from canbao_survey.collections import masked
from canbao_survey.store import context_of
from canbao_survey.tables import collections


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


async def read_collection(
    database: Database, sealer: Sealer, collection_id: UUID
) -> CollectionView | None:
    query = sa.select(collections).where(collections.c.collection_id == collection_id)
    async with database.engine.connect() as connection:
        row = (await connection.execute(query)).mappings().one_or_none()
    if row is None:
        return None
    values = sealer.open(
        row["items_sealed"], key_id=row["key_id"], context=context_of(collection_id)
    )
    items = [
        {
            "item": item.value,
            "code": item.code,
            "label": item.label,
            "value": masked(item, values[item.value]),
        }
        for item in RegistrationItem
        if item.value in values
    ]
    return CollectionView(
        collection_id=collection_id,
        channel=row["channel"],
        person_id=row["person_id"],
        document_type=CertificateType(row["document_type"]).value,
        items=items,
        resolved_reasons=list(row["resolved_reasons"]),
        verified_statuses=list(row["verified_statuses"]),
        state=row["state"],
        handler=row["handler"],
        handled_at=row["handled_at"],
        first_reviewer=row["first_reviewer"],
        first_reviewed_at=row["first_reviewed_at"],
        reviewer=row["reviewer"],
        reviewed_at=row["reviewed_at"],
    )
