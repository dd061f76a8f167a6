"""Reports (api.md "Reports"): the quarterly basic-data table of domain.md §6, computed by the
reporting service from the registry's events, shown to analysts for their region — a city's
analyst its city's row, a province's every city and the total. `format=csv|xlsx|pdf` is the
table as a file (reporting's exports.py draws it). The numbers are not personal data; the
people behind a number are (报表及对应人员明细, domain.md §2.6): masked, and each one listed is
audited as read for analysis."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import StreamingResponse

from canbao_contracts.codes import Insurance, RegistrationState, StatusCode, SurveyReason
from canbao_contracts.id_numbers import mask
from canbao_contracts.reports import (
    CellPeople,
    CoverageResponse,
    Employers,
    Filing,
    FilingState,
    ListPeople,
    PersonBehind,
    PlanLists,
    QuarterlyTable,
    SetTargets,
    Signatures,
    Targets,
)
from canbao_gateway import problems
from canbao_gateway.audit import AuditedPerson, AuditTrail, Outcome, Purpose
from canbao_gateway.auth import AuditDep, require
from canbao_gateway.service_clients import (
    IdentityClient,
    ReportingClient,
    identity_client,
    reporting_client,
)
from canbao_gateway.staff import Role, Staff

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
REPORT_ROLES: Final = (Role.ANALYST,)

ReportingDep = Annotated[ReportingClient, Depends(reporting_client)]
GENDERS: Final = {"1": "男", "2": "女"}
REGISTRATION_LABELS: Final = {state.value: state.label for state in RegistrationState}
REASON_LABELS: Final = {reason.value: reason.label for reason in SurveyReason}
FILES: Final = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
BINARY: Final = {"schema": {"type": "string", "format": "binary"}}
IdentityDep = Annotated[IdentityClient, Depends(identity_client)]


Page = TypeVar("Page", CellPeople, ListPeople)


@dataclass(frozen=True, slots=True)
class PeopleShown:
    """How the people behind a report reach an analyst (domain.md §2.6): with their names and
    numbers masked, from identity, and each one written to the audit log (purpose analysis)
    before the analyst sees them."""

    staff: Staff
    identity: IdentityClient
    audit: AuditTrail

    async def masked(self, counted: list[dict[str, Any]]) -> list[PersonBehind]:
        """Reporting's people, masked and audited."""
        person_ids = [UUID(p["person_id"]) for p in counted]
        known = (
            await self.identity.identifiers(person_ids, caller=self.staff) if person_ids else None
        )
        people = []
        for entry in counted:
            person_id = UUID(entry["person_id"])
            number = known.numbers.get(person_id) if known else None
            name = known.masked_names.get(person_id) if known else None
            masked = {"name": name, "id_number": mask(number) if number else None}
            people.append(PersonBehind.model_validate(entry | masked))
        await self.audit.record_many(
            purpose=Purpose.ANALYSIS,
            people=[
                AuditedPerson(
                    known.numbers.get(p.person_id) if known else None,
                    p.person_id,
                    Outcome.OK,
                    region=p.region_code,
                )
                for p in people
            ],
        )
        return people

    async def page(self, answer: dict[str, Any], model: type[Page]) -> Page:
        """A page of reporting's answer as `model`, its people masked and audited."""
        return model.model_validate(answer | {"people": await self.masked(answer["people"])})


def people_shown(
    staff: Annotated[Staff, require(*REPORT_ROLES)], identity: IdentityDep, audit: AuditDep
) -> PeopleShown:
    return PeopleShown(staff, identity, audit)


ShownDep = Annotated[PeopleShown, Depends(people_shown)]


def _given(**values: Any) -> dict[str, Any]:
    """The query parameters for reporting: those the caller gave (`?cursor=` is none)."""
    return {name: value for name, value in values.items() if value not in (None, "")}


ERRORS: Final = problems.problem_responses(
    {
        401: problems.UNAUTHENTICATED,
        403: "role-not-allowed",
        422: "invalid-quarter, future-quarter (a quarter like 2026Q3 that has begun), "
        "invalid-request",
        503: "reporting-unavailable",
    }
)


FILE_ANSWERS: Final = {
    "description": "json, or the table as the file `format` names",
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        FILES["xlsx"]: BINARY,
        FILES["pdf"]: BINARY,
    },
}


@router.get(
    "/quarterly/{quarter}",
    responses=ERRORS | {200: FILE_ANSWERS},
    summary="全民参保登记基础数据情况表: the quarterly basic-data table of your region",
)
async def quarterly_table(
    quarter: str,
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
    format: Literal["json", "csv", "xlsx", "pdf"] = "json",
) -> QuarterlyTable:
    """The table as JSON, or as a file to download, named
    `全民参保登记基础数据情况表-<quarter>-<region>.<format>`:

    * `csv`: UTF-8 with a BOM, so that Excel opens the Chinese right;
    * `xlsx`: laid out like the form of 41号 attachment 3 (the column groups over the column
      names and numbers, a row per city and the total, the provisional mark, the logical checks
      on the sheet 校验, empty cells for the signatures 填表人, 处(科)负责人, 单位负责人, 报出日期);
    * `pdf`: the same form on A4 landscape, to sign on paper (beyond api.md's json|csv|xlsx, an
      addition as api.md allows)."""
    answer = await reporting.quarterly(quarter, region=staff.scope, format=format, caller=staff)
    if format != "json":
        name = quote(f"全民参保登记基础数据情况表-{quarter}-{staff.scope}.{format}")
        return Response(  # type: ignore[return-value]  # the file, not the model
            answer.content,
            media_type=FILES[format],
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
        )
    return QuarterlyTable.model_validate(answer.json())


PEOPLE_ERRORS: Final = problems.problem_responses(
    {
        401: problems.UNAUTHENTICATED,
        403: "role-not-allowed, city-out-of-scope (a row outside your region)",
        422: "invalid-quarter, future-quarter, invalid-cell, invalid-cursor, invalid-request",
        503: "reporting-unavailable, identity-unavailable",
    }
)


@router.get(
    "/quarterly/{quarter}/people",
    responses=PEOPLE_ERRORS,
    summary="报表及对应人员明细: the people behind a number of the quarterly table",
)
async def cell_people(
    quarter: str,
    shown: ShownDep,
    reporting: ReportingDep,
    city: Annotated[str, Query(max_length=16, description="a row's city code, or `total`")],
    column: Annotated[int, Query(ge=1, le=17, description="a column of domain.md §6")],
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CellPeople:
    """Exactly the people a cell of your region's table counts, a page at a time (their count
    equals the cell); masked, each one audited as read for analysis."""
    params = _given(city=city, column=column, limit=limit, cursor=cursor)
    staff = shown.staff
    page = await reporting.people(quarter, region=staff.scope, params=params, caller=staff)
    return await shown.page(page, CellPeople)


COVERAGE_ERRORS: Final = problems.problem_responses(
    {
        401: problems.UNAUTHENTICATED,
        403: "role-not-allowed, region-out-of-scope (a division outside your region)",
        422: "invalid-region, invalid-quarter, future-quarter, invalid-request",
        503: "reporting-unavailable",
    }
)


@router.get(
    "/coverage",
    responses=COVERAGE_ERRORS,
    summary="参保率、登记率、调查率: coverage and progress by division",
)
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
    params = _given(division=region, insurance=insurance, quarter=quarter)
    answer = await reporting.coverage(region=staff.scope, params=params, caller=staff)
    return CoverageResponse.model_validate(answer)


TARGET_ERRORS: Final = problems.problem_responses(
    {
        400: "bad-request: a body that cannot be parsed",
        401: problems.UNAUTHENTICATED,
        403: "role-not-allowed, region-out-of-scope (a division outside your region)",
        422: "invalid-target (a year from 2000, a rate in (0, 1] of an insurance), invalid-region, "
        "invalid-request",
        503: "reporting-unavailable",
    }
)


@router.get(
    "/targets/{year}",
    responses=TARGET_ERRORS,
    summary="年度扩面计划: the coverage targets of a year in your region",
)
async def targets(
    year: int, staff: Annotated[Staff, require(*REPORT_ROLES)], reporting: ReportingDep
) -> Targets:
    """Each division's targets within your region and those of the divisions containing it (a
    province's target holds in a city that has none of its own)."""
    return Targets.model_validate(await reporting.targets(year, region=staff.scope, caller=staff))


@router.put(
    "/targets/{year}",
    responses=TARGET_ERRORS,
    summary="年度扩面计划: enter a division's coverage targets for a year",
)
async def set_targets(
    year: int,
    body: SetTargets,
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
) -> Targets:
    """The annual expansion plan (40号 三(二)1): the province or a city enters the target of each
    insurance for a division within its region; coverage shows progress against it and ranks
    the slowest divisions."""
    answer = await reporting.targets(
        year, region=staff.scope, caller=staff, entered=body.model_dump()
    )
    return Targets.model_validate(answer)


LIST_ERRORS: Final = problems.problem_responses(
    {
        401: problems.UNAUTHENTICATED,
        403: "role-not-allowed, region-out-of-scope (a division outside your region)",
        422: "invalid-region, invalid-quarter, future-quarter, invalid-cursor, invalid-request",
        503: "reporting-unavailable, identity-unavailable",
    }
)
EXPORT_PAGE: Final = 500
LIST_CSV_HEADER: Final = ("姓名", "公民身份号码", "行政区划代码", "性别", "出生年份", "登记状态",
                          *(i.label for i in Insurance), "需调查原因")  # fmt: skip


@router.get(
    "/lists",
    responses=LIST_ERRORS,
    summary="参保名单: how many people each list of the plans holds",
)
async def plan_lists(
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
    region: Annotated[str | None, Query(max_length=12)] = None,
    quarter: Annotated[str | None, Query(max_length=16)] = None,
) -> PlanLists:
    """Insured locally or elsewhere, uninsured, partly insured, interrupted, selectively enrolled,
    employees in residents' schemes (44号 Art.29-30): the people on each list per division of
    your region (or of `region` within it). Numbers only."""
    params = _given(division=region, quarter=quarter)
    answer = await reporting.lists(None, region=staff.scope, params=params, caller=staff)
    return PlanLists.model_validate(answer)


@router.get(
    "/lists/{name}",
    responses=LIST_ERRORS | {200: {"content": {"text/csv": {}}}},
    summary="参保名单: the people on one of the plans' lists, masked",
)
async def list_people(
    name: str,
    shown: ShownDep,
    reporting: ReportingDep,
    region: Annotated[str | None, Query(max_length=12)] = None,
    quarter: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    format: Literal["json", "csv"] = "json",
) -> ListPeople:
    """A page of the list's people (masked, each audited), or with `format=csv` the whole list
    of the division as a file Excel opens (UTF-8 with a BOM), fetched and audited page by page
    as it is written."""
    params = _given(division=region, quarter=quarter, cursor=cursor, limit=limit)
    staff = shown.staff
    if format == "csv":
        # The first page before answering: a refusal is a problem, not a broken download.
        first = await reporting.lists(
            name, region=staff.scope, caller=staff, params=params | {"limit": EXPORT_PAGE}
        )
        filename = quote(f"{first['label']}-{first['region']}.csv")
        return StreamingResponse(  # type: ignore[return-value]  # the file, not the model
            _list_csv(first, name, params, reporting, shown),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"},
        )
    page = await reporting.lists(name, region=staff.scope, params=params, caller=staff)
    return await shown.page(page, ListPeople)


async def _list_csv(
    page: dict[str, Any],
    name: str,
    params: dict[str, Any],
    reporting: ReportingClient,
    shown: PeopleShown,
) -> AsyncIterator[bytes]:
    staff = shown.staff
    yield "\ufeff".encode()
    while True:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        if "cursor" not in params:
            writer.writerow(LIST_CSV_HEADER)
        for person in await shown.masked(page["people"]):
            writer.writerow(
                [
                    person.name or "",
                    person.id_number or "",
                    person.region_code or "",
                    GENDERS.get(person.gender or "", ""),
                    person.birth_year or "",
                    REGISTRATION_LABELS.get(person.registration, person.registration),
                    *(_code_label(person.statuses.get(i.value)) for i in Insurance),
                    "；".join(REASON_LABELS.get(r, r) for r in person.survey_reasons),
                ]
            )
        yield out.getvalue().encode()
        if page["next_cursor"] is None:
            return
        params = params | {"cursor": page["next_cursor"], "limit": EXPORT_PAGE}
        page = await reporting.lists(name, region=staff.scope, params=params, caller=staff)


def _code_label(code: str | None) -> str:
    return "" if code is None else f"{code} {StatusCode(code).label}"


FILING_ERRORS: Final = problems.problem_responses(
    {
        400: "bad-request: a body that cannot be parsed",
        401: problems.UNAUTHENTICATED,
        403: "role-not-allowed, not-a-filing-division (a county: the province and cities file)",
        404: "not-filed (the signed files of a filing not made)",
        409: "already-filed (a filed table does not change)",
        422: "invalid-quarter, future-quarter, quarter-not-ended, checks-unexplained (a failed "
        "check needs the note 相关情况说明), invalid-request",
        503: "reporting-unavailable",
    }
)


@router.post(
    "/quarterly/{quarter}/filing",
    responses=FILING_ERRORS,
    status_code=201,
    summary="报送: file the quarter's table of your province or city, signed",
)
async def file_table(
    quarter: str,
    signed: Signatures,
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
) -> Filing:
    """Sign off a quarter that has ended (domain.md §6: 填表人, 处(科)负责人, 单位负责人, 报出日期,
    相关情况说明): the table of your province or city is kept as filed, with its xlsx and PDF as
    signed, and never changes. Due by the 25th of the month after the quarter."""
    answer = await reporting.filing(
        quarter, region=staff.scope, caller=staff, signed=signed.model_dump(mode="json")
    )
    return Filing.model_validate(answer.json())


@router.get(
    "/quarterly/{quarter}/filing",
    responses=FILING_ERRORS | {200: {"content": {FILES["xlsx"]: BINARY, FILES["pdf"]: BINARY}}},
    summary="报送情况: the quarter's filing of your region; the signed files",
)
async def filing(
    quarter: str,
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
    format: Literal["json", "xlsx", "pdf"] = "json",
) -> FilingState:
    """Filed, open or overdue, with the filing as made; a province sees each city's too.
    `format=xlsx|pdf`: the files as they were signed."""
    answer = await reporting.filing(quarter, region=staff.scope, caller=staff, format=format)
    if format != "json":
        name = quote(f"全民参保登记基础数据情况表-{quarter}-{staff.scope}-报送.{format}")
        return Response(  # type: ignore[return-value]  # the file, not the model
            answer.content,
            media_type=FILES[format],
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"},
        )
    return FilingState.model_validate(answer.json())


@router.get(
    "/employers", responses=LIST_ERRORS, summary="单位应参保未参保: employers leaving employees out"
)
async def employers(
    staff: Annotated[Staff, require(*REPORT_ROLES)],
    reporting: ReportingDep,
    region: Annotated[str | None, Query(max_length=12)] = None,
    quarter: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Employers:
    """Per unit (AAB001; its name AAB004 and credit code AAB003 where the core system holds
    them), its employees in your region (or `region` within it) employed but not enrolled in
    each insurance (code 92), the units leaving out the most first: the list labour inspection
    (劳动监察) works through. Numbers only, no person."""
    params = _given(division=region, quarter=quarter, limit=limit)
    answer = await reporting.employers(None, region=staff.scope, params=params, caller=staff)
    return Employers.model_validate(answer)


@router.get(
    "/employers/{unit_id}",
    responses=LIST_ERRORS,
    summary="单位应参保未参保职工名单: a unit's employees left out",
)
async def employees_owed(
    unit_id: Annotated[str, Path(min_length=1, max_length=64)],
    shown: ShownDep,
    reporting: ReportingDep,
    region: Annotated[str | None, Query(max_length=12)] = None,
    quarter: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ListPeople:
    """A page of the unit's employees in your region not enrolled in some insurance, masked,
    each one audited as read for analysis."""
    params = _given(division=region, quarter=quarter, cursor=cursor, limit=limit)
    staff = shown.staff
    page = await reporting.employers(unit_id, region=staff.scope, params=params, caller=staff)
    return await shown.page(page, ListPeople)
