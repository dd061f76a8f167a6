"""The internal API for the gateway (api.md "Reports"): the quarterly basic-data table of
domain.md §6. A past quarter is computed as of its end by arrival time, so it never changes; the
current quarter is provisional, as of now. Errors are problem+json with stable types."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, Request, Response
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
    quarterly_table,
)
from canbao_reporting.quarters import Quarter

router = APIRouter(prefix="/internal/v1", tags=["reports"], dependencies=[Depends(current_caller)])
# No GB/T 2260 name table in the contracts yet: a city is shown by its code (api.md's "name").
ROW_NAMES: Final = {TOTAL: "合计", UNKNOWN_CITY: "行政区划不详"}


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


@router.get("/reports/quarterly/{quarter}", summary="全民参保登记基础数据情况表 (domain.md §6)",
            response_model=QuarterlyTableResponse)  # fmt: skip
async def quarterly(
    quarter: str,
    session: SessionDep,
    now: ClockDep,
    region: str | None = None,
    format: Literal["json", "csv"] = "json",
) -> QuarterlyTableResponse | Response:
    """The table (`region`: only the rows of that division — a city's, or the province's with
    its total); `format=csv`: UTF-8 with a BOM, so that Excel reads the Chinese right."""
    division = _division(region)
    asked = Quarter.parse(quarter)
    if asked is None:
        raise InvalidQuarter(quarter)
    moment = now()
    if asked > Quarter.of(moment):
        raise FutureQuarter(asked)
    provisional = asked == Quarter.of(moment)
    as_of = moment if provisional else asked.end
    # The current quarter counts everything applied so far; a past one what came before its end.
    table = quarterly_table(await store.people_as_of(session, None if provisional else as_of))
    every = [*table.rows.items(), (TOTAL, table.total)]
    rows = [_row(city, row) for city, row in every if _shown(city, division)]
    shown = {row.city for row in rows}
    answer = QuarterlyTableResponse(
        quarter=str(asked), as_of=as_of.astimezone(UTC), provisional=provisional, rows=rows,
        checks=[TableCheck(rule=c.rule, city=c.city, passed=c.passed)
                for c in table.checks if c.city in shown],
    )  # fmt: skip
    if format == "csv":
        return Response(_csv(answer), media_type="text/csv; charset=utf-8")
    return answer


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
