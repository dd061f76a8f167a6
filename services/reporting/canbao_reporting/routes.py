"""The internal API for the gateway (api.md "Reports"): the quarterly basic-data table of
domain.md §6. A past quarter is computed as of its end by arrival time, so it never changes; the
current quarter is provisional, as of now. Errors are problem+json with stable types."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_platform.problems import Problem
from canbao_platform.service import Resources
from canbao_platform.service_tokens import current_caller
from canbao_reporting import store
from canbao_reporting.quarterly_table import TOTAL, UNKNOWN_CITY, Row, quarterly_table
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


@router.get("/reports/quarterly/{quarter}", summary="全民参保登记基础数据情况表 (domain.md §6)")
async def quarterly(quarter: str, session: SessionDep, now: ClockDep) -> QuarterlyTableResponse:
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
    rows = [_row(city, row) for city, row in table.rows.items()] + [_row(TOTAL, table.total)]
    return QuarterlyTableResponse(
        quarter=str(asked), as_of=as_of.astimezone(UTC), provisional=provisional, rows=rows,
        checks=[TableCheck(rule=c.rule, city=c.city, passed=c.passed) for c in table.checks],
    )  # fmt: skip
