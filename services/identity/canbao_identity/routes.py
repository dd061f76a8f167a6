"""The internal API, for the gateway only (not public; the gateway authenticates, masks per role
and audits): a person by ID number or person_id with the golden record in clear, its gaps with the
clerk's reasons and provenance; a person's change history; the review queue; the people a
household survey visits, streamed.

A document number travels in a request body only (`POST /persons/lookup`), never in a URL:
URLs end up in access logs and traces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID, uuid4

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from canbao_contracts.id_numbers import validate
from canbao_identity import history
from canbao_identity import records as r
from canbao_identity.golden import GoldenDocument
from canbao_identity.golden_records import golden_records_work
from canbao_identity.protection import Protector
from canbao_identity.resolution import ReviewOutcome, ReviewState
from canbao_identity.store import Store
from canbao_identity.tables import identities, person_changes, persons
from canbao_platform.db import Database
from canbao_platform.problems import Problem
from canbao_platform.service import Resources
from canbao_platform.service_tokens import CallerDep, current_caller, require_role

# Every route answers only the gateway's signed calls (service_tokens.py).
router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(current_caller)])


# `async def` though they await nothing: FastAPI runs a plain `def` dependency in its thread
# pool, and the gateway's popup, which waits for the lookup, has a 20 ms p99 budget.
async def protector_of(request: Request) -> Protector:
    protector: Protector = request.app.state.protector
    return protector


async def resources_of(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ProtectorDep = Annotated[Protector, Depends(protector_of)]
ResourcesDep = Annotated[Resources, Depends(resources_of)]


class NotRegistered(Problem):
    def __init__(self) -> None:
        super().__init__(404, "not-registered", "此人尚未登记 (not registered)")


class InvalidIdNumber(Problem):
    def __init__(self, defects: list[Any]) -> None:
        super().__init__(
            422,
            "invalid-id-number",
            "公民身份号码无效 (invalid ID number)",
            "；".join(d.message_zh for d in defects),
            defects=[
                {"code": d.code.value, "message": d.message, "message_zh": d.message_zh}
                for d in defects
            ],
        )


class PersonRecord(BaseModel):
    person_id: UUID
    golden: dict[str, Any] = Field(description="field → {value, source, record_key, observed_at}")
    missing: list[str]
    inaccurate: list[dict[str, Any]] = Field(description="item, source, reason, detail (clear)")
    identity_conflict: bool
    deceased: bool
    household_registered: bool
    public_state: dict[str, Any] | None = Field(description="what registry.persons last said")


class Lookup(BaseModel):
    """A document number in the body, so it stays out of URLs and access logs."""

    id_number: str = Field(min_length=1, max_length=40)
    document_type: Literal["01", "02", "03", "04"] = "01"


@router.post(
    "/persons/lookup",
    response_model=PersonRecord,
    summary="A person by citizen ID number (any valid form) or another document",
)
async def lookup_person(
    body: Lookup, resources: ResourcesDep, protector: ProtectorDep
) -> PersonRecord:
    return await _by_number(body.id_number, body.document_type, resources, protector)


# The columns a PersonRecord is made of; by number, through the blind index, in one statement.
_RECORD: Final = (persons.c.person_id, persons.c.golden_ciphertext, persons.c.key_id,
                  persons.c.public_state)  # fmt: skip
_BY_NUMBER: Final = (
    sa.select(*_RECORD)
    .join(identities, identities.c.person_id == persons.c.person_id)
    .where(identities.c.document_type == sa.bindparam("document_type"),
           identities.c.number_index == sa.bindparam("number_index"))
)  # fmt: skip
_BY_ID: Final = sa.select(*_RECORD).where(persons.c.person_id == sa.bindparam("person_id"))


async def _by_number(
    id_number: str, document_type: str, resources: Resources, protector: Protector
) -> PersonRecord:
    """Through the blind index: the number is normalised (15→18, case, spaces) and HMAC'd, never
    compared in clear. An invalid citizen number is refused naming its defects."""
    if document_type == "01" and (defects := validate(id_number)):
        raise InvalidIdNumber(defects)
    index = protector.number_index(document_type, id_number)
    params = {"document_type": document_type, "number_index": index}
    return _record(protector, await _read_one(resources.database, _BY_NUMBER, params))


@router.get("/persons/{person_id}", response_model=PersonRecord, summary="A person by person_id")
async def person_by_id(
    person_id: UUID, resources: ResourcesDep, protector: ProtectorDep
) -> PersonRecord:
    return await _person(resources.database, protector, person_id)


async def _person(database: Database, protector: Protector, person_id: UUID) -> PersonRecord:
    return _record(protector, await _read_one(database, _BY_ID, {"person_id": person_id}))


async def _read_one(database: Database, query: sa.Select[Any], params: dict[str, Any]) -> Any:
    """The first row of one read, outside a transaction: PostgreSQL runs a lone statement in its
    own, so no BEGIN and ROLLBACK round trips (the popup waits for this)."""
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        return (await connection.execute(query, params)).first()


def _record(protector: Protector, row: Any) -> PersonRecord:
    if row is None or row.golden_ciphertext is None:
        raise NotRegistered()
    document = GoldenDocument.opened(protector, row.person_id, row.golden_ciphertext, row.key_id)
    stored = document.model_dump(mode="json")
    return PersonRecord(
        person_id=row.person_id,
        golden=stored["values"],
        missing=stored["missing"],
        inaccurate=stored["inaccurate"],
        identity_conflict=document.identity_conflict,
        deceased=document.deceased,
        household_registered=document.household_registered,
        public_state=row.public_state,
    )


class ReviewEntry(BaseModel):
    entry_id: int
    source_table: str
    record_key: str
    reason: str
    state: ReviewState
    resolution: ReviewOutcome | None
    person_id: UUID | None
    resolved_by: str | None
    created_at: datetime
    resolved_at: datetime | None


@router.get("/review-queue", response_model=list[ReviewEntry], summary="Records awaiting review")
async def list_review_queue(
    resources: ResourcesDep,
    protector: ProtectorDep,
    state: ReviewState = ReviewState.OPEN,
    limit: int = 100,
    after: int = 0,
) -> list[ReviewEntry]:
    async with resources.database.sessions() as session:
        rows = await Store(session, protector).review_entries(
            state, after=after, limit=min(limit, 1000)
        )
    return [ReviewEntry.model_validate(row._mapping) for row in rows]


class Resolve(BaseModel):
    """Link the record to a registered person, or register it as a new person."""

    person_id: UUID | None = None
    new_person: bool = False


@router.post(
    "/review-queue/{entry_id}/resolve",
    response_model=ReviewEntry,
    summary="Resolve a queued record",
)
async def resolve_review(
    entry_id: int,
    body: Resolve,
    caller: CallerDep,
    resources: ResourcesDep,
    protector: ProtectorDep,
) -> ReviewEntry:
    """The reviewer is the staff member the gateway's service token names."""
    if (body.person_id is None) == (not body.new_person):
        raise Problem(
            422,
            "invalid-resolution",
            "请指定关联的人员或登记为新人员",
            "give exactly one of person_id and new_person",
        )
    async with golden_records_work(
        resources.database, protector, service="identity", linking=True
    ) as golden_records:
        store = golden_records.store
        entry = await store.review_entry(entry_id, for_update=True)
        if entry is None:
            raise Problem(404, "review-entry-not-found", "没有这条待审核记录")
        if entry.state != ReviewState.OPEN:
            raise Problem(409, "review-entry-resolved", "这条记录已处理")
        person_id = body.person_id or uuid4()
        if body.new_person:
            await store.ensure_person(person_id)
        elif await store.person(person_id) is None:
            raise NotRegistered()
        await golden_records.link_reviewed(
            entry,
            person_id,
            outcome=ReviewOutcome.NEW_PERSON if body.new_person else ReviewOutcome.LINKED,
            by=caller.username,
        )
        # The clerk waits for the answer: this person now; the others by the builder.
        await golden_records.rebuild([person_id])
        resolved = await store.review_entry(entry_id)
    assert resolved is not None  # found above, locked in the same transaction
    return ReviewEntry.model_validate(resolved._mapping)


class Merge(BaseModel):
    """Retire this person_id in favour of `surviving_person_id` (one person, two numbers)."""

    surviving_person_id: UUID


@router.post(
    "/persons/{person_id}/merge",
    response_model=PersonRecord,
    summary="Merge a person into another (one person registered twice)",
)
async def merge_person(
    person_id: UUID, body: Merge, resources: ResourcesDep, protector: ProtectorDep
) -> PersonRecord:
    if person_id == body.surviving_person_id:
        raise Problem(
            422, "invalid-merge", "不能将人员与其本人合并", "a person cannot be merged into itself"
        )
    async with golden_records_work(
        resources.database, protector, service="identity", linking=True
    ) as golden_records:
        if await golden_records.store.person(body.surviving_person_id) is None:
            raise NotRegistered()
        try:
            await golden_records.merge(person_id, body.surviving_person_id)
        except LookupError:
            raise NotRegistered() from None
    return await _person(resources.database, protector, body.surviving_person_id)


# Each person's change history (44号 Art.20; history.py): for the staff who work on one
# person's registration (the gateway's RECORD roles and the reviewer, 复核人).
HISTORY_ROLES: Final = ("counter", "reviewer", "platform", "county")
HISTORY_PAGE: Final = 100
# How many merges deep a history follows the persons merged into this one.
MERGES_FOLLOWED: Final = 5


class Change(BaseModel):
    """One row of the history, values in clear (the gateway masks them per role)."""

    change_id: UUID
    person_id: UUID = Field(description="this person, or one merged into them")
    changed_at: datetime
    kind: Literal["value", "registered", "deceased", "merged", "absorbed"]
    item: str | None = Field(description="the golden-record field, for kind `value`")
    old: Any = None
    new: Any = None
    source: str | None = Field(description='"si_core.ac01", "collection.counter"…')
    record_key: str | None
    observed_at: str | None = Field(description="when the source committed the new value")
    channel: str | None
    collection_id: UUID | None
    handler: str | None = Field(description="AAE011, for a collection")
    reviewer: str | None = Field(description="AAE014, for a collection")
    reviewed_at: str | None = Field(description="AAE015, for a collection")
    other_person_id: UUID | None = Field(description="the other person of a merge")


class History(BaseModel):
    person_id: UUID
    changes: list[Change] = Field(description="newest first")
    next_cursor: str | None = Field(description="the next (older) page; null: no more")


class InvalidCursor(Problem):
    def __init__(self) -> None:
        super().__init__(422, "invalid-cursor", "分页游标无效 (invalid cursor)")


@router.get(
    "/persons/{person_id}/history",
    response_model=History,
    summary="A person's change history, newest first (keyset pages)",
)
async def person_history(
    person_id: UUID,
    caller: CallerDep,
    resources: ResourcesDep,
    protector: ProtectorDep,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = HISTORY_PAGE,
) -> History:
    """The person's rows and those of the persons merged into them (their history is theirs)."""
    require_role(caller, *HISTORY_ROLES)
    after = None
    if cursor is not None:
        try:
            after = history.parse_cursor(cursor)
        except ValueError:
            raise InvalidCursor() from None
    c = person_changes.c
    async with resources.database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        known = await connection.scalar(
            sa.select(persons.c.golden_ciphertext.is_not(None)).where(
                persons.c.person_id == person_id
            )
        )
        if not known:
            raise NotRegistered()
        ids, new = {person_id}, {person_id}
        for _ in range(MERGES_FOLLOWED):
            new = (
                set(
                    await connection.scalars(
                        sa.select(c.other_person_id).where(
                            c.person_id.in_(new), c.kind == history.ChangeKind.ABSORBED.value
                        )
                    )
                )
                - ids
            )
            if not new:
                break
            ids |= new
        query = sa.select(person_changes).where(c.person_id.in_(ids))
        if after is not None:
            query = query.where(sa.tuple_(c.changed_at, c.change_id) < sa.tuple_(*after))
        query = query.order_by(c.changed_at.desc(), c.change_id.desc()).limit(limit + 1)
        rows = (await connection.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return History(
        person_id=person_id,
        changes=[Change.model_validate(history.opened(protector, row)) for row in rows],
        next_cursor=history.cursor_of(rows[-1].changed_at, rows[-1].change_id) if more else None,
    )


# The household survey (入户调查, domain.md §2.3, api.md "Survey"): the grass-roots platform
# lists a division's people, the county approves, surveyors visit.
SURVEY_ROLES: Final = ("platform", "county", "surveyor")
NDJSON: Final = "application/x-ndjson"
# Rows fetched (and golden records opened) per round trip of the server-side cursor.
SURVEY_BATCH: Final = 1000
# A line's values, from the golden record, in this order (region_code is the published one).
SUBJECT_FIELDS: Final = (
    r.DOCUMENT_TYPE, r.ID_NUMBER, r.NAME, r.GENDER, r.BIRTH_DATE, r.HOUSEHOLD_PLACE,
    r.HOUSEHOLD_REGION, r.REGION, r.HOUSEHOLD_NUMBER, r.HOUSEHOLD_RELATION, r.HOUSEHOLD_ADDRESS,
    r.RESIDENCE_ADDRESS, r.PHONE, r.HOUSEHOLD_TYPE, r.PERSONAL_IDENTITY,
)  # fmt: skip


class RegionSubjects(BaseModel):
    """Everyone living whose published region_code starts with this GB/T 2260 code or prefix
    and whose household is registered here (44号 Art.17: 本地户籍)."""

    model_config = ConfigDict(extra="forbid")
    region_code: str = Field(pattern=r"^[0-9]{2,6}$", examples=["520102"])


class PersonSubjects(BaseModel):
    """These people, wherever registered, if they exist and are living (a merged person_id is
    no longer one: skipped)."""

    model_config = ConfigDict(extra="forbid")
    person_ids: list[UUID] = Field(min_length=1, max_length=1000)


class SurveySubject(BaseModel):
    """One line of the stream: the person's golden record in clear (the survey service seals its
    copy), null where identity has no value."""

    person_id: UUID
    document_type: str | None
    id_number: str | None
    name: str | None
    gender: str | None
    birth_date: str | None = Field(description="YYYY-MM-DD")
    household_place: str | None
    household_region_code: str | None
    region_code: str | None = Field(description="as published on registry.persons")
    household_number: str | None = Field(description="户号 (hukou.person.hh)")
    household_relation: str | None = Field(
        description="与户主关系 (hukou.person.yhzgx): 01 head, 02 spouse, 10 child, 20 parent, "
        "99 other"
    )
    household_address: str | None = Field(description="hukou.person.hjdz")
    residence_address: str | None
    phone: str | None
    household_type: str | None
    personal_identity: str | None


_SUBJECTS: Final = (
    sa.select(persons.c.person_id, persons.c.region_code, persons.c.golden_ciphertext,
              persons.c.key_id)
    .where(persons.c.golden_ciphertext.is_not(None))
    # A household's members one after another. The household is its blind index (the 户号 is
    # sealed): households in an order of their own, those without a number last. The order of
    # ix_persons_survey_subjects, so a division streams without a sort.
    .order_by(persons.c.region_code, persons.c.household_index.asc().nulls_last(),
              persons.c.person_id)
)  # fmt: skip


@router.post(
    "/survey-subjects",
    summary="The people a household survey visits, streamed as NDJSON, a household together",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One SurveySubject per line, ordered by region_code, household, "
            "person_id",
            "content": {NDJSON: {"schema": SurveySubject.model_json_schema()}},
        }
    },
)
async def survey_subjects(
    body: RegionSubjects | PersonSubjects,
    caller: CallerDep,
    resources: ResourcesDep,
    protector: ProtectorDep,
) -> StreamingResponse:
    """Never the whole division in memory (a county: 500,000 people): a server-side cursor
    read a batch at a time, each batch's golden records opened and sent before the next is
    read; a slow reader holds the cursor back, not memory. A failure midway ends the response
    without its last chunk, which the caller's HTTP client reports (not a shorter list)."""
    require_role(caller, *SURVEY_ROLES)
    # The staff member's region (a GB/T 2260 prefix), as the gateway scopes them: a division
    # outside it is refused, ids outside it are skipped.
    if isinstance(body, RegionSubjects) and not body.region_code.startswith(caller.scope):
        raise OutOfScope(body.region_code)
    return StreamingResponse(
        _stream(resources.database, protector, subjects_query(body, scope=caller.scope)),
        media_type=NDJSON,
    )


class OutOfScope(Problem):
    def __init__(self, region_code: str) -> None:
        super().__init__(
            403,
            "out-of-scope",
            "不在本人管辖区域内 (outside the caller's region)",
            f"区划 {region_code} 不在授权范围内",
            region_code=region_code,
        )


def subjects_query(body: RegionSubjects | PersonSubjects, *, scope: str) -> sa.Select[Any]:
    if isinstance(body, RegionSubjects):
        return _SUBJECTS.where(
            *within_region(persons.c.region_code, body.region_code),
            # The partial index's predicate, as it is written there.
            persons.c.household_registered,
            sa.not_(persons.c.deceased),
        )
    wanted = sa.bindparam("ids", body.person_ids, type_=ARRAY(PG_UUID(as_uuid=True)))
    return _SUBJECTS.where(
        persons.c.person_id == sa.any_(wanted),
        sa.not_(persons.c.deceased),
        *within_region(persons.c.region_code, scope),
    )


def within_region(column: Any, prefix: str) -> tuple[Any, Any]:
    """`column` starts with `prefix` (digits) as a range of its byte order (COLLATE "C"):
    '5201' ≤ code < '520:' (':' follows '9')."""
    return column >= prefix, column < prefix[:-1] + chr(ord(prefix[-1]) + 1)


async def _stream(
    database: Database, protector: Protector, query: sa.Select[Any]
) -> AsyncIterator[bytes]:
    async with database.engine.connect() as connection:
        result = await connection.stream(query.execution_options(yield_per=SURVEY_BATCH))
        async for rows in result.partitions():
            yield b"".join(_subject_line(protector, row) for row in rows)


def _subject_line(protector: Protector, row: Any) -> bytes:
    document = GoldenDocument.opened(protector, row.person_id, row.golden_ciphertext, row.key_id)
    line: dict[str, Any] = {"person_id": str(row.person_id)}
    for name in SUBJECT_FIELDS:
        line[name] = document.value(name)
    line[r.REGION] = row.region_code  # the published one, not the golden record's own
    return (json.dumps(line, ensure_ascii=False) + "\n").encode()
