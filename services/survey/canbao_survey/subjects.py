"""What survey keeps of identity's people (registry.persons) and matching's verdicts
(registry.statuses): who needs a survey and why, with the gaps and the masked name, so that lists
are made from survey's own tables (architecture.md "Each service owns its data"), and the tasks
of people who no longer need one close by themselves (44号 §15: the list is kept current).

Events of one person arrive in order on their partition, but a redelivered or replayed older one
may come late: each side keeps only what is newer than what it holds (the envelope's time for a
person, `evaluated_at` for a verdict).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_contracts.events import (
    PersonDeceased,
    PersonRegistered,
    PersonsMerged,
    PersonUpdated,
    StatusesChanged,
    StatusesWithdrawn,
)
from canbao_contracts.events.person_state import PersonState
from canbao_platform.messaging import Handler, InboundMessage, UnitOfWork
from canbao_survey.tables import subjects, tasks
from canbao_survey.tasks import ClosedReason, TaskState

log = logging.getLogger(__name__)

# Tasks nobody has worked on yet close when their reason goes; a submission under review goes on
# (the surveyor's work is not thrown away: the reviewers see the person's current record).
CLOSABLE: Final = (TaskState.OPEN.value, TaskState.ASSIGNED.value)
_EMPTY: Final[dict[str, Any]] = {
    "household_registered": False,
    "deceased": False,
    "missing": [],
    "inaccurate": [],
    "in_scope": True,
    "needs_survey": False,
    "survey_reasons": [],
    "statuses": {},
}


async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
    envelope, event = message.decode()
    session = await uow.session.connection()
    match event:
        case PersonRegistered() | PersonUpdated() | PersonDeceased():
            await save_person(session, event, at=envelope.time)
        case PersonsMerged():
            await retire(session, event.merged_person_id, event.surviving_person_id)
        case StatusesChanged():
            await save_verdict(session, event)
        case StatusesWithdrawn():
            await withdraw(session, event)
        case _:
            log.warning("ignored %s on %s", event.type, message.topic)


HANDLER: Handler = handle


async def save_person(session: AsyncConnection, person: PersonState, *, at: datetime) -> None:
    values = {
        "region_code": person.region_code,
        "household_registered": person.household_registered_locally,
        "deceased": person.deceased,
        "masked_name": person.masked_name,
        "missing": [item.value for item in person.missing],
        "inaccurate": [{"item": i.item.value, "reason": i.reason} for i in person.inaccurate],
        "person_at": at,
    }
    statement = insert(subjects).values(person_id=person.person_id, **{**_EMPTY, **values})
    statement = statement.on_conflict_do_update(
        index_elements=[subjects.c.person_id],
        set_=values,
        where=sa.or_(subjects.c.person_at.is_(None), subjects.c.person_at <= at),
    )
    await session.execute(statement)
    if person.deceased:
        await close_tasks(session, person.person_id, ClosedReason.DECEASED)
    elif person.region_code is not None:  # moved out of the division the task was listed for
        await close_tasks(
            session, person.person_id, ClosedReason.MOVED_OUT, unless_region=person.region_code
        )
    await _refresh_task_gaps(session, person.person_id)


async def save_verdict(session: AsyncConnection, changed: StatusesChanged) -> None:
    verdict = changed.verdict
    values = {
        "in_scope": True,
        "needs_survey": verdict.needs_survey,
        "survey_reasons": [reason.value for reason in verdict.survey_reasons],
        "statuses": {i.value: (c.value if c else None) for i, c in verdict.statuses.items()},
        "registration": verdict.registration.value,
        "statuses_at": changed.evaluated_at,
    }
    statement = insert(subjects).values(person_id=changed.person_id, **{**_EMPTY, **values})
    statement = statement.on_conflict_do_update(
        index_elements=[subjects.c.person_id],
        set_=values,
        where=sa.or_(
            subjects.c.statuses_at.is_(None), subjects.c.statuses_at <= changed.evaluated_at
        ),
    )
    await session.execute(statement)
    if not verdict.needs_survey:
        await close_tasks(session, changed.person_id, ClosedReason.RESOLVED)
    else:
        await session.execute(
            sa.update(tasks)
            .where(
                tasks.c.person_id == changed.person_id,
                tasks.c.state.in_(
                    [
                        s.value
                        for s in TaskState
                        if s is not TaskState.APPROVED and s is not TaskState.CLOSED
                    ]
                ),
            )
            .values(survey_reasons=values["survey_reasons"])
        )


async def withdraw(session: AsyncConnection, withdrawn: StatusesWithdrawn) -> None:
    await session.execute(
        sa.update(subjects)
        .where(
            subjects.c.person_id == withdrawn.person_id,
            sa.or_(
                subjects.c.statuses_at.is_(None), subjects.c.statuses_at <= withdrawn.evaluated_at
            ),
        )
        .values(
            in_scope=False,
            needs_survey=False,
            survey_reasons=[],
            statuses_at=withdrawn.evaluated_at,
        )
    )
    await close_tasks(session, withdrawn.person_id, ClosedReason.LEFT_SCOPE)


async def retire(session: AsyncConnection, retired: UUID, survivor: UUID) -> None:
    """A merged person is forgotten; the survivor's own verdict lists them again if needed."""
    statement = insert(subjects).values(
        person_id=retired, merged_into=survivor, **{**_EMPTY, "in_scope": False}
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[subjects.c.person_id],
            set_={"merged_into": survivor, "in_scope": False, "needs_survey": False},
        )
    )
    await close_tasks(session, retired, ClosedReason.MERGED)


async def close_tasks(
    session: AsyncConnection,
    person_id: UUID,
    reason: ClosedReason,
    *,
    unless_region: str | None = None,
) -> None:
    condition = sa.and_(tasks.c.person_id == person_id, tasks.c.state.in_(CLOSABLE))
    if unless_region is not None:
        condition = sa.and_(condition, sa.func.left(unless_region, 6) != tasks.c.region_code)
    await session.execute(
        sa.update(tasks)
        .where(condition)
        .values(
            state=TaskState.CLOSED.value,
            closed_reason=reason.value,
            version=tasks.c.version + 1,
            updated_at=sa.func.now(),
        )
    )


async def _refresh_task_gaps(session: AsyncConnection, person_id: UUID) -> None:
    """A waiting task shows the person's current gaps (what is missing changes as sources and
    counters fill it)."""
    await session.execute(
        sa.update(tasks)
        .where(
            tasks.c.person_id == person_id,
            tasks.c.state.in_(CLOSABLE),
            subjects.c.person_id == tasks.c.person_id,  # UPDATE … FROM subjects
        )
        .values(missing=subjects.c.missing, inaccurate=subjects.c.inaccurate)
    )
