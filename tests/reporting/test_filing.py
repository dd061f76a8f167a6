"""Filing the quarterly table (domain.md §6): the province and each city sign off a quarter that
has ended, with the note that explains any failed check; the filed table and its signed xlsx and
PDF never change; the due date (the 25th after the quarter) says who is open or overdue."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from typing import Any

import httpx
import openpyxl
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from canbao_reporting.tables import filings
from tests.reporting.conftest import Reporting
from tests.reporting.people import ZUNYI, needing_survey, verdict
from tests.reporting.test_exports import compact, pdf_text
from tests.reporting.test_projection import Q3_END, changed, table

FILING = "/internal/v1/reports/quarterly/2026Q3/filing"
SIGNED = {"filled_by": "李明", "section_head": "王芳", "unit_head": "赵强",
          "report_date": "2026-10-20", "note": ""}  # fmt: skip


@pytest.fixture
async def closed(reporting: Reporting) -> Reporting:
    """Two people of Guiyang and one of Zunyi in Q3; now 3 days into Q4."""
    await reporting.apply(
        changed(uuid.uuid4(), verdict()),
        changed(uuid.uuid4(), verdict()),
        changed(uuid.uuid4(), needing_survey(region_code=ZUNYI)),
    )
    reporting.clock.now = Q3_END + timedelta(days=3)
    return reporting


async def file(client: httpx.AsyncClient, region: str, **signed: Any) -> httpx.Response:
    return await client.post(FILING, params={"region": region}, json=SIGNED | signed)


async def test_the_province_files_its_table_signed_and_the_files_say_so(
    closed: Reporting, client: httpx.AsyncClient
) -> None:
    filed = await file(client, "52")
    assert filed.status_code == 201, filed.text
    body = filed.json()
    assert (body["region"], body["due"], body["late"]) == ("52", "2026-10-25", False)
    assert body["filed_by"] == "test-analyst" and body["signatures"]["unit_head"] == "赵强"
    assert body["table"] == await table(client)

    book = openpyxl.load_workbook(
        io.BytesIO((await client.get(FILING, params={"region": "52", "format": "xlsx"})).content)
    )
    values = [cell.value for row in book.worksheets[0].iter_rows() for cell in row]
    for signed in ("李明", "王芳", "赵强", "2026年10月20日"):
        assert signed in values
    pdf = await client.get(FILING, params={"region": "52", "format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    first = compact(pdf_text(pdf.content)[0])
    assert "填表人：李明" in first and "报出日期：2026年10月20日" in first

    again = await file(client, "52", filled_by="别人")
    assert again.status_code == 409 and again.json()["type"] == "/problems/already-filed"
    state = (await client.get(FILING, params={"region": "52"})).json()
    assert state["state"] == "filed" and state["filing"]["signatures"]["filled_by"] == "李明"
    assert [(c["region"], c["state"]) for c in state["cities"]] == [
        ("5201", "open"),
        ("5203", "open"),
    ]


async def test_a_city_files_its_row_and_the_province_sees_who_is_overdue(
    closed: Reporting, client: httpx.AsyncClient
) -> None:
    zunyi = await file(client, "5203")
    assert zunyi.status_code == 201, zunyi.text
    assert [row["city"] for row in zunyi.json()["table"]["rows"]] == ["5203"]
    closed.clock.now = Q3_END + timedelta(days=26)  # 27 October in China: past the 25th
    state = (await client.get(FILING, params={"region": "52"})).json()
    assert state["state"] == "overdue"
    assert [(c["region"], c["state"]) for c in state["cities"]] == [
        ("5201", "overdue"),
        ("5203", "filed"),
    ]
    late = await file(client, "5201")
    assert late.json()["late"] is True


async def test_failed_checks_are_filed_only_with_the_note_that_explains_them(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    await reporting.apply(changed(uuid.uuid4(), verdict(household_data_obtained=False)))
    reporting.clock.now = Q3_END + timedelta(days=1)
    refused = await file(client, "5201")
    assert refused.status_code == 422
    assert refused.json()["type"] == "/problems/checks-unexplained"
    assert refused.json()["failed"] == ["5201 (1) = (2)"]
    note = "公安户籍数据尚有1人未交换，已函请公安部门补充。"
    filed = await file(client, "5201", note=note)
    assert filed.status_code == 201, filed.text
    book = openpyxl.load_workbook(
        io.BytesIO((await client.get(FILING, params={"region": "5201", "format": "xlsx"})).content)
    )
    values = [cell.value for row in book.worksheets[0].iter_rows() for cell in row]
    assert f"相关情况说明：{note}" in values


@pytest.mark.parametrize(
    ("region", "status", "problem"),
    [("520102", 403, "not-a-filing-division"), ("5x", 422, "invalid-region")],
)
async def test_only_the_province_and_its_cities_file(
    closed: Reporting, client: httpx.AsyncClient, region: str, status: int, problem: str
) -> None:
    refused = await file(client, region)
    assert refused.status_code == status and refused.json()["type"] == f"/problems/{problem}"


async def test_a_quarter_not_ended_is_not_filed_and_a_filing_not_made_has_no_files(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    refused = await file(client, "52")  # the clock is in Q3
    assert refused.json()["type"] == "/problems/quarter-not-ended"
    missing = await client.get(FILING, params={"region": "52", "format": "pdf"})
    assert missing.status_code == 404 and missing.json()["type"] == "/problems/not-filed"
    signed = {k: v for k, v in SIGNED.items() if k != "unit_head"}
    incomplete = await client.post(FILING, params={"region": "52"}, json=signed)
    assert incomplete.status_code == 422


async def test_the_service_login_may_not_change_a_filed_table(
    closed: Reporting, client: httpx.AsyncClient
) -> None:
    assert (await file(client, "52")).status_code == 201
    async with closed.database.engine.begin() as connection:
        with pytest.raises(DBAPIError, match="permission denied"):
            await connection.execute(sa.update(filings).values(filed_by="someone else"))
