"""The internal API for the gateway (api.md "Reports"): the quarterly basic-data table of
domain.md §6. A past quarter is computed as of its end by arrival time, so it never changes; the
current quarter is provisional, as of now. Errors are problem+json with stable types."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_contracts.codes import Insurance
from canbao_contracts.report_columns import COLUMN_NAMES_ZH
from canbao_contracts.reports import (
    CellPeople,
    Coverage,
    CoverageResponse,
    DivisionCoverage,
    DivisionFiling,
    EmployerGap,
    Employers,
    Filing,
    FilingState,
    InsuranceCoverage,
    ListPeople,
    PersonBehind,
    PlanListCount,
    PlanLists,
    QuarterlyTable,
    Registration,
    SetTargets,
    Signatures,
    SurveyProgress,
    TableCheck,
    TableRow,
    TargetEntry,
    Targets,
)
from canbao_platform.problems import Problem
from canbao_platform.service import Resources
from canbao_platform.service_tokens import CallerDep, current_caller
from canbao_reporting import exports, store, units
from canbao_reporting.coverage import (
    GOALS,
    NOBODY,
    SURVEY_GOAL,
    DivisionCounts,
    Target,
    rate,
    slowest_first,
    target_of,
)
from canbao_reporting.plan_lists import PlanList, long_interruption_cutoff
from canbao_reporting.quarterly_table import (
    COLUMNS,
    TOTAL,
    UNKNOWN_CITY,
    Row,
    rows_of,
    table_of,
)
from canbao_reporting.quarters import CHINA, Quarter
from canbao_reporting.settings import ReportingSettings

router = APIRouter(prefix="/internal/v1", tags=["reports"], dependencies=[Depends(current_caller)])
# No GB/T 2260 name table in the contracts yet: a city is shown by its code (api.md's "name").
ROW_NAMES: Final = {TOTAL: "合计", UNKNOWN_CITY: "行政区划不详"}
PAGE: Final = 100
MAX_PAGE: Final = 500


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    resources: Resources = request.app.state.resources
    async with resources.database.sessions() as session:
        yield session


def clock() -> Callable[[], datetime]:
    """Now; a test overrides this dependency to move time."""
    return lambda: datetime.now(UTC)


async def _cjk_font(request: Request) -> str:
    settings = request.app.state.resources.settings
    assert isinstance(settings, ReportingSettings)
    return settings.cjk_font


SessionDep = Annotated[AsyncSession, Depends(_session)]
ClockDep = Annotated[Callable[[], datetime], Depends(clock)]
FontDep = Annotated[str, Depends(_cjk_font)]


class InvalidQuarter(Problem):
    def __init__(self, text: str) -> None:
        super().__init__(
            422,
            "invalid-quarter",
            "季度格式应为 2026Q3 (quarter like 2026Q3)",
            f"{text!r} is not a quarter",
        )


class FutureQuarter(Problem):
    def __init__(self, quarter: Quarter) -> None:
        super().__init__(
            422,
            "future-quarter",
            "该季度尚未开始 (the quarter has not begun)",
            f"{quarter} begins {quarter.start.isoformat()}",
        )


def _row(city: str, row: Row, county: str) -> TableRow:
    """A row as shown: a county's analyst sees their county's people in their city's row,
    labelled by the county."""
    columns = {str(column): people for column, people in row.items()}
    region = county if county and city.isdigit() else city
    return TableRow(city=city, region=region, name=ROW_NAMES.get(region, region), columns=columns)


class InvalidRegion(Problem):
    def __init__(self, region: str) -> None:
        super().__init__(
            422,
            "invalid-region",
            "行政区划代码无效 (invalid division code)",
            f"{region!r}: a GB/T 2260 code of 2, 4 or 6 digits",
        )


def _division(region: str | None) -> str | None:
    """The code prefix of the division asked for (52, 5201, 520102 or with trailing zeros)."""
    if region is None:
        return None
    if not region.isascii() or not region.isdigit() or len(region) not in (2, 4, 6):
        raise InvalidRegion(region)
    prefix = region.rstrip("0") if len(region) == 6 else region
    return prefix + "0" * (len(prefix) % 2)


def _shown(city: str, division: str | None) -> bool:
    """A city's row is shown to a division that contains it or lies within it."""
    if division is None or city == TOTAL:
        return division is None or len(division) == 2
    return city.startswith(division[:4]) or (city == UNKNOWN_CITY and len(division) == 2)


@dataclass(frozen=True, slots=True)
class Moment:
    """The quarter asked and the moment its table is counted at."""

    quarter: Quarter
    as_of: datetime
    provisional: bool
    settled: bool
    """A past quarter that ended SETTLED ago: its counts are kept once counted (store.py)."""

    @property
    def before(self) -> datetime | None:
        """The states counted: applied before the quarter's end; the current quarter, all."""
        return None if self.provisional else self.as_of


# A state is stamped with its arrival (the consumer's clock) before its batch commits, so one
# stamped just before a quarter's end may still be committing after it (a batch under way,
# another instance's clock a little behind); an hour on, nothing stamped before the end is still
# to come, and the quarter's counts can be kept for good.
SETTLED: Final = timedelta(hours=1)


def _moment(quarter: str, now: datetime) -> Moment:
    asked = Quarter.parse(quarter)
    if asked is None:
        raise InvalidQuarter(quarter)
    if asked > Quarter.of(now):
        raise FutureQuarter(asked)
    if asked == Quarter.of(now):
        return Moment(asked, now, provisional=True, settled=False)
    return Moment(asked, asked.end, provisional=False, settled=now >= asked.end + SETTLED)


def _county(division: str | None) -> str:
    """The region prefix that narrows the people counted: a county's; '' for a city or the
    province, whose rows are whole cities."""
    return division if division is not None and len(division) == 6 else ""


async def _table(session: AsyncSession, moment: Moment, division: str | None) -> QuarterlyTable:
    """The table of the rows `division` sees, as of the moment."""
    county = _county(division)
    counts = await store.cell_counts(session, moment.before, region=county, keep=moment.settled)
    table = table_of(rows_of(counts))
    every = [*table.rows.items(), (TOTAL, table.total)]
    rows = [_row(city, row, county) for city, row in every if _shown(city, division)]
    shown = {row.city for row in rows}
    return QuarterlyTable(
        quarter=str(moment.quarter),
        as_of=moment.as_of.astimezone(UTC),
        provisional=moment.provisional,
        rows=rows,
        checks=[
            TableCheck(rule=c.rule, city=c.city, passed=c.passed)
            for c in table.checks
            if c.city in shown
        ],
    )


@router.get(
    "/reports/quarterly/{quarter}",
    summary="全民参保登记基础数据情况表 (domain.md §6)",
    response_model=QuarterlyTable,
)
async def quarterly(
    quarter: str,
    session: SessionDep,
    now: ClockDep,
    font: FontDep,
    region: str | None = None,
    format: Literal["json", "csv", "xlsx", "pdf"] = "json",
) -> QuarterlyTable | Response:
    """The table (`region`: only the rows of that division — a county's people in its city's
    row, a city's row, or the province's with its total); `format=csv|xlsx|pdf`: the table as
    a file (exports.py)."""
    division = _division(region)
    answer = await _table(session, _moment(quarter, now()), division)
    await session.commit()  # the quarter's counts, if kept for the first time
    if format == "json":
        return answer
    # Drawing a PDF takes CPU: off the event loop.
    file = await asyncio.to_thread(exports.render, answer, format, division=region, font_path=font)
    return Response(file, media_type=exports.MEDIA_TYPES[format])


class InvalidCell(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "invalid-cell", "表格单元无效 (no such cell of the table)", detail)


class CityOutOfScope(Problem):
    def __init__(self, city: str) -> None:
        super().__init__(
            403,
            "city-out-of-scope",
            "不在您的统计范围内 (outside your region)",
            f"row {city!r} is not in your region",
        )


class InvalidCursor(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "invalid-cursor",
            "分页游标无效 (invalid cursor)",
            "pass the next_cursor of the previous page as it was",
        )


def _cursor(text: str | None) -> tuple[UUID, str] | None:
    """`<person_id>/<city>` of the last person of the previous page."""
    if not text:
        return None
    person, _, city = text.partition("/")
    try:
        return UUID(person), _city(city)
    except (ValueError, InvalidCell):
        raise InvalidCursor() from None


def _person_cursor(text: str | None) -> UUID | None:
    """The person_id the previous page of a list ended with."""
    try:
        return UUID(text) if text else None
    except ValueError:
        raise InvalidCursor() from None


def _city(city: str) -> str:
    if city == UNKNOWN_CITY or (len(city) == 4 and city.isascii() and city.isdigit()):
        return city
    raise InvalidCell(f"city {city!r}: a four-digit city code, {UNKNOWN_CITY!r} or {TOTAL!r}")


@router.get(
    "/reports/quarterly/{quarter}/people",
    response_model=CellPeople,
    summary="The people behind a number of the table (报表及对应人员明细)",
)
async def cell_people(
    quarter: str,
    session: SessionDep,
    now: ClockDep,
    city: Annotated[str, Query(max_length=16)],
    column: Annotated[int, Query(ge=1, le=len(COLUMNS))],
    region: str | None = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
) -> CellPeople:
    """Exactly the people the cell counts (`city`: a row's code, `total` for the total row),
    by person_id; as many in all as the cell says (the same cells, quarterly_table.cells_of)."""
    division = _division(region)
    row = None if city == TOTAL else _city(city)
    if not _shown(city, division):
        raise CityOutOfScope(city)
    moment = _moment(quarter, now())
    county = _county(division)
    after = _cursor(cursor)
    # One more than the page: whether another page follows, without a cursor to an empty one.
    found = await store.people_in_cell(
        session, moment.before, city=row, column=column, region=county, after=after, limit=limit + 1
    )
    count = await store.people_counted(
        session, moment.before, city=row, column=column, region=county, keep=moment.settled
    )
    await session.commit()  # the quarter's counts, if kept for the first time
    found, more = found[:limit], len(found) > limit
    last = found[-1] if more else None
    return CellPeople(
        quarter=str(moment.quarter),
        as_of=moment.as_of.astimezone(UTC),
        provisional=moment.provisional,
        city=city,
        column=column,
        column_name=COLUMN_NAMES_ZH[column],
        count=count,
        people=[_counted(p) for p in found],
        next_cursor=None if last is None else f"{last.person_id}/{last.city}",
    )


def _counted(person: store.PersonInCell) -> PersonBehind:
    verdict = person.verdict
    return PersonBehind(
        person_id=person.person_id,
        city=person.city,
        region_code=verdict.get("region_code"),
        gender=verdict.get("gender"),
        birth_year=verdict.get("birth_year"),
        registration=verdict["registration"],
        statuses=verdict["statuses"],
        survey_reasons=verdict.get("survey_reasons", []),
    )


def _coverage(
    division: str, counts: DivisionCounts, insurances: list[Insurance], targets: dict[str, Target]
) -> Coverage:
    def of(insurance: Insurance) -> InsuranceCoverage:
        counted, target = counts.insurances[insurance], target_of(division, insurance, targets)
        return InsuranceCoverage(
            should=counted.should,
            insured=counted.insured,
            rate=counted.rate,
            goal=GOALS[insurance],
            target=target,
            gap=None if counted.rate is None else round(counted.rate - target, 4),
        )

    return Coverage(
        people=counts.people,
        insurances={i.value: of(i) for i in insurances},
        registration=Registration(
            people=counts.people,
            registered=counts.registered,
            rate=rate(counts.registered, counts.people),
        ),
        survey=SurveyProgress(
            needing=counts.needing,
            verified=counts.verified,
            rate=rate(counts.verified, counts.needing),
            goal=SURVEY_GOAL,
        ),
    )


class DivisionOutOfScope(Problem):
    def __init__(self, division: str) -> None:
        super().__init__(
            403,
            "region-out-of-scope",
            "不在您的统计范围内 (outside your region)",
            f"division {division!r} is not within your region",
        )


def _scope(region: str | None, division: str | None) -> str:
    """The division asked (default: the caller's whole region), refused outside it."""
    scope = _division(region) or ""
    asked = _division(division) if division is not None else scope
    if asked is None or not asked.startswith(scope):
        raise DivisionOutOfScope(division or "")
    return asked


@dataclass(frozen=True, slots=True)
class Asked:
    """What a report of a division is asked for: the division (`region`: the caller's region
    unless a division within it is named) and the moment its counts are taken at (the end of
    `quarter`, or now for the current one)."""

    region: str
    moment: Moment

    def header(self) -> dict[str, Any]:
        """The fields every such answer begins with."""
        return {
            "quarter": str(self.moment.quarter),
            "region": self.region,
            "as_of": self.moment.as_of.astimezone(UTC),
            "provisional": self.moment.provisional,
        }


def _asked(
    now: ClockDep,
    region: str | None = None,
    division: str | None = None,
    quarter: Annotated[str | None, Query(max_length=16)] = None,
) -> Asked:
    """`region`: the caller's scope (the gateway passes it); `division`: one within it."""
    return Asked(_scope(region, division), _moment(quarter or str(Quarter.of(now())), now()))


AskedDep = Annotated[Asked, Depends(_asked)]


@router.get(
    "/reports/coverage",
    response_model=CoverageResponse,
    summary="Coverage, registration and survey rates by division",
)
async def coverage(
    session: SessionDep,
    asked: AskedDep,
    insurance: Insurance | None = None,
) -> CoverageResponse:
    """The rates of `division` (default: all of `region`, the caller's scope) and of each of its
    next-level divisions, as of now or of a quarter's end (`quarter`)."""
    division, moment = asked.region, asked.moment
    digits = 6 if len(division) >= 4 else 4
    found = await store.coverage_counts(
        session, moment.before, region=division, digits=digits, keep=moment.settled
    )
    await session.commit()  # the quarter's counts, if kept for the first time
    targets = await store.targets(session, year=moment.quarter.year, within=division)
    insurances = [insurance] if insurance is not None else list(Insurance)
    ordered = sorted(found, key=lambda d: (d == UNKNOWN_CITY, d))
    divisions = [
        DivisionCoverage(
            region=d,
            name=ROW_NAMES.get(d, d),
            **_coverage(d, found[d], insurances, targets).model_dump(),
        )
        for d in ordered
    ]
    return CoverageResponse(
        **asked.header(),
        divisions=divisions,
        total=_coverage(division, sum(found.values(), NOBODY), insurances, targets),
        slowest={
            i.value: slowest_first(
                {
                    d.region: (d.insurances[i.value].rate, d.insurances[i.value].target)
                    for d in divisions
                    if d.region != UNKNOWN_CITY
                }
            )
            for i in insurances
        },
    )


class InvalidTarget(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "invalid-target", "目标无效 (invalid target)", detail)


def _year(year: int, now: datetime) -> int:
    if not 2000 <= year <= Quarter.of(now).year + 5:
        raise InvalidTarget(f"year {year}: from 2000 to five years ahead")
    return year


@router.put(
    "/reports/targets/{year}",
    response_model=Targets,
    summary="Enter a division's coverage targets for a year",
)
async def set_targets(
    year: int,
    body: SetTargets,
    session: SessionDep,
    now: ClockDep,
    caller: CallerDep,
    region: str | None = None,
) -> Targets:
    """The annual expansion plan (40号 三(二)1): a province or city enters, for a division within
    its region (`region`: the caller's scope), the target of each insurance it plans for."""
    moment = now()
    scope = _division(region) or ""
    division = _division(body.region)
    if division is None or not division.startswith(scope):
        raise DivisionOutOfScope(body.region)
    rates: dict[Insurance, float] = {}
    for name, value in body.rates.items():
        if name not in {i.value for i in Insurance} or not 0 < value <= 1:
            raise InvalidTarget(f"{name}: {value}; an insurance's target is a rate in (0, 1]")
        rates[Insurance(name)] = value
    async with session.begin():
        await store.set_targets(
            session,
            region=division,
            year=_year(year, moment),
            rates=rates,
            set_by=caller.username,
            at=moment,
        )
    return await targets_of(year, session, now, region=division)


@router.get(
    "/reports/targets/{year}",
    response_model=Targets,
    summary="The coverage targets of a year in a region",
)
async def targets_of(
    year: int, session: SessionDep, now: ClockDep, region: str | None = None
) -> Targets:
    within = _division(region) or ""
    found = await store.targets(session, year=_year(year, now()), within=within)
    return Targets(
        year=year,
        targets=[
            TargetEntry(
                region=division,
                insurance=insurance.value,
                rate=entry.rate,
                set_by=entry.set_by,
                set_at=entry.set_at,
            )
            for division, rates in sorted(found.items())
            for insurance, entry in rates.items()
        ],
    )


def _cutoff(moment: Moment) -> date:
    """The long-interrupted of a list counted at the moment (plan_lists.py)."""
    return long_interruption_cutoff(moment.as_of.astimezone(CHINA).date())


@router.get(
    "/reports/lists",
    response_model=PlanLists,
    summary="How many people each of the plans' lists holds, by division",
)
async def plan_lists(
    session: SessionDep,
    asked: AskedDep,
) -> PlanLists:
    division, moment = asked.region, asked.moment
    digits = 6 if len(division) >= 4 else 4
    counts = await store.list_counts(
        session, moment.before, region=division, digits=digits, cutoff=_cutoff(moment)
    )
    divisions = sorted({d for d, _ in counts}, key=lambda d: (d == UNKNOWN_CITY, d))
    return PlanLists(
        **asked.header(),
        lists=[
            PlanListCount(
                name=name.value,
                label=name.label,
                divisions={d: counts.get((d, name), 0) for d in divisions},
                total=sum(counts.get((d, name), 0) for d in divisions),
            )
            for name in PlanList
        ],
    )


@router.get(
    "/reports/lists/{name}",
    response_model=ListPeople,
    summary="The people on one of the plans' lists",
)
async def list_people(
    name: PlanList,
    session: SessionDep,
    asked: AskedDep,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
) -> ListPeople:
    """The people on the list in the division (default: the caller's region), by person_id;
    each with the codes and survey reasons that put them there."""
    division, moment = asked.region, asked.moment
    after = _person_cursor(cursor)
    found = await store.people_on_list(
        session,
        moment.before,
        name=name,
        region=division,
        cutoff=_cutoff(moment),
        after=after,
        limit=limit + 1,
    )
    counts = await store.list_counts(
        session, moment.before, region=division, digits=2, cutoff=_cutoff(moment)
    )
    found, more = found[:limit], len(found) > limit
    return ListPeople(
        **asked.header(),
        name=name.value,
        label=name.label,
        count=sum(n for (_, listed), n in counts.items() if listed is name),
        people=[_counted(p) for p in found],
        next_cursor=str(found[-1].person_id) if more else None,
    )


# -- Filing (domain.md §6: signed off by the city and the province, due by the 25th) ---------------


class NotAFilingDivision(Problem):
    def __init__(self, region: str) -> None:
        super().__init__(
            403,
            "not-a-filing-division",
            "只有省、市填报本表 (filed by a province or city)",
            f"{region!r} files no table: the province and its cities do",
        )


class QuarterNotEnded(Problem):
    def __init__(self, quarter: Quarter) -> None:
        super().__init__(
            422,
            "quarter-not-ended",
            "季度尚未结束 (the quarter has not ended)",
            f"{quarter} ends {quarter.end.isoformat()}",
        )


class ChecksUnexplained(Problem):
    def __init__(self, failed: list[str]) -> None:
        super().__init__(
            422,
            "checks-unexplained",
            "逻辑校验未通过，须填写相关情况说明 (explain the failed checks)",
            "failed: " + "; ".join(failed),
            failed=failed,
        )


class AlreadyFiled(Problem):
    def __init__(self, quarter: str, region: str) -> None:
        super().__init__(
            409,
            "already-filed",
            "本季度已报送 (already filed)",
            f"{region} filed {quarter}; a filed table does not change",
        )


class NotFiled(Problem):
    def __init__(self, quarter: str, region: str) -> None:
        super().__init__(
            404, "not-filed", "本季度尚未报送 (not filed)", f"{region} has not filed {quarter}"
        )


def _filer(region: str | None) -> str:
    division = _division(region)
    if division is None or len(division) not in (2, 4):
        raise NotAFilingDivision(region or "")
    return division


def _due(quarter: Quarter) -> date:
    """The 25th of the month after the quarter (domain.md §6)."""
    return quarter.end.date().replace(day=25)


def _state(filed: datetime | None, due: date, now: datetime) -> Literal["filed", "open", "overdue"]:
    if filed is not None:
        return "filed"
    return "overdue" if now.astimezone(CHINA).date() > due else "open"


def _filing(row: store.FiledRow, quarter: Quarter) -> Filing:
    due = _due(quarter)
    return Filing(
        quarter=row.quarter,
        region=row.region,
        due=due,
        filed_at=row.filed_at,
        filed_by=row.filed_by,
        late=row.filed_at.astimezone(CHINA).date() > due,
        signatures=Signatures.model_validate(row.signatures),
        table=QuarterlyTable.model_validate(row.table),
    )


@router.post(
    "/reports/quarterly/{quarter}/filing",
    response_model=Filing,
    status_code=201,
    summary="File the quarter's table, signed (报送)",
)
async def file_table(
    quarter: str,
    signed: Signatures,
    session: SessionDep,
    now: ClockDep,
    font: FontDep,
    caller: CallerDep,
    region: str | None = None,
) -> Filing:
    """The filing division's (`region`: the caller's, a province or city) table of a quarter that
    has ended, with its signatures and note, kept as filed with its xlsx and PDF: a filed table
    never changes. Failed logical checks need the note that explains them."""
    division = _filer(region)
    moment = _moment(quarter, now())
    if moment.provisional:
        raise QuarterNotEnded(moment.quarter)
    table = await _table(session, moment, division)
    failed = [f"{c.city} {c.rule}" for c in table.checks if not c.passed]
    if failed and not signed.note.strip():
        raise ChecksUnexplained(failed)
    xlsx, pdf = await asyncio.gather(
        *(
            asyncio.to_thread(
                exports.render, table, kind, division=division, font_path=font, signed=signed
            )
            for kind in ("xlsx", "pdf")
        )
    )
    row = store.FiledRow(
        quarter=str(moment.quarter),
        region=division,
        filed_at=now(),
        filed_by=caller.username,
        signatures=signed.model_dump(mode="json"),
        table=table.model_dump(mode="json"),
    )
    if not await store.file(session, row, xlsx=xlsx, pdf=pdf):
        raise AlreadyFiled(row.quarter, division)
    await session.commit()
    return _filing(row, moment.quarter)


@router.get(
    "/reports/quarterly/{quarter}/filing",
    response_model=FilingState,
    summary="Where the quarter's filing stands; the signed files",
)
async def filing(
    quarter: str,
    session: SessionDep,
    now: ClockDep,
    region: str | None = None,
    format: Literal["json", "xlsx", "pdf"] = "json",
) -> FilingState | Response:
    """The filing division's filing of the quarter (or that it is open or overdue) and, for a
    province, each city's; `format=xlsx|pdf`: the files as signed."""
    division = _filer(region)
    moment = _moment(quarter, now())
    asked, due = str(moment.quarter), _due(moment.quarter)
    if format != "json":
        file = await store.filed_file(session, asked, division, format)
        if file is None:
            raise NotFiled(asked, division)
        return Response(file, media_type=exports.MEDIA_TYPES[format])
    filed = await store.filed(session, asked, within=division)
    own = next((f for f in filed if f.region == division), None)
    cities: list[DivisionFiling] = []
    if len(division) == 2:
        counted = {
            city for city, _ in await store.cell_counts(session, moment.before, keep=moment.settled)
        }
        await session.commit()  # the quarter's counts, if kept for the first time
        by_city = {f.region: f for f in filed if len(f.region) == 4}
        for city in sorted((counted - {UNKNOWN_CITY}) | set(by_city)):
            at = by_city[city].filed_at if city in by_city else None
            cities.append(DivisionFiling(region=city, state=_state(at, due, now()), filed_at=at))
    return FilingState(
        quarter=asked,
        region=division,
        due=due,
        state=_state(own.filed_at if own else None, due, now()),
        filing=_filing(own, moment.quarter) if own else None,
        cities=cities,
    )


@router.get(
    "/reports/employers",
    response_model=Employers,
    summary="Employers leaving employees out (92), the most first",
)
async def employers(
    session: SessionDep,
    asked: AskedDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Employers:
    division, moment = asked.region, asked.moment
    gaps, count = await store.employer_gaps(session, moment.before, region=division, limit=limit)
    known = await units.known_units(session, (g.unit_id for g in gaps))
    return Employers(
        **asked.header(),
        units=count,
        employers=[
            EmployerGap(
                unit_id=g.unit_id,
                people=g.people,
                name=unit.name if (unit := known.get(g.unit_id)) else None,
                credit_code=unit.credit_code if unit else None,
                insurances={i.value: n for i, n in g.by_insurance.items()},
            )
            for g in gaps
        ],
    )


@router.get(
    "/reports/employers/{unit_id}",
    response_model=ListPeople,
    summary="A unit's employees not enrolled in some insurance (92)",
)
async def employees_owed(
    unit_id: Annotated[str, Path(min_length=1, max_length=64)],
    session: SessionDep,
    asked: AskedDep,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
) -> ListPeople:
    division, moment = asked.region, asked.moment
    after = _person_cursor(cursor)
    found, count = await store.employees_owed(
        session, moment.before, unit_id=unit_id, region=division, after=after, limit=limit + 1
    )
    found, more = found[:limit], len(found) > limit
    unit = (await units.known_units(session, [unit_id])).get(unit_id)
    return ListPeople(
        **asked.header(),
        name=unit_id,
        label=f"单位应参保未参保职工名单（{_unit_label(unit_id, unit)}）",
        count=count,
        people=[_counted(p) for p in found],
        next_cursor=str(found[-1].person_id) if more else None,
    )


def _unit_label(unit_id: str, unit: units.KnownUnit | None) -> str:
    """The unit as the list names it: by its name where si_core gives one, with its AAB001."""
    return f"{unit.name}，{unit_id}" if unit is not None and unit.name else unit_id
