"""Reports (api.md "Reports"): the quarterly basic-data table of domain.md §6, computed by the
reporting service from the registry's events, shown to analysts for their region — a city's
analyst its city's row, a province's every city and the total. `format=csv` is the table as a
file (UTF-8 with a BOM: Excel opens the Chinese right). The numbers are not personal data; the
people behind a number are (报表及对应人员明细, domain.md §2.6): masked, and each one listed is
audited as read for analysis."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from canbao_contracts.codes import Insurance
from canbao_contracts.id_numbers import mask
from canbao_contracts.reports import CoverageResponse, SetTargets, Targets
from canbao_gateway import problems
from canbao_gateway.audit import AuditedPerson, Outcome, Purpose
from canbao_gateway.auth import AuditDep, require
from canbao_gateway.registry import (
    IdentityClient,
    ReportingClient,
    identity_client,
    reporting_client,
)
from canbao_gateway.staff import Role, Staff

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
REPORT_ROLES: Final = (Role.ANALYST,)

ReportingDep = Annotated[ReportingClient, Depends(reporting_client)]
IdentityDep = Annotated[IdentityClient, Depends(identity_client)]


class TableRow(BaseModel):
    city: str
    """The city's GB/T 2260 code (four digits), `total`, or `unknown` (no division known)."""
    name: str
    columns: dict[str, int]
    """Columns "1" to "17" of domain.md §6: people."""


class TableCheck(BaseModel):
    rule: str
    city: str
    passed: bool


class QuarterlyTable(BaseModel):
    quarter: str
    as_of: datetime
    provisional: bool
    """True for the current quarter: as of now, it changes until the quarter ends; a past
    quarter never changes (events arriving later count in the quarter they arrive in)."""
    rows: list[TableRow]
    checks: list[TableCheck]
    """The logical checks of domain.md §6, for the rows shown."""


ERRORS: Final = problems.problem_responses({
    401: problems.UNAUTHENTICATED,
    403: "role-not-allowed",
    422: "invalid-quarter, future-quarter (a quarter like 2026Q3 that has begun), "
    "invalid-request",
    503: "reporting-unavailable",
})  # fmt: skip


@router.get(
    "/quarterly/{quarter}",
    responses=ERRORS | {200: {"content": {"text/csv": {}}}},
    summary="全民参保登记基础数据情况表: the quarterly basic-data table of your region",
)
async def quarterly_table(
    quarter: str,
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
    format: Literal["json", "csv"] = "json",
) -> QuarterlyTable:
    answer = await reporting.quarterly(quarter, region=staff.scope, format=format, caller=staff)
    if format == "csv":
        name = quote(f"全民参保登记基础数据情况表-{quarter}-{staff.scope}.csv")
        return Response(  # type: ignore[return-value]  # the file, not the model
            answer.content, media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
        )  # fmt: skip
    return QuarterlyTable.model_validate(answer.json())


class PersonBehind(BaseModel):
    """One person counted in the cell, masked (api.md), with what the verdict counted."""

    person_id: UUID
    name: str | None
    """张*; null while no source gives a name."""
    id_number: str | None
    """5201**********123X; null for a person known without a citizen number."""
    city: str
    """The row they count in (in the total row, once per city they count in)."""
    region_code: str | None
    gender: str | None
    birth_year: int | None
    registration: str
    statuses: dict[str, str | None]
    survey_reasons: list[str]


class CellPeople(BaseModel):
    quarter: str
    as_of: datetime
    provisional: bool
    city: str
    column: int
    column_name: str
    count: int
    """The cell's number: all pages together list this many entries."""
    people: list[PersonBehind]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last."""


PEOPLE_ERRORS: Final = problems.problem_responses({
    401: problems.UNAUTHENTICATED,
    403: "role-not-allowed, city-out-of-scope (a row outside your region)",
    422: "invalid-quarter, future-quarter, invalid-cell, invalid-cursor, invalid-request",
    503: "reporting-unavailable, identity-unavailable",
})  # fmt: skip


@router.get(
    "/quarterly/{quarter}/people",
    responses=PEOPLE_ERRORS,
    summary="报表及对应人员明细: the people behind a number of the quarterly table",
)
async def cell_people(
    quarter: str,
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
    identity: IdentityDep,
    audit: AuditDep,
    city: Annotated[str, Query(max_length=16, description="a row's city code, or `total`")],
    column: Annotated[int, Query(ge=1, le=17, description="a column of domain.md §6")],
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CellPeople:
    """Exactly the people a cell of your region's table counts, a page at a time (their count
    equals the cell); masked, each one audited as read for analysis."""
    params: dict[str, Any] = {"city": city, "column": column, "limit": limit}
    if cursor:
        params["cursor"] = cursor
    page = await reporting.people(quarter, region=staff.scope, params=params, caller=staff)
    person_ids = [UUID(p["person_id"]) for p in page["people"]]
    known = await identity.identifiers(person_ids, caller=staff) if person_ids else None
    people = []
    for entry in page["people"]:
        person_id = UUID(entry["person_id"])
        number = known.numbers.get(person_id) if known else None
        name = known.masked_names.get(person_id) if known else None
        people.append(PersonBehind(**entry, name=name, id_number=mask(number) if number else None))
    # Written before the answer, as every read of personal data (audit.py).
    await audit.record_many(purpose=Purpose.ANALYSIS, people=[
        AuditedPerson(known.numbers.get(p.person_id) if known else None, p.person_id,
                      Outcome.OK, region=p.region_code)
        for p in people
    ])  # fmt: skip
    return CellPeople.model_validate(page | {"people": people})


COVERAGE_ERRORS: Final = problems.problem_responses({
    401: problems.UNAUTHENTICATED,
    403: "role-not-allowed, region-out-of-scope (a division outside your region)",
    422: "invalid-region, invalid-quarter, future-quarter, invalid-request",
    503: "reporting-unavailable",
})  # fmt: skip


@router.get("/coverage", responses=COVERAGE_ERRORS,
            summary="参保率、登记率、调查率: coverage and progress by division")  # fmt: skip
async def coverage(
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
    region: Annotated[
        str | None,
        Query(max_length=12, description="a division within yours (GB/T 2260); default: yours"),
    ] = None,
    insurance: Insurance | None = None,
    quarter: Annotated[
        str | None,
        Query(max_length=16, description="as of its end; default: the current quarter, as of now"),
    ] = None,
) -> CoverageResponse:
    """Per division of your region (a province's cities, a city's counties) and in total: each
    insurance's coverage against its goal, the registration rate and the survey rate, over the
    living household-registered people. Numbers only: not audited as a read of personal data."""
    params: dict[str, Any] = {}
    for name, value in (("division", region), ("insurance", insurance), ("quarter", quarter)):
        if value is not None:
            params[name] = value
    answer = await reporting.coverage(region=staff.scope, params=params, caller=staff)
    return CoverageResponse.model_validate(answer)


TARGET_ERRORS: Final = problems.problem_responses({
    401: problems.UNAUTHENTICATED,
    403: "role-not-allowed, region-out-of-scope (a division outside your region)",
    422: "invalid-target (a year from 2000, a rate in (0, 1] of an insurance), invalid-region, "
    "invalid-request",
    503: "reporting-unavailable",
})  # fmt: skip


@router.get("/targets/{year}", responses=TARGET_ERRORS,
            summary="年度扩面计划: the coverage targets of a year in your region")  # fmt: skip
async def targets(
    year: int, staff: Annotated[Staff, require(*REPORT_ROLES)], reporting: ReportingDep
) -> Targets:
    """Each division's targets within your region and those of the divisions containing it (a
    province's target holds in a city that has none of its own)."""
    return Targets.model_validate(await reporting.targets(year, region=staff.scope, caller=staff))


@router.put("/targets/{year}", responses=TARGET_ERRORS,
            summary="年度扩面计划: enter a division's coverage targets for a year")  # fmt: skip
async def set_targets(
    year: int, body: SetTargets, staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
) -> Targets:  # fmt: skip
    """The annual expansion plan (40号 三(二)1): the province or a city enters the target of each
    insurance for a division within its region; coverage shows progress against it and ranks
    the slowest divisions."""
    answer = await reporting.targets(year, region=staff.scope, caller=staff,
                                     entered=body.model_dump())  # fmt: skip
    return Targets.model_validate(answer)
