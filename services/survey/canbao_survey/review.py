"""The survey's writes (api.md "Survey"): a team assigned to a household, a surveyor's submission
(made offline, synced late, out of order, twice), a person discovered at an address, and the
review: 初审 by the grass-roots platform, 审定 by the county (44号 §17-18). An approved submission
is published on registry.collections through the outbox, in the transaction that approves it.

Every write locks its task row first (`FOR UPDATE`), so two reviewers or two phones acting at
once are serialised and the loser sees the task as the winner left it (409 task-changed). A
write that deadlocks with the consumer updating the same tasks from a verdict is run again
(`retried_on_conflict`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_contracts.codes import CertificateType, RegistrationItem, SurveyReason
from canbao_contracts.collected_items import item_defects, missing_required, normalised
from canbao_contracts.events.vocabulary import Channel
from canbao_platform.db import Database, retried_on_conflict, sqlstate
from canbao_platform.messaging import unit_of_work
from canbao_platform.problems import InvalidItems
from canbao_platform.sealing import Sealer
from canbao_platform.service_tokens import Caller
from canbao_survey.problems import (
    ChangePending,
    ClientIdReused,
    MakerChecker,
    OutOfScope,
    SelfServiceContactFromStaff,
    SurveyorNotInRoster,
    TaskChanged,
    TaskNotFound,
    VisitInFuture,
)
from canbao_survey.tables import decisions, signed_forms, subjects, submissions, surveyors, tasks
from canbao_survey.tasks import (
    OPEN_STATES,
    ChangeRecord,
    ChangeRegistration,
    Contact,
    Decision,
    DecisionRequest,
    Discovery,
    Outcome,
    SelfCorrection,
    Stage,
    SurveySubmission,
    TaskChannel,
    TaskState,
    approved_collection,
    may_decide,
    next_state,
    resolved_reasons,
    verified_statuses,
)

SERVICE: Final = "survey"
CLOCK_SKEW: Final = timedelta(minutes=5)  # a phone's clock a little ahead is not an error
MAKER_CHECKER_SQLSTATE: Final = "CBM01"
OUT_OF_ORDER_SQLSTATE: Final = "CBM02"


def submission_context(submission_id: UUID) -> str:
    return f"survey.submissions:{submission_id}"


def covers(caller: Caller, region_code: str) -> bool:
    """The caller's scope (a GB/T 2260 prefix) covers the region (the gateway's rule)."""
    return len(region_code) >= len(caller.scope) and region_code.startswith(caller.scope)


def task_summary(row: Any) -> dict[str, Any]:
    """What a 409 tells the caller about the task now (no personal data)."""
    state = TaskState(row["state"])
    return {
        "task_id": str(row["task_id"]),
        "state": state.value,
        "state_label": state.label,
        "team": list(row["team"]),
        "closed_reason": row["closed_reason"],
        "version": row["version"],
        "updated_at": row["updated_at"].isoformat(),
    }


async def _locked_task(connection: AsyncConnection, task_id: UUID, caller: Caller) -> Any:
    row = (
        (
            await connection.execute(
                sa.select(tasks).where(tasks.c.task_id == task_id).with_for_update()
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise TaskNotFound()
    if not covers(caller, row["region_code"]):
        raise OutOfScope(row["region_code"])
    return row


# -- Assignment (44号 §16, 18: teams of 2-3 from the county's roster) ------------------------------


@retried_on_conflict
async def assign(
    database: Database, task_id: UUID, team: list[str], caller: Caller, *, now: datetime
) -> list[UUID]:
    """Assign the task's household: every waiting, unsubmitted task of it goes to `team`."""
    async with database.engine.begin() as connection:
        task = await _locked_task(connection, task_id, caller)
        if task["state"] not in (TaskState.OPEN, TaskState.ASSIGNED):
            raise TaskChanged(task_summary(task))
        county = task["region_code"][:6]
        on_roster = set(
            (
                await connection.execute(
                    sa.select(surveyors.c.username).where(
                        surveyors.c.username.in_(team),
                        sa.literal(county).like(surveyors.c.county_code + "%"),
                        surveyors.c.active,
                    )
                )
            ).scalars()
        )
        if unknown := [name for name in team if name not in on_roster]:
            raise SurveyorNotInRoster(unknown)
        household = [tasks.c.task_id == task_id]
        if task["household_key"] is not None:
            household.append(
                sa.and_(
                    tasks.c.household_key == task["household_key"],
                    tasks.c.region_code == task["region_code"],
                )
            )
        assigned = await connection.execute(
            sa.update(tasks)
            .where(
                sa.or_(*household),
                tasks.c.state.in_([TaskState.OPEN.value, TaskState.ASSIGNED.value]),
            )
            .values(
                state=TaskState.ASSIGNED.value,
                team=team,
                assigned_by=caller.username,
                version=tasks.c.version + 1,
                updated_at=now,
            )
            .returning(tasks.c.task_id)
        )
        return sorted(assigned.scalars())


# -- Submission ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Submitted:
    task_id: UUID
    submission_id: UUID
    state: TaskState
    replayed: bool
    # Whom the task is about, for the gateway's audit log (no value: only identity's id and
    # the division): None for a person the registry does not know yet.
    person_id: UUID | None = None
    region_code: str | None = None


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision recorded: the task's new state, and whom it is about (as `Submitted`)."""

    state: TaskState
    person_id: UUID | None
    region_code: str


def _check_items(items: dict[str, str], document_type: CertificateType, *, new: bool) -> None:
    found = item_defects(items, document_type=document_type)
    if new:
        found += missing_required(items)
    if found:
        raise InvalidItems(found)


def _submission_row(
    submission: SurveySubmission,
    sealer: Sealer,
    *,
    task_id: UUID,
    caller: Caller,
    state: str,
    now: datetime,
) -> dict[str, Any]:
    submission_id = uuid4()
    body = submission.model_dump(mode="json", exclude={"signed_form"})
    assert submission.outcome is not None  # derived by the model
    return {
        "submission_id": submission_id,
        "task_id": task_id,
        "client_id": submission.client_id,
        "submitted_by": caller.username,
        "submitted_at": now,
        "visited_at": submission.visited_at,
        "contact": submission.contact.value,
        "outcome": submission.outcome.value,
        "body_sealed": sealer.seal(body, context=submission_context(submission_id)),
        "key_id": sealer.key_id,
        "item_names": sorted(submission.items),
        "verified_reason": submission.verified_reason.value if submission.verified_reason else None,
        "state": state,
    }


async def _keep_signed_form(
    connection: AsyncConnection,
    sealer: Sealer,
    row: dict[str, Any],
    submission: SurveySubmission,
    keep_years: int,
) -> None:
    if submission.signed_form is None:
        return
    data = base64.b64decode(submission.signed_form.data, validate=False)
    visited = submission.visited_at.date()
    await connection.execute(
        sa.insert(signed_forms).values(
            submission_id=row["submission_id"],
            content_type=submission.signed_form.content_type,
            data_sealed=sealer.seal(
                {"data": base64.b64encode(data).decode()},
                context=f"survey.signed_forms:{row['submission_id']}",
            ),
            key_id=sealer.key_id,
            keep_until=date(visited.year + keep_years, visited.month, min(visited.day, 28)),
        )
    )


async def _replayed(connection: AsyncConnection, client_id: UUID, task_id: UUID) -> Any:
    earlier = (
        (
            await connection.execute(
                sa.select(submissions).where(submissions.c.client_id == client_id)
            )
        )
        .mappings()
        .first()
    )
    if earlier is not None and earlier["task_id"] != task_id:
        raise ClientIdReused()
    return earlier


@retried_on_conflict
async def submit(
    database: Database,
    sealer: Sealer,
    task_id: UUID,
    submission: SurveySubmission,
    caller: Caller,
    *,
    now: datetime,
    keep_years: int,
) -> Submitted:
    """A surveyor's submission: idempotent by client_id; for a task that changed meanwhile the
    submission is kept unattached and the answer is 409 task-changed with the task's state."""
    if submission.contact in (Contact.SELF_SERVICE, Contact.WALK_IN):
        raise SelfServiceContactFromStaff()
    if submission.visited_at > now + CLOCK_SKEW:
        raise VisitInFuture()
    async with database.engine.begin() as connection:
        task = await _locked_task(connection, task_id, caller)
        if (earlier := await _replayed(connection, submission.client_id, task_id)) is not None:
            if earlier["state"] == "unattached":
                raise TaskChanged(task_summary(task), submission_id=str(earlier["submission_id"]))
            return Submitted(
                task_id,
                earlier["submission_id"],
                TaskState(task["state"]),
                True,
                task["person_id"],
                task["region_code"],
            )
        new = task["person_id"] is None
        _check_items(submission.items, CertificateType.CITIZEN_ID, new=new)
        ours = task["state"] == TaskState.ASSIGNED and caller.username in task["team"]
        row = _submission_row(
            submission,
            sealer,
            task_id=task_id,
            caller=caller,
            state="submitted" if ours else "unattached",
            now=now,
        )
        await connection.execute(sa.insert(submissions).values(row))
        await _keep_signed_form(connection, sealer, row, submission, keep_years)
        if not ours:
            # Kept, so nothing the surveyor typed is lost; the task is not theirs to submit.
            refused = TaskChanged(task_summary(task), submission_id=str(row["submission_id"]))
        else:
            await connection.execute(
                sa.update(tasks)
                .where(tasks.c.task_id == task_id)
                .values(
                    state=TaskState.SUBMITTED.value,
                    submission_id=row["submission_id"],
                    last_comment=None,
                    version=tasks.c.version + 1,
                    updated_at=now,
                )
            )
            return Submitted(
                task_id,
                row["submission_id"],
                TaskState.SUBMITTED,
                False,
                task["person_id"],
                task["region_code"],
            )
    raise refused  # after the commit: the unattached submission is kept


@retried_on_conflict
async def discover(
    database: Database,
    sealer: Sealer,
    discovery: Discovery,
    caller: Caller,
    *,
    now: datetime,
    keep_years: int,
) -> Submitted:
    """A person found in the division whom the registry does not know (44号 §16): a new
    registration, checked like the counter's, as a task already submitted."""
    if not covers(caller, discovery.region_code):
        raise OutOfScope(discovery.region_code)
    if discovery.contact in (Contact.SELF_SERVICE, Contact.WALK_IN):
        raise SelfServiceContactFromStaff()
    if discovery.visited_at > now + CLOCK_SKEW:
        raise VisitInFuture()
    _check_items(discovery.items, discovery.document_type, new=True)
    async with database.engine.begin() as connection:
        earlier = (
            (
                await connection.execute(
                    sa.select(submissions).where(submissions.c.client_id == discovery.client_id)
                )
            )
            .mappings()
            .first()
        )
        if earlier is not None:
            task = (
                await connection.execute(
                    sa.select(tasks.c.state, tasks.c.region_code).where(
                        tasks.c.task_id == earlier["task_id"]
                    )
                )
            ).one()
            return Submitted(
                earlier["task_id"],
                earlier["submission_id"],
                TaskState(task.state),
                True,
                None,
                task.region_code,
            )
        task_id = uuid4()
        await connection.execute(
            sa.insert(tasks).values(
                task_id=task_id,
                channel=TaskChannel.SURVEY.value,
                origin="survey",
                person_id=None,
                region_code=discovery.region_code,
                household_key=None,
                survey_reasons=[],
                missing=[],
                inaccurate=[],
                state=TaskState.SUBMITTED.value,
                team=[caller.username],
                assigned_by=None,
                version=0,
                created_at=now,
                updated_at=now,
            )
        )
        row = _submission_row(
            discovery, sealer, task_id=task_id, caller=caller, state="submitted", now=now
        )
        await connection.execute(sa.insert(submissions).values(row))
        await _keep_signed_form(connection, sealer, row, discovery, keep_years)
        await connection.execute(
            sa.update(tasks)
            .where(tasks.c.task_id == task_id)
            .values(submission_id=row["submission_id"])
        )
    return Submitted(
        task_id, row["submission_id"], TaskState.SUBMITTED, False, None, discovery.region_code
    )


@retried_on_conflict
async def self_correction(
    database: Database,
    sealer: Sealer,
    correction: SelfCorrection,
    caller: Caller,
    *,
    now: datetime,
) -> Submitted:
    """A citizen's own correction (api.md "Self-service"), checked like a collection, as a task
    of channel self already submitted; idempotent by client_id."""
    _check_items(correction.items, CertificateType.CITIZEN_ID, new=False)
    submission = correction.as_submission(now)
    async with database.engine.begin() as connection:
        earlier = (
            (
                await connection.execute(
                    sa.select(submissions).where(submissions.c.client_id == correction.client_id)
                )
            )
            .mappings()
            .first()
        )
        if earlier is not None:
            task = (
                await connection.execute(
                    sa.select(tasks.c.state, tasks.c.person_id).where(
                        tasks.c.task_id == earlier["task_id"]
                    )
                )
            ).one()
            if task.person_id != correction.person_id:
                raise ClientIdReused()
            return Submitted(
                earlier["task_id"], earlier["submission_id"], TaskState(task.state), True
            )
        task_id = uuid4()
        await connection.execute(
            sa.insert(tasks).values(
                task_id=task_id,
                channel=TaskChannel.SELF.value,
                origin=correction.origin,
                person_id=correction.person_id,
                region_code=correction.region_code,
                household_key=None,
                survey_reasons=[],
                missing=[],
                inaccurate=[],
                state=TaskState.SUBMITTED.value,
                team=[],
                assigned_by=None,
                version=0,
                created_at=now,
                updated_at=now,
            )
        )
        row = _submission_row(
            submission, sealer, task_id=task_id, caller=caller, state="submitted", now=now
        )
        await connection.execute(sa.insert(submissions).values(row))
        await connection.execute(
            sa.update(tasks)
            .where(tasks.c.task_id == task_id)
            .values(submission_id=row["submission_id"])
        )
    return Submitted(task_id, row["submission_id"], TaskState.SUBMITTED, False)


# -- Change registration at the grass-roots platform (变更登记, 44号 Art.5, Art.21) -------------


def serves(caller: Caller, region_code: str) -> bool:
    """Whether the caller may serve one person of the (county) region: the gateway's rule for
    one person (auth.person_in_scope), a township or community scope standing for its county."""
    scope = caller.scope[:6]
    return len(region_code) >= len(scope) and region_code.startswith(scope)


@retried_on_conflict
async def record_change(
    database: Database,
    sealer: Sealer,
    change: ChangeRegistration,
    caller: Caller,
    *,
    now: datetime,
) -> Submitted:
    """A change the platform recorded for a registered person, checked like a counter collection,
    as a task of channel change, origin platform, already submitted by the member who recorded it
    (AAE011), for 初审 by another member and 审定 by the county; idempotent by client_id.

    One change waits per person: another while one waits for review is 409 change-pending; a
    change returned by a reviewer (the task back in state assigned, to its recorder) is recorded
    again on the same task, as a surveyor resubmits."""
    if not serves(caller, change.region_code):
        raise OutOfScope(change.region_code)
    _check_items(change.items, CertificateType.CITIZEN_ID, new=False)
    record = change.as_record(now)
    async with database.engine.begin() as connection:
        earlier = (
            (
                await connection.execute(
                    sa.select(submissions).where(submissions.c.client_id == change.client_id)
                )
            )
            .mappings()
            .first()
        )
        if earlier is not None:
            task = (
                (
                    await connection.execute(
                        sa.select(tasks).where(tasks.c.task_id == earlier["task_id"])
                    )
                )
                .mappings()
                .one()
            )
            if task["person_id"] != change.person_id or task["channel"] != TaskChannel.CHANGE:
                raise ClientIdReused()
            return Submitted(
                task["task_id"],
                earlier["submission_id"],
                TaskState(task["state"]),
                True,
                task["person_id"],
                task["region_code"],
            )
        waiting = (
            (
                await connection.execute(
                    sa.select(tasks)
                    .where(
                        tasks.c.person_id == change.person_id,
                        tasks.c.channel == TaskChannel.CHANGE.value,
                        tasks.c.state.in_([s.value for s in OPEN_STATES]),
                    )
                    .with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if waiting is not None and waiting["state"] != TaskState.ASSIGNED:
            raise ChangePending(task_summary(waiting))
        task_id = waiting["task_id"] if waiting is not None else uuid4()
        if waiting is None:
            await connection.execute(
                sa.insert(tasks).values(
                    task_id=task_id,
                    channel=TaskChannel.CHANGE.value,
                    origin=Channel.PLATFORM.value,
                    person_id=change.person_id,
                    region_code=change.region_code,
                    household_key=None,
                    survey_reasons=[],
                    missing=[],
                    inaccurate=[],
                    state=TaskState.SUBMITTED.value,
                    team=[caller.username],
                    assigned_by=None,
                    version=0,
                    created_at=now,
                    updated_at=now,
                )
            )
        row = _submission_row(
            record, sealer, task_id=task_id, caller=caller, state="submitted", now=now
        )
        await connection.execute(sa.insert(submissions).values(row))
        await connection.execute(
            sa.update(tasks)
            .where(tasks.c.task_id == task_id)
            .values(
                submission_id=row["submission_id"],
                state=TaskState.SUBMITTED.value,
                team=[caller.username],
                last_comment=None,
                version=tasks.c.version + (1 if waiting is not None else 0),
                updated_at=now,
            )
        )
    return Submitted(
        task_id,
        row["submission_id"],
        TaskState.SUBMITTED,
        False,
        change.person_id,
        change.region_code,
    )


# -- Review: 初审 (platform) and 审定 (county) ------------------------------------------------


@retried_on_conflict
async def decide(
    database: Database,
    sealer: Sealer,
    task_id: UUID,
    stage: Stage,
    request: DecisionRequest,
    caller: Caller,
    *,
    now: datetime,
) -> Decided:
    """Record the decision in the ledger and move the task; on approval publish the collection."""
    decision = Decision(request.decision)
    try:
        async with unit_of_work(database, service=SERVICE) as uow:
            connection = await uow.session.connection()
            task = await _locked_task(connection, task_id, caller)
            state = next_state(TaskState(task["state"]), stage, decision)
            if state is None or task["submission_id"] is None:
                raise TaskChanged(task_summary(task))
            submission = (
                (
                    await connection.execute(
                        sa.select(submissions).where(
                            submissions.c.submission_id == task["submission_id"]
                        )
                    )
                )
                .mappings()
                .one()
            )
            ledger = (
                (
                    await connection.execute(
                        sa.select(decisions)
                        .where(decisions.c.submission_id == submission["submission_id"])
                        .order_by(decisions.c.decision_id)
                    )
                )
                .mappings()
                .all()
            )
            if not may_decide(
                caller.username,
                submitted_by=submission["submitted_by"],
                decided_by=frozenset(d["decided_by"] for d in ledger),
            ):
                raise MakerChecker()
            await connection.execute(
                sa.insert(decisions).values(
                    submission_id=submission["submission_id"],
                    stage=stage.value,
                    decision=decision.value,
                    decided_by=caller.username,
                    decided_at=now,
                    comment=request.comment,
                )
            )
            values: dict[str, Any] = {
                "state": state.value,
                "version": tasks.c.version + 1,
                "updated_at": now,
            }
            submission_state = {
                TaskState.FIRST_REVIEWED: "first_reviewed",
                TaskState.APPROVED: "approved",
            }.get(state, "rejected")
            sub_values: dict[str, Any] = {"state": submission_state}
            if decision is Decision.REJECT:
                values["last_comment"] = request.comment
            if state is TaskState.APPROVED:
                first = next(d for d in ledger if d["stage"] == Stage.FIRST_REVIEW.value)
                event = await _approved_event(
                    connection, sealer, task, submission, first, caller, now
                )
                if event is not None:
                    uow.publish_event(event, id=str(event.collection_id))
                    sub_values["collection_id"] = event.collection_id
            await connection.execute(
                sa.update(submissions)
                .where(submissions.c.submission_id == submission["submission_id"])
                .values(sub_values)
            )
            await connection.execute(
                sa.update(tasks).where(tasks.c.task_id == task_id).values(values)
            )
    except DBAPIError as error:
        code = sqlstate(error)
        if code == MAKER_CHECKER_SQLSTATE:
            raise MakerChecker() from None
        if code == OUT_OF_ORDER_SQLSTATE:  # a concurrent decision won the race
            async with database.engine.connect() as connection:
                row = (
                    (await connection.execute(sa.select(tasks).where(tasks.c.task_id == task_id)))
                    .mappings()
                    .one()
                )
            raise TaskChanged(task_summary(row)) from None
        raise
    return Decided(state, task["person_id"], task["region_code"])


async def _approved_event(
    connection: AsyncConnection,
    sealer: Sealer,
    task: Any,
    submission: Any,
    first: Any,
    caller: Caller,
    now: datetime,
) -> Any:
    """The CollectionApproved of an approved submission; None when the visit found nobody (a
    "not found" result is recorded in survey and the ledger, nothing to apply)."""
    if submission["outcome"] == Outcome.NOT_FOUND:
        return None
    body = sealer.open(
        submission["body_sealed"],
        key_id=submission["key_id"],
        context=submission_context(submission["submission_id"]),
    )
    discovered = task["person_id"] is None
    model = ChangeRecord if task["channel"] == TaskChannel.CHANGE else SurveySubmission
    parsed = (Discovery if discovered else model).model_validate(body)
    document_type = getattr(parsed, "document_type", CertificateType.CITIZEN_ID)
    statuses: dict[str, str | None] = {}
    if not discovered:
        statuses = (
            await connection.execute(
                sa.select(subjects.c.statuses).where(subjects.c.person_id == task["person_id"])
            )
        ).scalar_one_or_none() or {}
    verified = verified_statuses(parsed, statuses)
    reasons = tuple(SurveyReason(r) for r in task["survey_reasons"])
    items = {
        RegistrationItem(name): value
        for name, value in normalised(parsed.items, document_type=document_type).items()
    }
    return approved_collection(
        parsed,
        collection_id=uuid4(),
        person_id=task["person_id"],
        items=items,
        document_type=document_type,
        region_code=task["region_code"] if discovered else None,
        resolved=resolved_reasons(parsed, reasons, verified=bool(verified)),
        verified=verified,
        handler=submission["submitted_by"],
        handled_at=min(submission["visited_at"], submission["submitted_at"]),
        first_reviewer=first["decided_by"],
        first_reviewed_at=first["decided_at"],
        reviewer=caller.username,
        reviewed_at=now,
        channel=Channel(task["origin"]),
    )
