"""The quarterly basic-data table as files (api.md "Reports": `format=csv|xlsx|pdf`), laid out like
the form of 41号 attachment 3 (全民参保登记基础数据情况表; domain.md §6). Pure: the internal API's
answer in, bytes out, no time of printing inside (the PDF is byte for byte the same for the same
answer; the workbook's zip entries carry the time it was written).

The form's two-level header, as we read domain.md §6's column meanings (our grouping; groups and
the columns' own names are canbao_contracts.report_columns, which the analyst's page shows too):

    户籍人口情况 (1)(2)         the household population and the part of it public security sent
    参保登记情况 (3)-(6)        registered as insured, by where the comparison confirmed it
    调查核实情况 (7)(8)         needing survey or verification, of which verified and registered
    养老保险 (9)-(11)           should be insured but not, duplicate insurance, duplicate benefits
    医疗保险 (12)-(14)          the same three
    工伤保险 (15), 失业保险 (16), 生育保险 (17): should be insured but not, one column each

Ahead of them the city's code and name (栏次 甲 and 乙, as statistical forms number the columns
that are not counts), under them the column numbers 1-17 as the form prints them. Then a row per
city and the total (合计) last, the provisional mark of a current quarter, the result of the
logical checks, and the signature lines the filing fills in (填表人, 处(科)负责人, 单位负责人,
报出日期).

The workbook names 宋体 (SimSun) for its cells, as the printed forms use: Excel on Windows has it;
elsewhere the office suite substitutes a CJK font it has (on Debian, fontconfig picks e.g.
fonts-wqy-zenhei). It embeds no font. The PDF embeds a subset of a real CJK TrueType font
(`REPORTING_CJK_FONT`, canbao_platform.fonts) with its Unicode map, so its text can be searched.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, Literal
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from canbao_contracts.report_columns import COLUMN_GROUPS_ZH, COLUMN_NAMES_ZH
from canbao_contracts.reports import QuarterlyTable, Signatures, TableRow
from canbao_platform.fonts import registered_cjk_font
from canbao_reporting.quarterly_table import COLUMNS, TOTAL
from canbao_reporting.quarters import CHINA, Quarter

FileFormat = Literal["csv", "xlsx", "pdf"]
MEDIA_TYPES: Final[dict[FileFormat, str]] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}

TITLE: Final = "全民参保登记基础数据情况表"
LEADING: Final = (("地市代码", "甲"), ("地市", "乙"))  # the columns ahead of the counts
SIGNATURES: Final = ("填表人", "处(科)负责人", "单位负责人", "报出日期")
PROVISIONAL: Final = "临时，季度未结束"
CHECKS_SHEET: Final = "校验"
PASSED, FAILED = "通过", "未通过"
UNIT: Final = "单位：人"


def render(
    table: QuarterlyTable,
    format: FileFormat,
    *,
    division: str | None,
    font_path: str,
    signed: Signatures | None = None,
) -> bytes:
    """The table as the file `format` names; `division`: the 填报单位 (the region asked for);
    `signed`: a filed table's signatures and note, written into the form's blanks."""
    if format == "csv":
        return csv_of(table)
    if format == "xlsx":
        return xlsx_of(table, division=division, signed=signed)
    return pdf_of(table, division=division, font_path=font_path, signed=signed)


def signed_values(signed: Signatures | None) -> tuple[str, ...]:
    """What fills each signature's blank (SIGNATURES' order); blanks for an unsigned table."""
    if signed is None:
        return ("",) * len(SIGNATURES)
    return (
        signed.filled_by,
        signed.section_head,
        signed.unit_head,
        signed.report_date.strftime("%Y年%m月%d日"),
    )


def note_of(signed: Signatures | None) -> list[str]:
    """The explanatory note of a filed table, when it has one."""
    return [f"相关情况说明：{signed.note}"] if signed is not None and signed.note else []


# -- What every file says about the table ---------------------------------------------------------


def quarter_label(quarter: str) -> str:
    """`2026Q3` → 2026年第3季度."""
    parsed = Quarter.parse(quarter)
    return quarter if parsed is None else f"{parsed.year}年第{parsed.number}季度"


def as_of_label(as_of: datetime) -> str:
    """In Beijing time, the quarters' calendar (quarters.py)."""
    return as_of.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") + "（北京时间）"


def code_of(row: TableRow) -> str:
    """The division's code (a city's, or a county's for its analyst); none for the total and
    for people of no known division."""
    return row.region if row.region.isdigit() else ""


def heading(table: QuarterlyTable, division: str | None) -> tuple[str, ...]:
    """The line under the title: 填报单位, 季度, 数据截至 and the unit of the counts."""
    return (
        f"填报单位：{division or ''}",
        f"季度：{quarter_label(table.quarter)}",
        f"数据截至：{as_of_label(table.as_of)}",
        UNIT,
    )


def notes(table: QuarterlyTable, *, checks_at: str) -> list[str]:
    """Under the table: the provisional mark of a current quarter, and what the checks found
    (`checks_at`: where the file lists them)."""
    found: list[str] = []
    if table.provisional:
        found.append(
            f"注：{PROVISIONAL}。本表为截至{as_of_label(table.as_of)}的临时数据，"
            "季度结束后以截至季度末的数据为准。"
        )
    failed = sum(not check.passed for check in table.checks)
    verdict = f"{failed} 项未通过" if failed else "全部通过"
    found.append(f"逻辑校验：{len(table.checks)} 项，{verdict}（见{checks_at}）。")
    return found


def checks_of(table: QuarterlyTable) -> list[tuple[str, str, str]]:
    """(规则, 地市, 结果) of every check, the city by the name its row shows."""
    names = {row.city: row.name for row in table.rows}
    return [
        (check.rule, names.get(check.city, check.city), PASSED if check.passed else FAILED)
        for check in table.checks
    ]


# -- CSV ------------------------------------------------------------------------------------------


def csv_of(table: QuarterlyTable) -> bytes:
    """The table as the form lays it out: a row per city and the total, the form's column names;
    then the provisional mark and the checks, so that a printed copy says what it is. UTF-8 with
    a BOM, so that Excel reads the Chinese right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["地市代码", "地市", *(f"({n}) {COLUMN_NAMES_ZH[n]}" for n in COLUMNS)])
    for row in table.rows:
        writer.writerow([row.city, row.name, *(row.columns[str(n)] for n in COLUMNS)])
    writer.writerow([])
    state = f"（{PROVISIONAL}）" if table.provisional else ""
    writer.writerow(["季度", table.quarter + state, "数据截至", table.as_of.isoformat()])
    for check in table.checks:
        writer.writerow(["校验", check.city, check.rule, PASSED if check.passed else FAILED])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# -- xlsx -----------------------------------------------------------------------------------------

FONT_NAME: Final = "宋体"
NUMBER_FORMAT: Final = "#,##0"
TITLE_ROW, HEADING_ROW, GROUP_ROW, NAME_ROW, NUMBER_ROW = 1, 2, 3, 4, 5
FIRST_DATA_ROW: Final = 6
WIDTH: Final = len(LEADING) + len(COLUMNS)  # the sheet's columns, A to S
# Where each piece of the heading line and each signature sits: (first column, last column).
HEADING_SPANS: Final = ((1, 6), (7, 11), (12, 17), (18, 19))
SIGNATURE_SPANS: Final = (((1, 1), (2, 4)), ((6, 7), (8, 9)), ((11, 12), (13, 14)),
                          ((16, 16), (17, 19)))  # fmt: skip  # (label, blank to fill in)
THIN: Final = Side(style="thin")
GRID: Final = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
HEADER_FILL: Final = PatternFill("solid", fgColor="EEEEEE")
CENTRED: Final = Alignment(horizontal="center", vertical="center", wrap_text=True)
HEADER: Final[dict[str, Any]] = {
    "alignment": CENTRED, "border": GRID, "fill": HEADER_FILL,
    "font": Font(name=FONT_NAME, bold=True),
}  # fmt: skip
FAILED_FONT: Final = Font(name=FONT_NAME, bold=True, color="C00000")


def xlsx_of(
    table: QuarterlyTable, *, division: str | None = None, signed: Signatures | None = None
) -> bytes:
    """The workbook: sheet 基础数据情况表 laid out like the form (module docstring), the header
    frozen; sheet 校验 the logical checks."""
    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = "基础数据情况表"
    _title(sheet, table, division)
    _header(sheet)
    last = _body(sheet, table.rows)
    row = last + 1
    for note in [*notes(table, checks_at=f"“{CHECKS_SHEET}”工作表"), *note_of(signed)]:
        _merged(sheet, row, (1, WIDTH), note, Alignment(horizontal="left", wrap_text=True))
        row += 1
    _signatures(sheet, row + 1, signed_values(signed))
    _layout(sheet)
    _checks_sheet(book.create_sheet(CHECKS_SHEET), table)
    book.properties.creator = "canbao"
    book.properties.title = TITLE
    book.properties.created = book.properties.modified = _naive_china(table.as_of)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _put(sheet: Worksheet, row: int, column: int, value: Any, **style: Any) -> None:
    cell = sheet.cell(row, column, value)
    cell.font = style.pop("font", Font(name=FONT_NAME))
    for name, setting in style.items():
        setattr(cell, name, setting)


def _merged(
    sheet: Worksheet,
    row: int,
    span: tuple[int, int],
    value: Any,
    alignment: Alignment,
    font: Font | None = None,
) -> None:
    _put(sheet, row, span[0], value, alignment=alignment, font=font or Font(name=FONT_NAME))
    if span[1] > span[0]:
        sheet.merge_cells(start_row=row, start_column=span[0], end_row=row, end_column=span[1])


def _title(sheet: Worksheet, table: QuarterlyTable, division: str | None) -> None:
    title_font = Font(name=FONT_NAME, size=16, bold=True)
    _merged(sheet, TITLE_ROW, (1, WIDTH), TITLE, Alignment(horizontal="center"), title_font)
    sheet.row_dimensions[TITLE_ROW].height = 30
    aligned = ("left", "center", "center", "right")
    for text, span, horizontal in zip(
        heading(table, division), HEADING_SPANS, aligned, strict=True
    ):
        _merged(sheet, HEADING_ROW, span, text, Alignment(horizontal=horizontal))


def _header(sheet: Worksheet) -> None:
    """Three header rows: the groups (the city's code and name span two rows), the columns'
    names, the columns' numbers."""
    for column, (name, label) in enumerate(LEADING, start=1):
        _put(sheet, GROUP_ROW, column, name, **HEADER)
        _put(sheet, NAME_ROW, column, None, **HEADER)
        sheet.merge_cells(
            start_row=GROUP_ROW, start_column=column, end_row=NAME_ROW, end_column=column
        )
        _put(sheet, NUMBER_ROW, column, label, **HEADER)
    for group, numbers in COLUMN_GROUPS_ZH:
        first, last = _column(numbers[0]), _column(numbers[-1])
        for column in range(first, last + 1):
            _put(sheet, GROUP_ROW, column, group if column == first else None, **HEADER)
        if last > first:
            sheet.merge_cells(
                start_row=GROUP_ROW, start_column=first, end_row=GROUP_ROW, end_column=last
            )
    for number in COLUMNS:
        _put(sheet, NAME_ROW, _column(number), COLUMN_NAMES_ZH[number], **HEADER)
        _put(sheet, NUMBER_ROW, _column(number), str(number), **HEADER)


def _column(number: int) -> int:
    """The sheet column of the form's column `number`."""
    return len(LEADING) + number


def _body(sheet: Worksheet, rows: Sequence[TableRow]) -> int:
    """A row per city and the total, in bold; the last row written."""
    r = FIRST_DATA_ROW - 1
    for r, row in enumerate(rows, start=FIRST_DATA_ROW):
        font = Font(name=FONT_NAME, bold=row.city == TOTAL)
        _put(sheet, r, 1, code_of(row) or None, font=font, border=GRID, alignment=CENTRED)
        _put(sheet, r, 2, row.name, font=font, border=GRID, alignment=CENTRED)
        for number in COLUMNS:
            _put(
                sheet,
                r,
                _column(number),
                row.columns[str(number)],
                font=font,
                border=GRID,
                number_format=NUMBER_FORMAT,
            )
    return r


def _signatures(sheet: Worksheet, row: int, values: Sequence[str]) -> None:
    """The signature line: each label, then its cell ruled underneath: the name or date signed,
    or empty to fill in."""
    spans = zip(SIGNATURES, SIGNATURE_SPANS, values, strict=True)
    for label, (label_span, blank_span), value in spans:
        _merged(sheet, row, label_span, f"{label}：", Alignment(horizontal="right"))
        for column in range(blank_span[0], blank_span[1] + 1):
            sheet.cell(row, column).border = Border(bottom=THIN)
        _merged(sheet, row, blank_span, value or None, Alignment(horizontal="left"))
    sheet.row_dimensions[row].height = 24


def _layout(sheet: Worksheet) -> None:
    """Widths that wrap a column's name in three or four lines; the header frozen with the city;
    printed on one A4 landscape page wide, the header on every page."""
    sheet.column_dimensions["A"].width = 10
    sheet.column_dimensions["B"].width = 14
    for number in COLUMNS:
        sheet.column_dimensions[get_column_letter(_column(number))].width = 12
    sheet.row_dimensions[GROUP_ROW].height = 20
    sheet.row_dimensions[NAME_ROW].height = 60
    sheet.freeze_panes = f"{get_column_letter(len(LEADING) + 1)}{FIRST_DATA_ROW}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    sheet.print_title_rows = f"{GROUP_ROW}:{NUMBER_ROW}"


def _checks_sheet(sheet: Worksheet, table: QuarterlyTable) -> None:
    for column, name in enumerate(("规则", "地市", "结果"), start=1):
        _put(sheet, 1, column, name, **HEADER)
    for r, (rule, city, result) in enumerate(checks_of(table), start=2):
        _put(sheet, r, 1, rule, border=GRID)
        _put(sheet, r, 2, city, border=GRID, alignment=CENTRED)
        font = FAILED_FONT if result == FAILED else Font(name=FONT_NAME)
        _put(sheet, r, 3, result, border=GRID, alignment=CENTRED, font=font)
    for letter, width in zip("ABC", (34, 16, 10), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"


def _naive_china(moment: datetime) -> datetime:
    return moment.astimezone(CHINA).replace(tzinfo=None)


# -- PDF ------------------------------------------------------------------------------------------

# A4 landscape less 10 mm margins: 277 mm for the code, the name and 17 counts, each wide enough
# for a province's 45,000,000 in the 7-point CJK font (whose digits are wide).
MARGIN: Final = 10 * mm
PDF_WIDTHS: Final = (11 * mm, 17 * mm, *[14.6 * mm] * len(COLUMNS))
NUMBER_SIZE: Final = 7
TOTAL_SHADE: Final = colors.HexColor("#EEEEEE")
BLANK: Final = "\xa0"  # a Paragraph of nothing still takes its line's height


def pdf_of(
    table: QuarterlyTable,
    *,
    font_path: str,
    division: str | None = None,
    signed: Signatures | None = None,
) -> bytes:
    """A4 landscape: the title, the heading line, the table with the form's header, the notes
    and the signature lines on the first page; the logical checks after it. The font has no bold
    face: the total row is shaded and ruled above instead."""
    font = registered_cjk_font(font_path)

    def style(name: str, size: float, **more: Any) -> ParagraphStyle:
        return ParagraphStyle(
            name, fontName=font, fontSize=size, leading=size * 1.3, wordWrap="CJK", **more
        )

    title, body = style("title", 18, alignment=TA_CENTER), style("body", 9)
    head = style("head", 7, alignment=TA_CENTER)
    story: list[Flowable] = [
        Paragraph(TITLE, title),
        Spacer(0, 4 * mm),
        _pdf_heading(table, division, body),
        Spacer(0, 2 * mm),
        _pdf_table(table.rows, font, head),
        Spacer(0, 2 * mm),
        *(Paragraph(note, body) for note in notes(table, checks_at="次页")),
        # What people typed is text, not reportlab's markup.
        *(Paragraph(escape(note), body) for note in note_of(signed)),
        Spacer(0, 8 * mm),
        _pdf_signatures(body, signed_values(signed)),
        PageBreak(),
        Paragraph(f"{TITLE}　逻辑校验", style("checks", 12, alignment=TA_CENTER)),
        Spacer(0, 3 * mm),
        _pdf_checks(table, font, head),
    ]
    footer = f"{TITLE}　{quarter_label(table.quarter)}"

    def number_the_page(canvas: Canvas, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.drawString(MARGIN, 7 * mm, f"{footer}　第 {canvas.getPageNumber()} 页")
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=10 * mm,
        bottomMargin=14 * mm,
        title=TITLE,
        author="canbao",
        creator="canbao",
        invariant=True,
    )
    doc.build(story, onFirstPage=number_the_page, onLaterPages=number_the_page)
    return out.getvalue()


def _pdf_heading(table: QuarterlyTable, division: str | None, body: ParagraphStyle) -> Table:
    cells = [Paragraph(text, body) for text in heading(table, division)]
    widths = [82 * mm, 55 * mm, 98 * mm, 42 * mm]
    return Table(
        [cells], colWidths=widths, style=TableStyle([("ALIGN", (-1, 0), (-1, 0), "RIGHT")])
    )


def _pdf_table(rows: Sequence[TableRow], font: str, head: ParagraphStyle) -> Table:
    """The form's three header rows (groups, names, numbers) and a row per city and the total."""
    groups: list[Any] = [Paragraph(name, head) for name, _ in LEADING]
    names: list[Any] = ["", ""]
    spans: list[Any] = [("SPAN", (c, 0), (c, 1)) for c in range(len(LEADING))]
    for group, numbers in COLUMN_GROUPS_ZH:
        groups += [Paragraph(group, head)] + [""] * (len(numbers) - 1)
        first, last = _column(numbers[0]) - 1, _column(numbers[-1]) - 1
        if last > first:
            spans.append(("SPAN", (first, 0), (last, 0)))
    names += [Paragraph(COLUMN_NAMES_ZH[number], head) for number in COLUMNS]
    numbers_row = [number for _, number in LEADING] + [str(number) for number in COLUMNS]
    body = [
        [code_of(row), Paragraph(row.name, head), *(f"{row.columns[str(n)]:,}" for n in COLUMNS)]
        for row in rows
    ]
    style: list[Any] = [
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("FONT", (0, 0), (-1, -1), font, NUMBER_SIZE),
        ("LEFTPADDING", (0, 0), (-1, -1), 1.5),
        ("RIGHTPADDING", (0, 0), (-1, -1), 1.5),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("ALIGN", (0, 0), (-1, 2), "CENTER"),
        ("ALIGN", (0, 3), (1, -1), "CENTER"),
        ("ALIGN", (2, 3), (-1, -1), "RIGHT"),
        ("BACKGROUND", (0, 0), (-1, 2), TOTAL_SHADE),
        *spans,
    ]
    for r, row in enumerate(rows, start=3):
        if row.city == TOTAL:
            style += [
                ("BACKGROUND", (0, r), (-1, r), TOTAL_SHADE),
                ("LINEABOVE", (0, r), (-1, r), 1.2, colors.black),
            ]
    return Table(
        [groups, names, numbers_row, *body],
        colWidths=PDF_WIDTHS,
        style=TableStyle(style),
        repeatRows=3,
    )


def _pdf_signatures(body: ParagraphStyle, values: Sequence[str]) -> Table:
    """Each signature's label and a ruled line: the name or date signed, or blank to sign or
    date by hand."""
    label_style = ParagraphStyle("label", parent=body, alignment=TA_RIGHT)
    cells: list[Any] = []
    for label, value in zip(SIGNATURES, values, strict=True):
        cells += [Paragraph(f"{label}：", label_style), Paragraph(escape(value) or BLANK, body)]
    widths = [28 * mm, 40 * mm] * len(SIGNATURES)
    rules = [("LINEBELOW", (c, 0), (c, 0), 0.5, colors.black) for c in range(1, len(cells), 2)]
    return Table(
        [cells],
        colWidths=widths,
        style=TableStyle([*rules, ("VALIGN", (0, 0), (-1, -1), "BOTTOM")]),
    )


def _pdf_checks(table: QuarterlyTable, font: str, head: ParagraphStyle) -> Table:
    rows: list[list[Any]] = [[Paragraph(name, head) for name in ("规则", "地市", "结果")]]
    rows += [list(check) for check in checks_of(table)]
    style: list[Any] = [
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("FONT", (0, 0), (-1, -1), font, 8),
        ("ALIGN", (1, 0), (-1, -1), "CENTER"),
        ("BACKGROUND", (0, 0), (-1, 0), TOTAL_SHADE),
    ]
    style += [
        ("TEXTCOLOR", (2, r), (2, r), colors.HexColor("#C00000"))
        for r, row in enumerate(rows)
        if row[2] == FAILED
    ]
    return Table(rows, colWidths=[90 * mm, 30 * mm, 20 * mm], style=TableStyle(style), repeatRows=1)
