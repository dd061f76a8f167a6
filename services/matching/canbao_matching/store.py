"""Reading and writing matching's state through the unit of work's session. Nothing here
commits: the consumed batch (or the re-check's unit of work) commits once."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_contracts.codes import SurveyReason
from canbao_contracts.events import (
    CollectionApproved,
    Fact,
    PersonRegistered,
    Verdict,
    VerifiedStatus,
)
from canbao_contracts.events.person_state import PersonState
from canbao_matching.rules import Collection, Situation
from canbao_matching.tables import collections, facts, persons

_FACT: Final[TypeAdapter[Fact]] = TypeAdapter(Fact)
_VERIFIED: Final = TypeAdapter(tuple[VerifiedStatus, ...])
COLLECTION_SYSTEM: Final = "collection"  # FactSource.system of a fact a collection gave


async def _execute(session: AsyncSession, statement: sa.Executable) -> sa.CursorResult[Any]:
    """Core statements run on the session's connection, in its transaction."""
    return await (await session.connection()).execute(statement)


async def save_person(session: AsyncSession, person: PersonState) -> None:
    """Keep identity's newest state of the person (every event but a merge carries all of it)."""
    state = person.model_dump(mode="json", exclude={"changed"})
    statement = insert(persons).values(person_id=person.person_id, state=state)
    await _execute(
        session,
        statement.on_conflict_do_update(
            index_elements=[persons.c.person_id], set_={"state": statement.excluded.state}
        ),
    )


async def retire_person(session: AsyncSession, retired: UUID, survivor: UUID) -> None:
    """A merged person is forgotten: no verdict of theirs is published again."""
    statement = insert(persons).values(person_id=retired, merged_into=survivor)
    await _execute(
        session,
        statement.on_conflict_do_update(
            index_elements=[persons.c.person_id],
            set_={
                "merged_into": survivor,
                "verdict": None,
                "in_scope": None,
                "registration": None,
                "survey_reasons": [],
                "recheck_on": None,
            },
        ),
    )


async def save_fact(session: AsyncSession, person_id: UUID, fact: Fact) -> bool:
    """Keep the fact if its revision is newer than the one held; False when it is not (a
    duplicate or a late copy: nothing changes)."""
    statement = insert(facts).values(
        fact_id=fact.fact_id, person_id=person_id, revision=fact.revision,
        retracted=fact.retracted, from_collection=fact.source.system == COLLECTION_SYSTEM,
        observed_at=fact.observed_at, body=fact.model_dump(mode="json"),
    )  # fmt: skip
    excluded = statement.excluded
    result = await _execute(
        session,
        statement.on_conflict_do_update(
            index_elements=[facts.c.fact_id],
            set_={
                "revision": excluded.revision,
                "retracted": excluded.retracted,
                "observed_at": excluded.observed_at,
                "body": excluded.body,
            },
            where=facts.c.revision < excluded.revision,
        ).returning(facts.c.fact_id),
    )
    return result.first() is not None


async def save_collection(session: AsyncSession, event: CollectionApproved) -> None:
    """Keep what matching needs of an approved collection; never its collected items."""
    assert event.person_id is not None
    await _execute(
        session,
        insert(collections)
        .values(
            collection_id=event.collection_id,
            person_id=event.person_id,
            reviewed_at=event.reviewed_at,
            resolved_reasons=[str(r) for r in event.resolved_reasons],
            verified_statuses=_VERIFIED.dump_python(event.verified_statuses, mode="json"),
        )
        .on_conflict_do_nothing(index_elements=[collections.c.collection_id]),
    )


async def ensure_person(session: AsyncSession, person_id: UUID) -> None:
    """A row to lock, for a fact or collection that arrives before the person does."""
    await _execute(
        session,
        insert(persons)
        .values(person_id=person_id)
        .on_conflict_do_nothing(index_elements=[persons.c.person_id]),
    )


class Loaded:
    """A person's situation as stored, locked for this transaction, with the last verdict."""

    def __init__(self, situation: Situation, previous: Verdict | None) -> None:
        self.situation, self.previous = situation, previous


async def load(session: AsyncSession, person_id: UUID) -> Loaded | None:
    """The person's situation (row locked: the consumer and the re-check never evaluate one
    person at once); None while identity has not published them or after they were merged."""
    row = (
        await _execute(
            session,
            sa.select(persons.c.state, persons.c.merged_into, persons.c.verdict)
            .where(persons.c.person_id == person_id)
            .with_for_update(),
        )
    ).first()
    if row is None or row.state is None or row.merged_into is not None:
        return None
    fact_rows = (
        await _execute(
            session,
            sa.select(
                facts.c.body, facts.c.retracted, facts.c.from_collection, facts.c.observed_at
            ).where(facts.c.person_id == person_id),
        )
    ).all()
    collection_rows = (
        await _execute(session,
            sa.select(collections.c.reviewed_at, collections.c.resolved_reasons,
                      collections.c.verified_statuses)
            .where(collections.c.person_id == person_id)
        )
    ).all()  # fmt: skip
    source_changes = [r.observed_at for r in fact_rows if not r.from_collection]
    situation = Situation(
        person=PersonRegistered.model_validate(row.state),
        facts=tuple(_FACT.validate_python(r.body) for r in fact_rows if not r.retracted),
        collections=tuple(
            Collection(
                reviewed_at=c.reviewed_at,
                resolved_reasons=tuple(SurveyReason(r) for r in c.resolved_reasons),
                verified_statuses=_VERIFIED.validate_python(c.verified_statuses),
            )
            for c in collection_rows
        ),
        latest_source_change=max(source_changes, default=None),
    )
    previous = None if row.verdict is None else Verdict.model_validate(row.verdict)
    return Loaded(situation, previous)


async def save_verdict(
    session: AsyncSession, person_id: UUID, verdict: Verdict | None, *,
    recheck_on: date | None, evaluated_at: datetime,
) -> None:  # fmt: skip
    values: dict[str, Any] = {
        "verdict": None if verdict is None else verdict.model_dump(mode="json"),
        "in_scope": verdict is not None,
        "region_code": None if verdict is None else verdict.region_code,
        "registration": None if verdict is None else str(verdict.registration),
        "survey_reasons": [] if verdict is None else [str(r) for r in verdict.survey_reasons],
        "recheck_on": recheck_on,
        "evaluated_at": evaluated_at,
    }
    await _execute(
        session, sa.update(persons).where(persons.c.person_id == person_id).values(values)
    )


async def due_for_recheck(session: AsyncSession, today: date, limit: int) -> list[UUID]:
    rows = await _execute(
        session,
        sa.select(persons.c.person_id)
        .where(persons.c.recheck_on <= today, persons.c.merged_into.is_(None))
        .order_by(persons.c.recheck_on)
        .limit(limit),
    )
    return [r.person_id for r in rows]
