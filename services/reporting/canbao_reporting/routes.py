"""The internal API for the gateway (api.md "Reports"): the quarterly basic-data table of
domain.md §6. A past quarter is computed as of its end by arrival time, so it never changes; the
current quarter is provisional, as of now. Errors are problem+json with stable types."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_platform.problems import Problem
from canbao_platform.service import Resources
from canbao_platform.service_tokens import current_caller
from canbao_reporting import store
from canbao_reporting.quarterly_table import (
    COLUMN_NAMES_ZH,
    COLUMNS,
    TOTAL,
    UNKNOWN_CITY,
    Row,
    rows_of,
    table_of,
)
from canbao_reporting.quarters import Quarter

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


SessionDep = Annotated[AsyncSession, Depends(_session)]
ClockDep = Annotated[Callable[[], datetime], Depends(clock)]


class InvalidQuarter(Problem):
    def __init__(self, text: str) -> None:
        super().__init__(422, "invalid-quarter", "季度格式应为 2026Q3 (quarter like 2026Q3)",
                         f"{text!r} is not a quarter")  # fmt: skip


class FutureQuarter(Problem):
    def __init__(self, quarter: Quarter) -> None:
        super().__init__(422, "future-quarter", "该季度尚未开始 (the quarter has not begun)",
                         f"{quarter} begins {quarter.start.isoformat()}")  # fmt: skip


class TableRow(BaseModel):
    city: str
    name: str
    columns: dict[str, int]


class TableCheck(BaseModel):
    rule: str
    city: str
    passed: bool


class QuarterlyTableResponse(BaseModel):
    quarter: str
    as_of: datetime
    """The table counts every state applied before the quarter's end, or, for the current one,
    every state applied so far (this moment)."""
    provisional: bool
    """True for the current quarter: it changes until the quarter ends."""
    rows: list[TableRow]
    checks: list[TableCheck]


def _row(city: str, row: Row) -> TableRow:
    columns = {str(column): people for column, people in row.items()}
    return TableRow(city=city, name=ROW_NAMES.get(city, city), columns=columns)


class InvalidRegion(Problem):
    def __init__(self, region: str) -> None:
        super().__init__(422, "invalid-region", "行政区划代码无效 (invalid division code)",
                         f"{region!r}: a GB/T 2260 code of 2, 4 or 6 digits")  # fmt: skip


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

    @property
    def before(self) -> datetime | None:
        """The states counted: applied before the quarter's end; the current quarter, all."""
        return None if self.provisional else self.as_of


def _moment(quarter: str, now: datetime) -> Moment:
    asked = Quarter.parse(quarter)
    if asked is None:
        raise InvalidQuarter(quarter)
    if asked > Quarter.of(now):
        raise FutureQuarter(asked)
    provisional = asked == Quarter.of(now)
    return Moment(asked, now if provisional else asked.end, provisional)


def _county(division: str | None) -> str:
    """The region prefix that narrows the people counted: a county's; '' for a city or the
    province, whose rows are whole cities."""
    return division if division is not None and len(division) == 6 else ""


@router.get("/reports/quarterly/{quarter}", summary="全民参保登记基础数据情况表 (domain.md §6)",
            response_model=QuarterlyTableResponse)  # fmt: skip
async def quarterly(
    quarter: str,
    session: SessionDep,
    now: ClockDep,
    region: str | None = None,
    format: Literal["json", "csv"] = "json",
) -> QuarterlyTableResponse | Response:
    """The table (`region`: only the rows of that division — a county's people in its city's
    row, a city's row, or the province's with its total); `format=csv`: UTF-8 with a BOM, so
    that Excel reads the Chinese right."""
    division = _division(region)
    moment = _moment(quarter, now())
    counts = await store.cell_counts(session, moment.before, region=_county(division))
    table = table_of(rows_of(counts))
    every = [*table.rows.items(), (TOTAL, table.total)]
    rows = [_row(city, row) for city, row in every if _shown(city, division)]
    shown = {row.city for row in rows}
    answer = QuarterlyTableResponse(
        quarter=str(moment.quarter), as_of=moment.as_of.astimezone(UTC),
        provisional=moment.provisional, rows=rows,
        checks=[TableCheck(rule=c.rule, city=c.city, passed=c.passed)
                for c in table.checks if c.city in shown],
    )  # fmt: skip
    if format == "csv":
        return Response(_csv(answer), media_type="text/csv; charset=utf-8")
    return answer


class PersonCounted(BaseModel):
    """One person behind a number, as the verdict counted them (no name or number: the gateway
    asks identity for the masked ones)."""

    person_id: UUID
    city: str
    """The row they count in (in the total row, a person counts once per city)."""
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
    """The cell's number: every page together lists this many."""
    people: list[PersonCounted]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last."""


class InvalidCell(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "invalid-cell", "表格单元无效 (no such cell of the table)", detail)


class CityOutOfScope(Problem):
    def __init__(self, city: str) -> None:
        super().__init__(403, "city-out-of-scope", "不在您的统计范围内 (outside your region)",
                         f"row {city!r} is not in your region")  # fmt: skip


class InvalidCursor(Problem):
    def __init__(self) -> None:
        super().__init__(422, "invalid-cursor", "分页游标无效 (invalid cursor)",
                         "pass the next_cursor of the previous page as it was")  # fmt: skip


def _cursor(text: str | None) -> tuple[UUID, str] | None:
    """`<person_id>/<city>` of the last person of the previous page."""
    if not text:
        return None
    person, _, city = text.partition("/")
    try:
        return UUID(person), _city(city)
    except (ValueError, InvalidCell):
        raise InvalidCursor() from None


def _city(city: str) -> str:
    if city == UNKNOWN_CITY or (len(city) == 4 and city.isascii() and city.isdigit()):
        return city
    raise InvalidCell(f"city {city!r}: a four-digit city code, {UNKNOWN_CITY!r} or {TOTAL!r}")


@router.get("/reports/quarterly/{quarter}/people", response_model=CellPeople,
            summary="The people behind a number of the table (报表及对应人员明细)")  # fmt: skip
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
    found = await store.people_in_cell(session, moment.before, city=row, column=column,
                                       region=county, after=after, limit=limit + 1)  # fmt: skip
    count = await store.people_counted(session, moment.before, city=row, column=column,
                                       region=county)  # fmt: skip
    found, more = found[:limit], len(found) > limit
    last = found[-1] if more else None
    return CellPeople(
        quarter=str(moment.quarter), as_of=moment.as_of.astimezone(UTC),
        provisional=moment.provisional, city=city, column=column,
        column_name=COLUMN_NAMES_ZH[column], count=count,
        people=[_counted(p) for p in found],
        next_cursor=None if last is None else f"{last.person_id}/{last.city}",
    )  # fmt: skip


def _counted(person: store.PersonInCell) -> PersonCounted:
    verdict = person.verdict
    return PersonCounted(
        person_id=person.person_id, city=person.city, region_code=verdict.get("region_code"),
        gender=verdict.get("gender"), birth_year=verdict.get("birth_year"),
        registration=verdict["registration"], statuses=verdict["statuses"],
        survey_reasons=verdict.get("survey_reasons", []),
    )  # fmt: skip


def _csv(table: QuarterlyTableResponse) -> bytes:
    """The table as the form lays it out: a row per city and the total, the form's column names;
    then the provisional mark and the checks, so that a printed copy says what it is."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["地市代码", "地市", *(f"({n}) {COLUMN_NAMES_ZH[n]}" for n in COLUMNS)])
    for row in table.rows:
        writer.writerow([row.city, row.name, *(row.columns[str(n)] for n in COLUMNS)])
    writer.writerow([])
    state = "（临时，季度未结束）" if table.provisional else ""
    writer.writerow(["季度", table.quarter + state, "数据截至", table.as_of.isoformat()])
    for check in table.checks:
        writer.writerow(["校验", check.city, check.rule, "通过" if check.passed else "未通过"])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
