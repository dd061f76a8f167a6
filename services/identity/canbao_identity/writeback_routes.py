"""The agency's list of write-backs (writeback.py; 44号 Art.22): what identity asked the business
systems to change and where each stands, for the county and its reviewers, through the gateway.

`state=overdue` is the disagreement that lasts: pending longer than
`IdentitySettings.writeback_overdue_days` (30 by default). The list is scoped to the caller's
region by the person's published region_code, newest request first, a page at a time (the cursor
is the last row's request time and ids)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from canbao_contracts.topics import FEEDBACK_SYSTEMS
from canbao_identity.routes import OutOfScope, ResourcesDep, within_region
from canbao_identity.settings import IdentitySettings
from canbao_identity.tables import persons, writebacks
from canbao_platform.problems import Problem
from canbao_platform.service_tokens import CallerDep, current_caller, require_role

router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(current_caller)])

WRITEBACK_ROLES: Final = ("county", "reviewer")
MAX_PAGE: Final = 200
State = Literal["pending", "overdue", "applied", "superseded", "refused"]


class WriteBack(BaseModel):
    feedback_id: UUID
    item: str
    collection_id: UUID
    person_id: UUID
    masked_name: str | None
    region_code: str | None
    system: str
    source_table: str
    column: str = Field(description="the system's column, e.g. aae005")
    state: str
    overdue: bool = Field(description="pending longer than the configured number of days")
    reason: str | None = Field(description="the system's reason for a refusal")
    requested_at: datetime
    settled_at: datetime | None


class WriteBackPage(BaseModel):
    items: list[WriteBack]
    next_cursor: str | None


class BadCursor(Problem):
    def __init__(self) -> None:
        super().__init__(422, "invalid-cursor", "分页游标无效 (invalid cursor)")


@router.get("/writebacks", response_model=WriteBackPage, summary="Write-backs to the systems")
async def list_writebacks(
    caller: CallerDep,
    resources: ResourcesDep,
    state: State | None = None,
    system: Literal["si_core", "medical", "card", "employment"] | None = None,
    region: str | None = Query(None, pattern=r"^[0-9]{2,6}$"),
    cursor: str | None = None,
    limit: int = 50,
) -> WriteBackPage:
    require_role(caller, *WRITEBACK_ROLES)
    assert system is None or system in FEEDBACK_SYSTEMS
    scope = region or caller.scope
    if not scope.startswith(caller.scope):
        raise OutOfScope(scope)
    settings = resources.settings
    assert isinstance(settings, IdentitySettings)
    now = datetime.now(UTC)
    due = now - timedelta(days=settings.writeback_overdue_days)
    query = (
        sa.select(writebacks, persons.c.region_code, persons.c.public_state)
        .join(persons, persons.c.person_id == writebacks.c.person_id)
        .order_by(
            writebacks.c.requested_at.desc(),
            writebacks.c.feedback_id.desc(),
            writebacks.c.item.desc(),
        )
        .limit(max(1, min(limit, MAX_PAGE)) + 1)
    )
    if scope:
        query = query.where(*within_region(persons.c.region_code, scope))
    if state == "overdue":
        query = query.where(writebacks.c.state == "pending", writebacks.c.requested_at < due)
    elif state is not None:
        query = query.where(writebacks.c.state == state)
    if system is not None:
        query = query.where(writebacks.c.system == system)
    if cursor is not None:
        at, feedback, item = _cursor(cursor)
        query = query.where(
            sa.tuple_(writebacks.c.requested_at, writebacks.c.feedback_id, writebacks.c.item)
            < sa.tuple_(sa.literal(at), sa.literal(feedback), sa.literal(item))
        )
    async with resources.database.sessions() as session:
        rows = (await (await session.connection()).execute(query)).all()
    page = rows[: max(1, min(limit, MAX_PAGE))]
    more = len(rows) > len(page)
    return WriteBackPage(
        items=[_item(row, due) for row in page],
        next_cursor=_encode(page[-1]) if more and page else None,
    )


def _item(row: Any, due: datetime) -> WriteBack:
    public = row.public_state or {}
    return WriteBack(
        feedback_id=row.feedback_id,
        item=row.item,
        collection_id=row.collection_id,
        person_id=row.person_id,
        masked_name=public.get("masked_name"),
        region_code=row.region_code,
        system=row.system,
        source_table=row.source_table,
        column=row.column_name,
        state=row.state,
        overdue=row.state == "pending" and row.requested_at < due,
        reason=row.reason,
        requested_at=row.requested_at,
        settled_at=row.settled_at,
    )


def _encode(row: Any) -> str:
    raw = json.dumps([row.requested_at.isoformat(), str(row.feedback_id), row.item])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _cursor(text: str) -> tuple[datetime, UUID, str]:
    try:
        at, feedback, item = json.loads(base64.urlsafe_b64decode(text.encode()))
        return datetime.fromisoformat(at), UUID(feedback), str(item)
    except (ValueError, TypeError, binascii.Error):
        raise BadCursor() from None
