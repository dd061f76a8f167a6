"""The quarterly basic-data table as files (api.md "Reports"; exports.py), read back as an analyst
would read them: the workbook opened in a spreadsheet laid out like the form of 41号 attachment 3
(title, the two-level header, the column numbers, a row per city and the total, the checks, the
signatures), the PDF's text extracted (the CJK font is embedded with its Unicode map). Every
number in them is the JSON table's. Reporting runs on its real database."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import openpyxl
import pypdf
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_contracts.report_columns import COLUMN_NAMES_ZH
from canbao_reporting.quarterly_table import COLUMNS
from tests.reporting.conftest import Reporting
from tests.reporting.people import (
    ZUNYI,
    insured_elsewhere,
    needing_survey,
    verdict,
    verified,
)
from tests.reporting.test_projection import Q3_END, changed

TABLE = "/internal/v1/reports/quarterly/2026Q3"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FIRST_ROW = 6  # under the title, the heading line and the three header rows
GROUPS = {"C3:D3": "户籍人口情况", "E3:H3": "参保登记情况", "I3:J3": "调查核实情况",
          "K3:M3": "养老保险", "N3:P3": "医疗保险"}  # fmt: skip
SINGLE_GROUPS = {"Q3": "工伤保险", "R3": "失业保险", "S3": "生育保险"}


@pytest.fixture
async def quarter_closed(reporting: Reporting) -> Reporting:
    """Guiyang and Zunyi people of several kinds the table counts, one whose household record public
    security has not sent (so that Guiyang fails the check (1) = (2)); Q3 over."""
    await reporting.apply(
        changed(uuid.uuid4(), verdict()),
        changed(uuid.uuid4(), verdict(household_data_obtained=False)),
        changed(uuid.uuid4(), verified()),
        changed(uuid.uuid4(), insured_elsewhere(ComparisonScope.NATIONAL)),
        changed(uuid.uuid4(), needing_survey(region_code=ZUNYI)),
        changed(uuid.uuid4(), insured_elsewhere(ComparisonScope.PROVINCE, region_code=ZUNYI)),
    )
    reporting.clock.now = Q3_END + timedelta(days=3)
    return reporting


async def get(client: httpx.AsyncClient, format: str, region: str = "52") -> httpx.Response:
    response = await client.get(TABLE, params={"format": format, "region": region})
    assert response.status_code == 200, response.text
    return response


async def workbook(client: httpx.AsyncClient, region: str = "52") -> openpyxl.Workbook:
    response = await get(client, "xlsx", region)
    assert response.headers["content-type"] == XLSX
    return openpyxl.load_workbook(io.BytesIO(response.content))


def form_sheet(book: openpyxl.Workbook) -> Worksheet:
    sheet = book.worksheets[0]
    assert isinstance(sheet, Worksheet)
    return sheet


def pdf_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def compact(text: str) -> str:
    """Extracted text without the line breaks and spaces that the layout puts in."""
    return re.sub(r"\s+", "", text)


async def test_the_workbook_has_the_forms_title_and_two_level_header(
    quarter_closed: Reporting, client: httpx.AsyncClient
) -> None:
    book = await workbook(client)
    sheet = form_sheet(book)
    assert book.sheetnames == ["基础数据情况表", "校验"]
    merged = {str(cells) for cells in sheet.merged_cells.ranges}
    assert {"A1:S1", "A3:A4", "B3:B4", *GROUPS} <= merged
    assert not any(cells.startswith(tuple(SINGLE_GROUPS)) for cells in merged)
    assert sheet["A1"].value == "全民参保登记基础数据情况表" and sheet["A1"].font.b
    heading = [cell.value for cell in sheet[2] if cell.value]
    assert heading[:3] == [
        "填报单位：52",
        "季度：2026年第3季度",
        "数据截至：2026-10-01 00:00（北京时间）",
    ]
    groups = GROUPS | SINGLE_GROUPS
    assert {cells: sheet[cells.split(":")[0]].value for cells in groups} == groups
    assert [sheet.cell(3, c).value for c in (1, 2)] == ["地市代码", "地市"]
    assert [sheet.cell(4, 2 + n).value for n in COLUMNS] == [COLUMN_NAMES_ZH[n] for n in COLUMNS]
    assert [cell.value for cell in sheet[5]] == ["甲", "乙", *(str(n) for n in COLUMNS)]
    assert sheet.freeze_panes == "C6"
    assert sheet["C4"].alignment.wrap_text and sheet["C4"].font.name == "宋体"


async def test_every_row_of_the_workbook_is_the_json_tables_cell_for_cell(
    quarter_closed: Reporting, client: httpx.AsyncClient
) -> None:
    body = (await get(client, "json")).json()
    sheet = form_sheet(await workbook(client))
    assert [row["city"] for row in body["rows"]] == ["5201", "5203", "total"]
    for r, row in enumerate(body["rows"], start=FIRST_ROW):
        cells = [sheet.cell(r, c) for c in range(1, 20)]
        code = "" if row["city"] == "total" else row["city"]
        assert (cells[0].value or "", cells[1].value) == (code, row["name"])
        assert [cell.value for cell in cells[2:]] == [row["columns"][str(n)] for n in COLUMNS]
        assert all(cell.number_format == "#,##0" for cell in cells[2:])
        assert all(cell.font.name == "宋体" for cell in cells)
        assert all(bool(cell.font.b) is (row["city"] == "total") for cell in cells)
    total = FIRST_ROW + len(body["rows"]) - 1
    assert sheet.cell(total, 2).value == "合计" and sheet.cell(total, 3).value == 6


async def test_the_checks_sheet_says_which_rule_each_city_passed(
    quarter_closed: Reporting, client: httpx.AsyncClient
) -> None:
    body = (await get(client, "json")).json()
    book = await workbook(client)
    rows = list(book["校验"].iter_rows(values_only=True))
    assert rows[0] == ("规则", "地市", "结果")
    names = {row["city"]: row["name"] for row in body["rows"]}
    assert rows[1:] == [
        (c["rule"], names[c["city"]], "通过" if c["passed"] else "未通过") for c in body["checks"]
    ]
    assert ("(1) = (2)", "5201", "未通过") in rows  # the household record still missing
    notes = [row[0] for row in form_sheet(book).iter_rows(values_only=True) if row[0]]
    failed = sum(not c["passed"] for c in body["checks"])
    assert f"逻辑校验：{len(body['checks'])} 项，{failed} 项未通过（见“校验”工作表）。" in notes


async def test_the_signatures_wait_empty_under_the_table_for_the_filing(
    quarter_closed: Reporting, client: httpx.AsyncClient
) -> None:
    sheet = form_sheet(await workbook(client))
    labels = {
        cell.value: cell
        for row in sheet.iter_rows()
        for cell in row
        if isinstance(cell.value, str) and cell.value.endswith("：")
    }
    assert list(labels) == ["填表人：", "处(科)负责人：", "单位负责人：", "报出日期："]
    for cell in labels.values():
        assert sheet.cell(cell.row, cell.column + 1).value is None
        assert sheet.cell(cell.row, cell.column + 2).value is None
        assert cell.row > FIRST_ROW + 3  # below the three rows of the table


async def test_the_current_quarter_is_marked_provisional_and_a_past_one_is_not(
    quarter_closed: Reporting, client: httpx.AsyncClient
) -> None:
    def notes(sheet: Worksheet) -> list[Any]:
        return [row[0] for row in sheet.iter_rows(min_row=FIRST_ROW, values_only=True)]

    assert not any("临时" in str(note) for note in notes(form_sheet(await workbook(client))))
    quarter_closed.clock.now = Q3_END - timedelta(days=10)
    current = notes(form_sheet(await workbook(client)))
    assert any(str(note).startswith("注：临时，季度未结束。") for note in current)


async def test_a_city_analysts_workbook_holds_their_row_only(
    quarter_closed: Reporting, client: httpx.AsyncClient
) -> None:
    sheet = form_sheet(await workbook(client, region="5203"))
    assert sheet["A2"].value == "填报单位：5203"
    assert sheet.cell(FIRST_ROW, 1).value == "5203"
    assert sheet.cell(FIRST_ROW + 1, 2).value != "合计"  # not theirs


async def test_a_county_analysts_workbook_labels_their_row_by_the_county(
    quarter_closed: Reporting, client: httpx.AsyncClient
) -> None:
    sheet = form_sheet(await workbook(client, region=ZUNYI))
    assert sheet["A2"].value == f"填报单位：{ZUNYI}"
    assert sheet.cell(FIRST_ROW, 1).value == sheet.cell(FIRST_ROW, 2).value == ZUNYI


async def test_the_pdf_prints_the_form_the_total_row_and_the_checks(
    quarter_closed: Reporting, client: httpx.AsyncClient
) -> None:
    body = (await get(client, "json")).json()
    response = await get(client, "pdf")
    assert response.headers["content-type"] == "application/pdf"
    pages = pdf_text(response.content)
    form = compact(pages[0])
    assert "全民参保登记基础数据情况表" in form
    assert "填报单位：52" in form and "季度：2026年第3季度" in form
    for group in (*GROUPS.values(), *SINGLE_GROUPS.values()):
        assert group in form
    for n in COLUMNS:
        assert COLUMN_NAMES_ZH[n] in form, n
    total = next(row for row in body["rows"] if row["city"] == "total")
    numbers = " ".join(f"{total['columns'][str(n)]:,}" for n in COLUMNS)
    assert f"合计 {numbers}" in " ".join(pages[0].split())
    for label in ("填表人：", "处(科)负责人：", "单位负责人：", "报出日期："):
        assert label in form
    checks = compact("".join(pages[1:]))
    assert "逻辑校验" in checks and "(1)=(2)5201未通过" in checks
    assert checks.count("通过") == len(body["checks"])  # 未通过 contains 通过 too
    assert (await get(client, "pdf")).content == response.content  # nothing of the moment
