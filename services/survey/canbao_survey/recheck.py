"""复核 of counter collections (41号 表4: the reviewer AAE014 and review time AAE015 are required
on every record a clerk handles; 44号 Art.13: the registry is updated "录入校核后").

A counter collection waits `submitted`; a reviewer (the gateway's `reviewer` role, never the
clerk who collected it) passes it, and it is published on registry.collections, or returns it
(`rejected`, with a comment for the clerk). Each decision is a row of survey's insert-only ledger
(`decisions`, stage `recheck`, `submission_id` the collection's id), whose trigger (survey_0004)
refuses the maker and a second decision even when the checks here are raced; the collection's
row is locked first (`FOR UPDATE`), so two reviewers at once are serialised and the loser hears
409 `collection-changed` with where it stands. The state, the ledger row and the outbox's event
are one transaction: a collection is published exactly when its pass is committed.

A day's batch passes each collection on its own (its own transaction and ledger row) and answers
for each: passed, or refused with the problem it would have had alone; only contact details may
be passed so (collections.py: BATCH_ITEMS), the rest are refused `needs-individual-review`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_contracts.codes import RegistrationItem
from canbao_platform.db import Database, retried_on_conflict, sqlstate
from canbao_platform.messaging import unit_of_work
from canbao_platform.problems import Problem
from canbao_platform.sealing import Sealer
from canbao_platform.service_tokens import Caller
from canbao_survey.collections import (
    RECHECK,
    BatchRequest,
    CounterCollection,
    RecheckRequest,
    ReviewState,
    approved_at_counter,
)
from canbao_survey.problems import (
    RECHECK_MAKER_CHECKER,
    CollectionChanged,
    CollectionNotFound,
    MakerChecker,
    NeedsIndividualReview,
    OutOfScope,
)
from canbao_survey.review import MAKER_CHECKER_SQLSTATE, OUT_OF_ORDER_SQLSTATE, covers
from canbao_survey.tables import collections, decisions, subjects
from canbao_survey.views import opened, person_region, refusals_of, with_person

SERVICE: Final = "survey"
# What a batch refusal names beside the items (collections.batch_refusals).
REFUSAL_LABELS: Final = {
    "new_registration": "新参保登记",
    "region_code": "登记地变更",
    "verified_statuses": "核实的参保状态",
    "resolved_reasons": "调查原因的消除",
}


@dataclass(frozen=True, slots=True)
class Rechecked:
    collection_id: UUID
    state: ReviewState
    person_id: UUID | None  # whom it is about, for the gateway's audit log
    region_code: str | None
    replayed: bool  # the same reviewer's same decision, recorded before

    def as_json(self) -> dict[str, Any]:
        return {
            "collection_id": str(self.collection_id),
            "state": self.state.value,
            "state_label": self.state.label,
            "person_id": str(self.person_id) if self.person_id else None,
            "region_code": self.region_code,
            "replayed": self.replayed,
        }


def summary(row: Any) -> dict[str, Any]:
    """What a 409 tells the reviewer about the collection now (no personal data)."""
    state = ReviewState(row["state"])
    return {
        "collection_id": str(row["collection_id"]),
        "state": state.value,
        "state_label": state.label,
        "reviewer": row["reviewer"],
        "reviewed_at": row["reviewed_at"].isoformat() if row["reviewed_at"] else None,
    }


def in_scope(caller: Caller, region: str | None) -> None:
    """403 out-of-scope unless the caller's scope covers the collection's region; a collection
    whose region survey does not know yet is nobody's to review."""
    if region is None or not covers(caller, region):
        raise OutOfScope(region or "（未知）")


async def _locked(connection: AsyncConnection, collection_id: UUID, caller: Caller) -> Any:
    row = (
        (
            await connection.execute(
                sa.select(collections, person_region().label("whose_region"))
                .select_from(with_person())
                .where(collections.c.collection_id == collection_id)
                .with_for_update(of=collections)
            )
        )
        .mappings()
        .first()
    )
    if row is None or row["channel"] != "counter":
        raise CollectionNotFound()
    in_scope(caller, row["whose_region"])
    return row


def _collection_of(row: Any, sealer: Sealer) -> CounterCollection:
    return CounterCollection(
        person_id=row["person_id"],
        document_type=row["document_type"],
        region_code=row["region_code"],
        items=opened(row, sealer),
        resolved_reasons=list(row["resolved_reasons"]),
        verified_statuses=list(row["verified_statuses"]),
        handler=row["handler"],
    )


@retried_on_conflict
async def recheck(
    database: Database,
    sealer: Sealer,
    collection_id: UUID,
    request: RecheckRequest,
    caller: Caller,
    *,
    now: datetime,
    batch: bool = False,
) -> Rechecked:
    """Record the reviewer's decision on the ledger and the collection; a pass publishes it. The
    same reviewer's same decision again is answered as recorded (`replayed`), nothing twice."""
    try:
        async with unit_of_work(database, service=SERVICE) as uow:
            connection = await uow.session.connection()
            row = await _locked(connection, collection_id, caller)
            done = dict(person_id=row["person_id"], region_code=row["whose_region"])
            if row["state"] != ReviewState.SUBMITTED:
                earlier = (
                    await connection.execute(
                        sa.select(decisions.c.decision).where(
                            decisions.c.submission_id == collection_id,
                            decisions.c.stage == RECHECK,
                            decisions.c.decided_by == caller.username,
                        )
                    )
                ).scalar_one_or_none()
                if earlier == request.decision:
                    state = ReviewState(row["state"])
                    return Rechecked(collection_id, state, replayed=True, **done)
                raise CollectionChanged(summary(row))
            if caller.username == row["handler"]:
                raise MakerChecker(RECHECK_MAKER_CHECKER)
            if batch and (refusals := refusals_of(row)):
                labels = [REFUSAL_LABELS.get(r) or RegistrationItem(r).label for r in refusals]
                raise NeedsIndividualReview(refusals, labels)
            await connection.execute(
                sa.insert(decisions).values(
                    submission_id=collection_id,
                    stage=RECHECK,
                    decision=request.decision,
                    decided_by=caller.username,
                    decided_at=now,
                    comment=request.comment,
                )
            )
            passed = request.decision == "pass"
            state = ReviewState.APPROVED if passed else ReviewState.REJECTED
            await connection.execute(
                sa.update(collections)
                .where(collections.c.collection_id == collection_id)
                .values(state=state.value, reviewer=caller.username, reviewed_at=now)
            )
            if passed:
                event = approved_at_counter(
                    _collection_of(row, sealer),
                    collection_id=collection_id,
                    handled_at=row["handled_at"],
                    reviewer=caller.username,
                    reviewed_at=now,
                )
                # The collection id as the event id: a re-run can never announce it twice.
                uow.publish_event(event, id=str(collection_id))
    except DBAPIError as error:
        code = sqlstate(error)
        if code == MAKER_CHECKER_SQLSTATE:
            raise MakerChecker(RECHECK_MAKER_CHECKER) from None
        if code == OUT_OF_ORDER_SQLSTATE:  # another reviewer's decision won the race
            async with database.engine.connect() as connection:
                query = sa.select(collections).where(collections.c.collection_id == collection_id)
                now_row = (await connection.execute(query)).mappings().one()
            raise CollectionChanged(summary(now_row)) from None
        raise
    return Rechecked(collection_id, state, replayed=False, **done)


async def recheck_batch(
    database: Database, sealer: Sealer, request: BatchRequest, caller: Caller, *, now: datetime
) -> list[dict[str, Any]]:
    """Pass each collection of the batch on its own; one refused never stops the others."""
    decision = RecheckRequest(decision="pass", comment=request.comment)
    results: list[dict[str, Any]] = []
    for collection_id in request.collection_ids:
        try:
            done = await recheck(
                database, sealer, collection_id, decision, caller, now=now, batch=True
            )
        except Problem as problem:
            region = problem.extensions.get("region_code")
            results.append(
                {
                    "collection_id": str(collection_id),
                    "result": "refused",
                    "problem": problem.body(),
                    "person_id": None,
                    "region_code": region if isinstance(region, str) else None,
                }
            )
            continue
        results.append({**done.as_json(), "result": "passed"})
    return results


async def region_of_person(database: Database, person_id: UUID) -> str | None:
    query = sa.select(subjects.c.region_code).where(subjects.c.person_id == person_id)
    async with database.engine.connect() as connection:
        region: str | None = (await connection.execute(query)).scalar_one_or_none()
    return region
