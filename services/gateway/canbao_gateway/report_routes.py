"""Reports (api.md "Reports"): the quarterly basic-data table of domain.md §6, computed by the
reporting service from the registry's events, shown to analysts for their region — a city's
analyst its city's row, a province's every city and the total. `format=csv` is the table as a
file (UTF-8 with a BOM: Excel opens the Chinese right). Numbers only, no person: not audited as a
read of personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from canbao_gateway import problems
from canbao_gateway.auth import require
from canbao_gateway.registry import ReportingClient, reporting_client
from canbao_gateway.staff import Role, Staff

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
REPORT_ROLES: Final = (Role.ANALYST,)

ReportingDep = Annotated[ReportingClient, Depends(reporting_client)]


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
