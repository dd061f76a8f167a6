"""Every review step about one person (44号 Art.20, 参保信息变更情况; the gateway's history of a
person): the tasks about them (household survey, self-service correction, change registration)
with each submission — who submitted, when, through which channel, which items (never the
values) — and every decision of the ledger on it (初审, 审定, 复核); and the counter collections
about them with theirs (the ledger names a collection by its collection_id, domain.md §4).

A person registered by a collection is not named by it (person_id null: a new registration);
identity knows which collection registered them, so the caller may name collections too
(`collection_id`): those, and the submissions that became them, are included as well. And a
person merged into this one (one person registered twice) has steps under their old person_id:
the caller may name those too (`merged`).

Read only; who may read is the gateway's and this route's role check. The person's region is the
gateway's check (it resolved the person and their region from identity); survey does not narrow
the steps by region: a person who moved keeps the history made where they lived before."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from canbao_platform.db import Database
from canbao_platform.service import Resources
from canbao_platform.service_tokens import CallerDep, current_caller, require_role
from canbao_survey.tables import collections, decisions, submissions, tasks

router = APIRouter(
    prefix="/internal/survey", tags=["survey"], dependencies=[Depends(current_caller)]
)
# The staff who work on one person's registration (the gateway's history roles).
STEP_ROLES: Final = ("counter", "reviewer", "platform", "county")
MAX_COLLECTIONS: Final = 100
MAX_MERGED: Final = 20


class DecisionStep(BaseModel):
    """A row of the insert-only ledger."""

    stage: str = Field(description="review (初审), approve (审定), recheck (复核)")
    decision: str = Field(description="pass, approve, reject")
    decided_by: str
    decided_at: datetime
    comment: str


class SubmissionStep(BaseModel):
    submission_id: UUID
    submitted_by: str = Field(description="AAE011")
    submitted_at: datetime
    channel: str = Field(description="the task's origin: survey, kiosk, mobile, platform")
    item_names: list[str]
    state: str
    collection_id: UUID | None = Field(description="the collection it became once approved")
    decisions: list[DecisionStep]


class TaskSteps(BaseModel):
    task_id: UUID
    channel: str = Field(description="survey, self, change")
    origin: str
    state: str
    created_at: datetime
    submissions: list[SubmissionStep]


class CollectionSteps(BaseModel):
    collection_id: UUID
    channel: str
    state: str
    handler: str = Field(description="AAE011")
    handled_at: datetime = Field(description="AAE036")
    item_names: list[str]
    reviewer: str | None = Field(description="AAE014")
    reviewed_at: datetime | None = Field(description="AAE015")
    decisions: list[DecisionStep]


class PersonSteps(BaseModel):
    person_id: UUID
    tasks: list[TaskSteps]
    collections: list[CollectionSteps]


@router.get(
    "/persons/{person_id}/steps",
    summary="Every review step about a person: tasks, submissions, ledger, counter collections",
    responses={
        401: {"description": "service-token-invalid: not a call signed by the gateway"},
        403: {"description": "caller-not-allowed"},
    },
)
async def get_person_steps(
    person_id: UUID,
    caller: CallerDep,
    request: Request,
    collection_id: Annotated[list[UUID], Query(max_length=MAX_COLLECTIONS)] = [],  # noqa: B006
    merged: Annotated[list[UUID], Query(max_length=MAX_MERGED)] = [],  # noqa: B006
) -> PersonSteps:
    require_role(caller, *STEP_ROLES)
    resources: Resources = request.app.state.resources
    return await person_steps(resources.database, person_id, collection_id, merged)


async def person_steps(
    database: Database,
    person_id: UUID,
    collection_ids: Sequence[UUID] = (),
    merged: Sequence[UUID] = (),
) -> PersonSteps:
    """Four reads, whatever the number of tasks: tasks, their submissions, collections, and the
    ledger rows of all of those."""
    named, persons = list(collection_ids), [person_id, *merged]
    async with database.engine.connect() as connection:
        submission_rows = (
            (
                await connection.execute(
                    sa.select(submissions, tasks.c.origin)
                    .join(tasks, tasks.c.task_id == submissions.c.task_id)
                    .where(
                        sa.or_(
                            tasks.c.person_id.in_(persons),
                            submissions.c.collection_id.in_(named),
                        )
                    )
                    .order_by(submissions.c.submitted_at)
                )
            )
            .mappings()
            .all()
        )
        task_ids = {row["task_id"] for row in submission_rows}
        task_rows = (
            (
                await connection.execute(
                    sa.select(tasks)
                    .where(sa.or_(tasks.c.person_id.in_(persons), tasks.c.task_id.in_(task_ids)))
                    .order_by(tasks.c.created_at)
                )
            )
            .mappings()
            .all()
        )
        collection_rows = (
            (
                await connection.execute(
                    sa.select(collections)
                    .where(
                        sa.or_(
                            collections.c.person_id.in_(persons),
                            collections.c.collection_id.in_(named),
                        )
                    )
                    .order_by(collections.c.handled_at)
                )
            )
            .mappings()
            .all()
        )
        ledger = await _ledger(
            connection,
            [r["submission_id"] for r in submission_rows]
            + [r["collection_id"] for r in collection_rows],
        )
    by_task: dict[UUID, list[SubmissionStep]] = {}
    for row in submission_rows:
        by_task.setdefault(row["task_id"], []).append(
            SubmissionStep(
                submission_id=row["submission_id"],
                submitted_by=row["submitted_by"],
                submitted_at=row["submitted_at"],
                channel=row["origin"],
                item_names=list(row["item_names"]),
                state=row["state"],
                collection_id=row["collection_id"],
                decisions=ledger.get(row["submission_id"], []),
            )
        )
    return PersonSteps(
        person_id=person_id,
        tasks=[
            TaskSteps(
                task_id=row["task_id"],
                channel=row["channel"],
                origin=row["origin"],
                state=row["state"],
                created_at=row["created_at"],
                submissions=by_task.get(row["task_id"], []),
            )
            for row in task_rows
        ],
        collections=[
            CollectionSteps(
                collection_id=row["collection_id"],
                channel=row["channel"],
                state=row["state"],
                handler=row["handler"],
                handled_at=row["handled_at"],
                item_names=list(row["item_names"]),
                reviewer=row["reviewer"],
                reviewed_at=row["reviewed_at"],
                decisions=ledger.get(row["collection_id"], []),
            )
            for row in collection_rows
        ],
    )


async def _ledger(connection: Any, ids: Iterable[UUID]) -> dict[UUID, list[DecisionStep]]:
    wanted = list(ids)
    if not wanted:
        return {}
    rows = (
        (
            await connection.execute(
                sa.select(decisions)
                .where(decisions.c.submission_id.in_(wanted))
                .order_by(decisions.c.decision_id)
            )
        )
        .mappings()
        .all()
    )
    found: dict[UUID, list[DecisionStep]] = {}
    for row in rows:
        found.setdefault(row["submission_id"], []).append(
            DecisionStep(
                stage=row["stage"],
                decision=row["decision"],
                decided_by=row["decided_by"],
                decided_at=row["decided_at"],
                comment=row["comment"],
            )
        )
    return found
