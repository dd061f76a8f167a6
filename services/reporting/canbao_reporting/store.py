"""Reading and adding person states (tables.person_states). The caller's unit of work commits."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_contracts.events import Verdict
from canbao_reporting.quarterly_table import Counted
from canbao_reporting.tables import person_states


async def apply_state(
    session: AsyncSession, person_id: UUID, verdict: Verdict | None, *,
    evaluated_at: datetime, arrived_at: datetime,
) -> bool:  # fmt: skip
    """Add the person's new state (None: withdrawn) unless the newest applied is as new or newer
    (a duplicate, or an older verdict overtaken by a newer one); True when added."""
    # One person's events come from one partition, handled by one consumer at a time; the lock
    # keeps two instances from interleaving during a rebalance all the same.
    connection = await session.connection()  # Core statements: SQLModel's session warns on them
    await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(person_id))))
    newest = (
        await connection.execute(
            sa.select(person_states.c.evaluated_at, person_states.c.valid_from)
            .where(person_states.c.person_id == person_id)
            .order_by(person_states.c.id.desc())
            .limit(1)
        )
    ).first()
    if newest is not None and newest.evaluated_at >= evaluated_at:
        return False
    # Never before the state it supersedes, whatever this instance's clock says: the states of a
    # person follow each other in time as they do in `id`.
    valid_from = max(arrived_at, newest.valid_from) if newest is not None else arrived_at
    await connection.execute(
        sa.insert(person_states).values(
            person_id=person_id, valid_from=valid_from, evaluated_at=evaluated_at,
            verdict=None if verdict is None else verdict.model_dump(mode="json"),
        )
    )  # fmt: skip
    return True


def _lock_key(person_id: UUID) -> int:
    return int.from_bytes(person_id.bytes[:8], "big", signed=True)


async def people_as_of(session: AsyncSession, before: datetime | None) -> list[Counted]:
    """Everyone in the table: each person's newest state applied before `before` (None: all
    applied so far), unless that state is a withdrawal."""
    applied = sa.true() if before is None else person_states.c.valid_from < before
    newest = (
        sa.select(person_states.c.verdict)
        .where(applied)
        .ext(distinct_on(person_states.c.person_id))
        .order_by(person_states.c.person_id, person_states.c.id.desc())
        .subquery()
    )
    connection = await session.connection()
    rows = await connection.scalars(
        sa.select(newest.c.verdict).where(newest.c.verdict.is_not(None))
    )
    # The verdict does not publish the cities of a person's enrolments (yet): each counts in
    # column 3 of their own city (quarterly_table's docstring, "Local").
    return [Counted(Verdict.model_validate(verdict)) for verdict in rows]
