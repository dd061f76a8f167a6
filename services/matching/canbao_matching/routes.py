"""The internal API for the gateway (architecture.md: a synchronous call only where a user
waits): a person's verdict, the popup's matching half (api.md; identity gives the masked name,
number and the missing/inaccurate items), a person's enrolments and benefits (the proof of
insurance, api.md "Self-service"), and lists by region and reason for survey and
reporting. Errors are problem+json with stable types (canbao_platform.problems)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_contracts.codes import RegistrationState, SurveyReason
from canbao_contracts.events import BenefitFact, EnrolmentFact, Verdict
from canbao_contracts.search import (
    INSURANCE_ATTRIBUTES,
    INSURED_IN_PROVINCE_CODES,
    Condition,
    Filter,
    division_prefix,
    names_a_region,
)
from canbao_matching.tables import facts, persons
from canbao_platform.db import Database
from canbao_platform.problems import Problem
from canbao_platform.service import Resources
from canbao_platform.service_tokens import current_caller

# Every route answers only the gateway's signed calls (service_tokens.py).
router = APIRouter(prefix="/internal/v1", tags=["verdicts"], dependencies=[Depends(current_caller)])
MAX_PAGE: Final = 1000


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    resources: Resources = request.app.state.resources
    async with resources.database.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session)]


class PersonVerdict(BaseModel):
    """A person's verdict as the popup shows it; `verdict` is null for a living person outside
    the registry's scope (moved out, not insured here)."""

    person_id: UUID
    in_scope: bool
    verdict: Verdict | None
    as_of: datetime | None


class VerdictPage(BaseModel):
    items: list[PersonVerdict]
    next_after: UUID | None
    """Pass as `after` for the next page; null on the last one."""


class PersonUnknown(Problem):
    def __init__(self) -> None:
        super().__init__(404, "person-unknown", "匹配服务中没有此人 (person not known to matching)")


class PersonMerged(Problem):
    def __init__(self, survivor: UUID) -> None:
        super().__init__(
            404,
            "person-merged",
            "此人已与另一人员合并 (person merged)",
            surviving_person_id=str(survivor),
        )


class NotYetEvaluated(Problem):
    def __init__(self) -> None:
        super().__init__(
            409, "not-yet-evaluated", "此人员信息尚未完整，暂无参保状态 (not yet evaluated)"
        )


def _person_verdict(row: Any) -> PersonVerdict:
    verdict = None if row.verdict is None else Verdict.model_validate(row.verdict)
    return PersonVerdict(
        person_id=row.person_id,
        in_scope=bool(row.in_scope),
        verdict=verdict,
        as_of=row.evaluated_at,
    )


_COLUMNS: Final = (persons.c.person_id, persons.c.verdict, persons.c.in_scope,
                   persons.c.evaluated_at, persons.c.merged_into)  # fmt: skip


_VERDICT_OF: Final = sa.select(*_COLUMNS).where(persons.c.person_id == sa.bindparam("person_id"))


async def _database(request: Request) -> Database:
    resources: Resources = request.app.state.resources
    return resources.database


@router.get(
    "/verdicts/{person_id}",
    summary="A person's verdict (the popup's statuses, flags, survey reasons and registration)",
)
async def get_verdict(
    person_id: UUID, database: Annotated[Database, Depends(_database)]
) -> PersonVerdict:
    # One statement outside a transaction (PostgreSQL runs it in its own): no BEGIN and
    # ROLLBACK round trips, and no ORM session, for the read the counter popup waits for.
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        row = (await connection.execute(_VERDICT_OF, {"person_id": person_id})).first()
    if row is None:
        raise PersonUnknown()
    if row.merged_into is not None:
        raise PersonMerged(row.merged_into)
    if row.evaluated_at is None:
        raise NotYetEvaluated()
    return _person_verdict(row)


Region = Annotated[
    str,
    Query(
        pattern=r"^[0-9]{6}$",
        description="GB/T 2260 division: a province (520000), city (520100) or county (520102)",
    ),
]


@router.get(
    "/verdicts",
    summary="People of a division by registration state and survey "
    "reason (survey target lists, reporting detail)",
)
async def list_verdicts(
    session: SessionDep,
    region: Region,
    registration: RegistrationState | None = None,
    reason: SurveyReason | None = None,
    after: UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> VerdictPage:
    query = sa.select(*_COLUMNS).where(
        persons.c.region_code.startswith(division_prefix(region), autoescape=True),
        persons.c.in_scope.is_(True),
    )
    if registration is not None:
        query = query.where(persons.c.registration == str(registration))
    if reason is not None:
        query = query.where(persons.c.survey_reasons.contains([str(reason)]))
    if after is not None:
        query = query.where(persons.c.person_id > after)
    connection = await session.connection()
    rows = (await connection.execute(query.order_by(persons.c.person_id).limit(limit))).all()
    items = [_person_verdict(row) for row in rows]
    return VerdictPage(items=items, next_after=items[-1].person_id if len(items) == limit else None)


class InsuranceRecord(BaseModel):
    """What the business systems hold of a person's insurance (registry.facts): their enrolments
    and benefits as matching last heard of them, for the proof of insurance (参保证明)."""

    person_id: UUID
    enrolments: list[EnrolmentFact]
    benefits: list[BenefitFact]
    as_of: datetime | None
    """When matching last evaluated the person."""


@router.get(
    "/persons/{person_id}/insurance",
    summary="A person's enrolments and benefits (the proof of insurance)",
)
async def get_insurance(
    person_id: UUID, database: Annotated[Database, Depends(_database)]
) -> InsuranceRecord:
    async with database.engine.connect() as connection:
        person = (await connection.execute(_VERDICT_OF, {"person_id": person_id})).first()
        if person is None:
            raise PersonUnknown()
        if person.merged_into is not None:
            raise PersonMerged(person.merged_into)
        bodies = (
            (
                await connection.execute(
                    sa.select(facts.c.body)
                    .where(
                        facts.c.person_id == person_id,
                        facts.c.retracted.is_(False),
                        facts.c.body["kind"].astext.in_(("enrolment", "benefit")),
                    )
                    .order_by(facts.c.body["insurance"].astext, facts.c.fact_id)
                )
            )
            .scalars()
            .all()
        )
    return InsuranceRecord(
        person_id=person_id,
        enrolments=[EnrolmentFact.model_validate(b) for b in bodies if b["kind"] == "enrolment"],
        benefits=[BenefitFact.model_validate(b) for b in bodies if b["kind"] == "benefit"],
        as_of=person.evaluated_at,
    )


MAX_VERDICTS: Final = 10_000


class VerdictsLookup(BaseModel):
    person_ids: list[UUID] = Field(max_length=MAX_VERDICTS)


@router.post(
    "/verdicts/lookup", summary="Many people's verdicts at once (a partner department's comparison)"
)
async def lookup_verdicts(
    body: VerdictsLookup, database: Annotated[Database, Depends(_database)]
) -> list[PersonVerdict]:
    """The verdicts of those of `person_ids` that matching has evaluated and not merged away,
    in no particular order: who is missing has no verdict yet."""
    if not body.person_ids:
        return []
    query = sa.select(*_COLUMNS).where(
        persons.c.person_id.in_(set(body.person_ids)),
        persons.c.merged_into.is_(None),
        persons.c.evaluated_at.is_not(None),
    )
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        rows = (await connection.execute(query)).all()
    return [_person_verdict(row) for row in rows]


# -- A partner's search (the DCI Social Registry API, through the gateway) -------------------------

MAX_SEARCH_PAGE: Final = 1000


class VerdictSearch(BaseModel):
    filter: Filter
    page_size: int = Field(ge=1, le=MAX_SEARCH_PAGE)
    page_number: int = Field(default=1, ge=1)
    after: UUID | None = None
    """Keyset paging for a reader of the whole selection (the gateway's exchanges): the page
    after this person_id (the nil UUID for the first); page_number stays 1, no total is
    counted."""


class VerdictSearchPage(BaseModel):
    items: list[PersonVerdict]
    total_count: int | None
    """How many the filter selects; null for a keyset page."""
    next_after: UUID | None = None
    """The `after` of the next keyset page; null on the last one (and for numbered pages)."""


_VALUE_OF: Final[dict[str, Any]] = {
    "gender": persons.c.verdict["gender"].astext,
    "birth_year": persons.c.verdict["birth_year"].astext.cast(sa.Integer),
    "registration": persons.c.registration,
    "deceased": persons.c.verdict["deceased"].astext.cast(sa.Boolean),
    **{name: persons.c.verdict["statuses"][name].astext for name in INSURANCE_ATTRIBUTES},
    "household_registered_locally": persons.c.verdict["household_registered_locally"]
    .astext.cast(sa.Boolean),
    "insured_in_province": sa.or_(*(
        persons.c.verdict["statuses"][name].astext.in_(INSURED_IN_PROVINCE_CODES)
        for name in INSURANCE_ATTRIBUTES
    )),
}  # fmt: skip


def _condition(condition: Condition) -> Any:
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    if condition.attribute == "region":
        if condition.cmp not in ("eq", "in"):
            raise SearchInvalid("region is compared with eq or in")
        prefixes = [division_prefix(str(v)) for v in values]
        return sa.or_(*(persons.c.region_code.startswith(p, autoescape=True) for p in prefixes))
    column = _VALUE_OF[condition.attribute]
    if condition.cmp == "in":
        return column.in_(values)
    if isinstance(condition.value, list):
        raise SearchInvalid(f"{condition.cmp} compares with one value, not a list")
    value = condition.value
    compare = {
        "eq": column.__eq__,
        "gt": column.__gt__,
        "lt": column.__lt__,
        "ge": column.__ge__,
        "le": column.__le__,
    }[condition.cmp]
    return compare(value)


def _filter(node: Filter | Condition) -> Any:
    if isinstance(node, Condition):
        return _condition(node)
    parts = [_filter(part) for part in node.parts]
    if node.op == "all":
        return sa.and_(*parts)
    if node.op == "any":
        return sa.or_(*parts)
    return sa.not_(parts[0])


class SearchInvalid(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "search-invalid", "检索条件无效 (invalid search)", detail)


@router.post(
    "/verdicts/search",
    summary="People by attributes of their verdict, a page at a time (a partner's registry search)",
)
async def search_verdicts(
    body: VerdictSearch, database: Annotated[Database, Depends(_database)]
) -> VerdictSearchPage:
    """Living or dead, in scope, evaluated, not merged; ordered by person_id (stable pages)."""
    if not names_a_region(body.filter):
        raise SearchInvalid("a search names the division (region) it covers")
    if body.after is not None and body.page_number != 1:
        raise SearchInvalid("after (keyset paging) or page_number, not both")
    where = sa.and_(
        _filter(body.filter),
        persons.c.in_scope.is_(True),
        persons.c.merged_into.is_(None),
        persons.c.verdict.is_not(None),
    )
    query = sa.select(*_COLUMNS).order_by(persons.c.person_id).limit(body.page_size)
    if body.after is not None:
        rows = await _read(database, query.where(where, persons.c.person_id > body.after))
        last = rows[-1].person_id if len(rows) == body.page_size else None
        return VerdictSearchPage(
            items=[_person_verdict(row) for row in rows], total_count=None, next_after=last
        )
    query = query.where(where).offset((body.page_number - 1) * body.page_size)
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="REPEATABLE READ")
        async with connection.begin():
            total = await connection.scalar(sa.select(sa.func.count()).where(where))
            rows = list((await connection.execute(query)).all())
    return VerdictSearchPage(items=[_person_verdict(row) for row in rows], total_count=total or 0)


async def _read(database: Database, query: Any) -> list[Any]:
    async with database.engine.connect() as connection:
        return list((await connection.execute(query)).all())
