"""Reading and writing matching's state through a unit of work's session. Nothing here
commits: the consumed batch (or the evaluator's unit of work) commits once."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, NamedTuple
from uuid import UUID

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from canbao_contracts.codes import SourceSystem, SurveyReason
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
from canbao_platform import bulk
from canbao_platform.messaging import UnitOfWork

_FACT: Final[TypeAdapter[Fact]] = TypeAdapter(Fact)
_VERIFIED: Final = TypeAdapter(tuple[VerifiedStatus, ...])


async def _execute(session: AsyncSession, statement: sa.Executable, params: Any = None) -> Any:
    """Core statements run on the session's connection, in its transaction."""
    return await (await session.connection()).execute(statement, params)


# -- Written by the consumer: what arrived, and that the person is to be evaluated ---------------
#
# The consumer's hot path costs no round trip per event: each event hands its row to the
# batch's unit of work (`UnitOfWork.buffer`), and when the batch commits all its facts are
# written by one statement, and all its people marked pending by another. Rows buffered are
# invisible until then: nothing in the consumer reads them back, and the evaluator reads what
# was committed.


class FactRow(NamedTuple):
    fact_id: UUID
    person_id: UUID
    revision: int
    retracted: bool
    from_collection: bool  # source.system = "collection"
    observed_at: datetime
    published_at: datetime  # the message's Kafka timestamp
    body: str  # the Fact as the contract serialises it (JSON)


class PendingMark(NamedTuple):
    person_id: UUID
    observed_at: datetime | None  # the source change that led here, if one did
    published_at: datetime  # the Kafka timestamp of the message that marked them
    state: str | None  # identity's newest PersonState (JSON), if the event carried it


# Keep each fact if its revision is newer than the one held, and mark the people whose facts
# changed pending (a merged person never: they are not evaluated again), with the newest source
# change among them. `excluded` rows are the batch's, one per fact (SaveFacts keeps the newest).
# A person already pending keeps the time they became so (`pending_since`: the evaluator takes
# the longest-waiting first), and the newest message that marked them is remembered
# (`pending_published_at`: Evaluator).
_NEWEST_MARK: Final = """
    pending_observed_at = greatest(persons.pending_observed_at, excluded.pending_observed_at),
    pending_published_at = greatest(persons.pending_published_at, excluded.pending_published_at),
    pending_since = CASE WHEN persons.pending THEN persons.pending_since
                         ELSE excluded.pending_since END"""
_FACT_COLUMNS: Final = bulk.columns(facts, FactRow._fields)
_SAVE_FACTS: Final = sa.text(f"""
    WITH saved AS (
        {bulk.insert("facts", _FACT_COLUMNS)}
        ON CONFLICT (fact_id) DO UPDATE
            SET revision = excluded.revision, retracted = excluded.retracted,
                observed_at = excluded.observed_at, published_at = excluded.published_at,
                body = excluded.body
            WHERE facts.revision < excluded.revision
        RETURNING person_id, observed_at, published_at)
    INSERT INTO persons (person_id, pending, pending_observed_at, pending_published_at,
                         pending_since)
    SELECT person_id, true, max(observed_at), max(published_at), statement_timestamp()
    FROM saved GROUP BY person_id
    ON CONFLICT (person_id) DO UPDATE
        SET pending = persons.merged_into IS NULL,
            {_NEWEST_MARK}
""")

# The people to evaluate again, created if a fact or a collection came before identity's
# state; a state replaces the one held, a mark without one keeps it. A PendingMark's values, in
# its order.
_MARK_COLUMNS: Final = bulk.columns(
    persons, ("person_id", "pending_observed_at", "pending_published_at", "state")
)
_MARK_PENDING: Final = sa.text(f"""
    INSERT INTO persons (person_id, pending, pending_observed_at, pending_published_at,
                         pending_since, state)
    SELECT v.person_id, true, v.pending_observed_at, v.pending_published_at,
           statement_timestamp(), v.state::jsonb
    FROM {bulk.rows(_MARK_COLUMNS)}
    ON CONFLICT (person_id) DO UPDATE
        SET pending = persons.merged_into IS NULL,  -- a merged person is never evaluated
            {_NEWEST_MARK},
            state = coalesce(excluded.state, persons.state)
""")


class SaveFacts:
    """The batch's facts by one statement (a BulkWrite of the consumer's unit of work), with
    duplicates and reordering tolerated (architecture.md, "at-least-once in").

    `ON CONFLICT DO UPDATE` cannot change one row twice in a statement, so the batch's copies of
    a fact are reduced first to the one applying them in order would keep: the highest
    revision, the first of equal ones (a later copy of the same revision changes nothing).
    The person's pending mark then carries that revision's observed_at alone, not the older
    revisions' that the same batch superseded: the newest change is the one it measures."""

    def write(self, session: Session, rows: Sequence[FactRow]) -> None:
        newest: dict[UUID, FactRow] = {}
        for row in rows:
            held = newest.get(row.fact_id)
            if held is None or held.revision < row.revision:
                newest[row.fact_id] = row
        # In key order, so that two transactions upserting the same rows lock them alike.
        session.execute(
            _SAVE_FACTS, bulk.arrays_of([newest[k] for k in sorted(newest)], _FACT_COLUMNS)
        )


class MarkPending:
    """The batch's people to evaluate again by one statement (a BulkWrite of the consumer's unit
    of work): per person, the last state in the batch's order (a mark without one keeps the
    one before, as `coalesce` does in the statement), the newest observed_at and the newest
    published_at."""

    def write(self, session: Session, rows: Sequence[PendingMark]) -> None:
        people: dict[UUID, PendingMark] = {}
        for row in rows:
            held = people.get(row.person_id)
            if held is not None:
                observed = [t for t in (held.observed_at, row.observed_at) if t is not None]
                row = PendingMark(
                    row.person_id,
                    max(observed, default=None),
                    max(held.published_at, row.published_at),
                    held.state if row.state is None else row.state,
                )
            people[row.person_id] = row
        session.execute(
            _MARK_PENDING, bulk.arrays_of([people[k] for k in sorted(people)], _MARK_COLUMNS)
        )


_FACTS: Final = SaveFacts()
_PENDING: Final = MarkPending()


def mark_pending(
    uow: UnitOfWork,
    person_id: UUID,
    published_at: datetime,
    observed_at: datetime | None = None,
    state: str | None = None,
) -> None:
    """The person is to be evaluated again (creating their row if a collection came first), by
    the message published at `published_at`; `observed_at` is the source change that led here,
    kept for the delay it measures; `state` (JSON) replaces the person's state when given.
    Written when the batch commits."""
    uow.buffer(_PENDING, PendingMark(person_id, observed_at, published_at, state))


def save_person(uow: UnitOfWork, person: PersonState, published_at: datetime) -> None:
    """Keep identity's newest state of the person (every event but a merge carries all of it)."""
    mark_pending(
        uow, person.person_id, published_at, state=person.model_dump_json(exclude={"changed"})
    )


def save_fact(uow: UnitOfWork, person_id: UUID, fact: Fact, published_at: datetime) -> None:
    """Keep the fact and mark the person pending, when the batch commits, if its revision is
    newer than the one held (a duplicate or a late copy of an older one changes nothing)."""
    uow.buffer(
        _FACTS,
        FactRow(
            fact.fact_id,
            person_id,
            fact.revision,
            fact.retracted,
            fact.source.system == SourceSystem.COLLECTION,
            fact.observed_at,
            published_at,
            fact.model_dump_json(),
        ),
    )


async def retire_person(session: AsyncSession, retired: UUID, survivor: UUID) -> None:
    """A merged person is forgotten: no verdict of theirs is published again.

    Rare, so written at once rather than buffered: the batch's buffered facts and states of the
    retired person are written after it whatever their order in the batch, and that comes to
    the same: they leave a merged person unpending (`pending = merged_into IS NULL`) and touch
    none of the columns cleared here."""
    statement = insert(persons).values(person_id=retired, merged_into=survivor)
    cleared: dict[str, Any] = {
        "merged_into": survivor,
        "verdict": None,
        "in_scope": None,
        "registration": None,
        "survey_reasons": [],
        "recheck_on": None,
        "pending": False,
        "pending_since": None,
        "pending_published_at": None,
    }
    await _execute(
        session, statement.on_conflict_do_update(index_elements=[persons.c.person_id], set_=cleared)
    )


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


# -- Read and written by the evaluator -----------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """A person's stored state, as read; parsed by `situation()` inside the evaluator's
    per-person error handling, so one unreadable record fails alone."""

    person_id: UUID
    state_json: str | None  # None while identity has not published the person
    fact_rows: list[Any]
    collection_rows: list[Any]
    previous_json: str | None  # the verdict last published, as stored
    source_observed_at: datetime | None

    def situation(self) -> Situation | None:
        if self.state_json is None:
            return None
        source_changes = [f.observed_at for f in self.fact_rows if not f.from_collection]
        return Situation(
            person=PersonRegistered.model_validate_json(self.state_json),
            facts=tuple(_FACT.validate_json(f.body) for f in self.fact_rows if not f.retracted),
            collections=tuple(
                Collection(
                    reviewed_at=c.reviewed_at,
                    resolved_reasons=tuple(SurveyReason(r) for r in c.resolved_reasons),
                    verified_statuses=_VERIFIED.validate_python(c.verified_statuses),
                )
                for c in self.collection_rows
            ),
            latest_source_change=max(source_changes, default=None),
        )

    def previous(self) -> Verdict | None:
        """Parsed only when a change is published: most evaluations change nothing."""
        if self.previous_json is None:
            return None
        return Verdict.model_validate_json(self.previous_json)

    def unchanged(self, verdict: Verdict) -> bool:
        if self.previous_json is None:
            return False
        previous: dict[str, Any] = json.loads(self.previous_json)
        return verdict.model_dump(mode="json") == previous


# What take_due reads of a person; JSON columns as text: pydantic parses JSON faster than
# json.loads + validation.
_TAKEN: Final = (
    persons.c.person_id,
    sa.cast(persons.c.state, sa.Text).label("state"),
    sa.cast(persons.c.verdict, sa.Text).label("verdict"),
    persons.c.pending_observed_at,
)


def take_selections(
    today: date, *, consumed_through: datetime | None, max_wait_s: float
) -> tuple[sa.Select[Any], ...]:
    """What take_due takes from, in its order. Each selection is a range of its own index
    (partial ones on pending, by pending_since and by pending_published_at; one on recheck_on)
    read from its start, so a take reads the rows it takes however many people there are or
    wait. (Filtered on pending_published_at while read in pending_since order, a take would read
    every waiting person's entry: half a million while a province's first load streams in.)"""
    pending = sa.select(*_TAKEN).where(persons.c.pending, persons.c.merged_into.is_(None))
    due = sa.select(*_TAKEN).where(persons.c.recheck_on <= today, persons.c.merged_into.is_(None))
    if consumed_through is None:
        return pending.order_by(persons.c.pending_since), due
    now = sa.func.statement_timestamp(type_=sa.DateTime(timezone=True))
    return (
        pending.where(persons.c.pending_since <= now - timedelta(seconds=max_wait_s))
        .order_by(persons.c.pending_since),
        pending.where(persons.c.pending_published_at <= consumed_through)
        .order_by(persons.c.pending_published_at),
        due,
    )  # fmt: skip


async def take_due(
    session: AsyncSession,
    today: date,
    limit: int,
    *,
    consumed_through: datetime | None = None,
    max_wait_s: float = 0.0,
) -> list[Loaded]:
    """Up to `limit` people to evaluate (pending, the longest-waiting first, or due for the
    daily re-check), locked for this transaction and skipped by any other evaluator, with
    everything the rules need. With `consumed_through`, a pending person waits until it is past
    the newest message that marked them, or for `max_wait_s` at most (Evaluator): those who have
    waited that long first, then those past it, the oldest newest mark first."""
    selections = take_selections(today, consumed_through=consumed_through, max_wait_s=max_wait_s)
    rows: list[Any] = []
    for selection in selections:
        if len(rows) < limit:
            taken = {r.person_id for r in rows}
            query = selection.limit(limit - len(rows)).with_for_update(skip_locked=True)
            if taken:
                query = query.where(persons.c.person_id.not_in(taken))
            rows += (await _execute(session, query)).all()
    ids = [r.person_id for r in rows]
    held: dict[UUID, list[Any]] = defaultdict(list)
    body = sa.cast(facts.c.body, sa.Text).label("body")
    for fact in await _execute(
        session,
        sa.select(
            facts.c.person_id, body, facts.c.retracted, facts.c.from_collection, facts.c.observed_at
        ).where(facts.c.person_id.in_(ids)),
    ):
        held[fact.person_id].append(fact)
    approved: dict[UUID, list[Any]] = defaultdict(list)
    for c in await _execute(
        session, sa.select(collections).where(collections.c.person_id.in_(ids))
    ):
        approved[c.person_id].append(c)
    return [
        Loaded(
            row.person_id,
            row.state,
            held[row.person_id],
            approved[row.person_id],
            row.verdict,
            row.pending_observed_at,
        )
        for row in rows
    ]


# Each evaluated person's verdict and the columns the lists filter on, by one statement for the
# batch: unnested arrays (canbao_platform.bulk), the verdict as JSON text, the survey reasons as
# an array literal. A VerdictRow's values, in its order.
class VerdictRow(NamedTuple):
    person_id: UUID
    verdict: str | None  # the Verdict (JSON); None: none, or out of scope
    in_scope: bool | None
    region_code: str | None
    registration: str | None
    survey_reasons: str  # bulk.array_literal
    recheck_on: date | None
    evaluated_at: datetime | None


_VERDICT_COLUMNS: Final = bulk.columns(persons, VerdictRow._fields)
_SAVE_VERDICTS: Final = sa.text(
    "UPDATE persons p SET "
    + ", ".join(f"{c} = {bulk.value(c, t)}" for c, t in list(_VERDICT_COLUMNS.items())[1:])
    + ", pending = false, pending_observed_at = NULL, pending_since = NULL"
    + ", pending_published_at = NULL"
    + f" FROM {bulk.rows(_VERDICT_COLUMNS)} WHERE p.person_id = v.person_id"
)


def verdict_row(
    person_id: UUID,
    verdict: Verdict | None,
    *,
    evaluated: bool,
    recheck_on: date | None,
    evaluated_at: datetime,
) -> VerdictRow:
    """The values saved for one evaluation (`evaluated` False: the person is not yet known)."""
    return VerdictRow(
        person_id,
        None if verdict is None else verdict.model_dump_json(),
        (verdict is not None) if evaluated else None,
        None if verdict is None else verdict.region_code,
        None if verdict is None else str(verdict.registration),
        bulk.array_literal([] if verdict is None else [str(r) for r in verdict.survey_reasons]),
        recheck_on,
        evaluated_at if evaluated else None,
    )


async def save_verdicts(session: AsyncSession, rows: list[VerdictRow]) -> None:
    if rows:
        await _execute(session, _SAVE_VERDICTS, bulk.arrays_of(rows, _VERDICT_COLUMNS))


async def set_aside(session: AsyncSession, person_ids: list[UUID], retry_on: date) -> None:
    """People whose evaluation failed: no longer pending, tried again on `retry_on` (or sooner
    when their next event arrives), so one bad record never holds up everyone else."""
    if person_ids:
        await _execute(
            session,
            sa.update(persons)
            .where(persons.c.person_id.in_(person_ids))
            .values(
                pending=False, pending_since=None, pending_published_at=None, recheck_on=retry_on
            ),
        )
