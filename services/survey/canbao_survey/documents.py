"""The printed documents of the household survey (domain.md §2.3; api.md "Survey"): the
prefilled registration form 全民参保登记表 (人社厅发〔2015〕44号 / 41号 attachment 1), one per
survey task, and the community ledger 全民参保登记个人信息汇总表, as PDF and as xlsx.

Pure: data in, bytes out (no database, no HTTP). The caller decides what is masked: the form prints
what it is given, in clear, since it is the person's own. Every label comes from
`canbao_contracts.codes`, so the printed terms are the registry's (domain.md §4). The PDFs embed a
subset of a CJK TrueType font (`SURVEY_CJK_FONT`, Debian's fonts-wqy-zenhei) with its Unicode
map, so their text can be searched and copied; they are byte-for-byte reproducible (no creation
time or random id inside) for the same input.

The work is CPU-bound (a 5,000-person ledger takes about 5 s as PDF): call it from a worker
thread (`anyio.to_thread.run_sync`), not on the event loop.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final
from xml.sax.saxutils import escape

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from canbao_contracts.codes import (
    EmploymentStatus,
    Gender,
    HouseholdType,
    Insurance,
    LabelledCode,
    PersonalIdentity,
    RegistrationItem,
    StatusCode,
    SurveyReason,
    codes_for,
)
from canbao_platform.fonts import registered_cjk_font

# -- What the survey service fills in -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormData:
    """One person's prefilled registration form (one per survey task)."""

    task_id: str
    division: str  # e.g. "520102 贵阳市南明区", printed as given
    household_number: str | None  # 户号
    items: dict[str, str | None]  # RegistrationItem value -> value in clear, None = blank box
    statuses: dict[str, str | None]  # Insurance value -> status code ("11", "91"), None = blank
    survey_reasons: tuple[str, ...]  # SurveyReason values
    missing: tuple[str, ...]  # RegistrationItem values
    inaccurate: tuple[tuple[str, str], ...]  # (RegistrationItem value, why, in Chinese)
    printed_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerRow:
    household_number: str | None
    name: str  # masked or clear, as the caller decides
    id_number: str  # masked by the caller
    gender: str | None  # Gender code "1" / "2"
    statuses: dict[str, str | None]  # Insurance value -> status code
    survey_state: str  # the task's state label in Chinese, or NO_SURVEY_NEEDED
    outcome: str | None  # what the survey found (Chinese); None until surveyors submitted one
    surveyors: str | None  # the team's usernames, joined
    approved_at: date | None  # 审定 by the county


@dataclass(frozen=True, slots=True)
class Ledger:
    division_code: str
    division_name: str
    generated_at: datetime
    rows: tuple[LedgerRow, ...]  # ordered by household by the caller


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """The ledger's closing line. Surveyed = needing a survey and an outcome recorded; approved =
    needing a survey and 审定; the survey rate is surveyed ÷ needing (Qinghai's target: ≥ 90 %,
    domain.md §1), None when nobody needs a survey."""

    people: int
    needing_survey: int
    surveyed: int
    approved: int

    @property
    def survey_rate(self) -> float | None:
        return self.surveyed / self.needing_survey if self.needing_survey else None


NO_SURVEY_NEEDED: Final = "无需调查"
FORM_TITLE: Final = "全民参保登记表"
LEDGER_TITLE: Final = "全民参保登记个人信息汇总表"
DECLARATION: Final = "本人承诺以上信息真实准确，如有虚假，愿承担相应责任。"
# The form's employment status (经办规程 attachment 1): the `employment_status` item's code table
# and what is printed; the unit's full name is the `unit_name` item.
EMPLOYMENT_CHOICES: Final = {status.value: status.label for status in EmploymentStatus}
LEDGER_COLUMNS: Final = (
    "户号",
    "姓名",
    "公民身份号码",
    "性别",
    *(insurance.label.removesuffix("保险") for insurance in Insurance),
    "调查状态",
    "调查结果",
    "调查员",
    "审定日期",
)


def ledger_summary(ledger: Ledger) -> LedgerSummary:
    needing = [row for row in ledger.rows if row.survey_state != NO_SURVEY_NEEDED]
    return LedgerSummary(
        people=len(ledger.rows),
        needing_survey=len(needing),
        surveyed=sum(row.outcome is not None for row in needing),
        approved=sum(row.approved_at is not None for row in needing),
    )


# -- Shared layout --------------------------------------------------------------------------------

CHINA: Final = timezone(timedelta(hours=8), "CST")  # printed times are Beijing time
TICKED, UNTICKED = "■", "□"  # the font has no ☑; a filled box survives photocopying
# Paragraphs collapse runs of spaces, the ideographic one included, but keep no-break spaces.
GAP: Final = "\xa0\xa0\xa0 "
DATE_BLANK: Final = "______年____月____日"
HIGHLIGHT: Final = colors.HexColor("#FFF2CC")
FLAG: Final = "▲"  # marks items to verify on a black-and-white print, where the colour is lost
GRID: Final = ("GRID", (0, 0), (-1, -1), 0.5, colors.black)


@dataclass(frozen=True, slots=True)
class _Styles:
    font: str
    title: ParagraphStyle
    heading: ParagraphStyle
    body: ParagraphStyle
    cell: ParagraphStyle
    centred: ParagraphStyle
    small: ParagraphStyle


def _styles(font: str, size: float) -> _Styles:
    def style(name: str, font_size: float, **more: Any) -> ParagraphStyle:
        return ParagraphStyle(
            name,
            fontName=font,
            fontSize=font_size,
            leading=font_size * 1.35,
            wordWrap="CJK",
            **more,
        )

    return _Styles(
        font=font,
        title=style("title", 18, alignment=TA_CENTER, spaceAfter=2 * mm),
        heading=style("heading", size + 1.5, spaceBefore=2 * mm, spaceAfter=1 * mm),
        body=style("body", size),
        cell=style("cell", size),
        centred=style("centred", size, alignment=TA_CENTER),
        small=style("small", size - 1.5, alignment=TA_CENTER),
    )


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    """A paragraph of data: escaped, since names and addresses are not markup."""
    return Paragraph(escape(text), style)


def _box(ticked: bool) -> str:
    return TICKED if ticked else UNTICKED


def _choices(options: Iterable[tuple[str, bool]]) -> str:
    return GAP.join(f"{_box(ticked)} {label}" for label, ticked in options)


def _when(moment: datetime) -> str:
    local = moment.astimezone(CHINA) if moment.tzinfo is not None else moment
    return local.strftime("%Y-%m-%d %H:%M")


def _label(table: type[LabelledCode] | type[RegistrationItem], value: str) -> str:
    """A code's or an item's Chinese label; an unknown value is printed as it is, not lost."""
    try:
        return table(value).label
    except ValueError:
        return value


def _pdf(
    story: list[Flowable], *, pagesize: tuple[float, float], title: str, footer: str, font: str
) -> bytes:
    def number_the_page(canvas: Canvas, _doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 8)
        canvas.drawString(12 * mm, 7 * mm, f"{footer}　第 {canvas.getPageNumber()} 页")
        canvas.restoreState()

    out = io.BytesIO()
    # No personal data in the document's metadata: only the kind of document.
    doc = SimpleDocTemplate(
        out,
        pagesize=pagesize,
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=10 * mm,
        bottomMargin=14 * mm,
        title=title,
        author="canbao",
        creator="canbao",
        invariant=True,
    )
    doc.build(story, onFirstPage=number_the_page, onLaterPages=number_the_page)
    return out.getvalue()


# -- The registration form (全民参保登记表) --------------------------------------------------------

R = RegistrationItem
_ITEM_ROWS: Final = (
    (R.NAME, R.GENDER),
    (R.ID_NUMBER, R.BIRTH_DATE),
    (R.PERSONAL_IDENTITY, R.HOUSEHOLD_TYPE),
    (R.HOUSEHOLD_PLACE,),
    (R.RESIDENCE_ADDRESS,),
    (R.PHONE, R.PERSON_NUMBER),
    (R.HOUSEHOLD_BOOK_NUMBER, R.FAMILY_NUMBER),
)
_CODED_ITEMS: Final[dict[str, type[LabelledCode]]] = {
    R.GENDER: Gender,
    R.HOUSEHOLD_TYPE: HouseholdType,
    R.PERSONAL_IDENTITY: PersonalIdentity,
}
# The form's reasons for not being insured and insured elsewhere (经办规程 attachment 1); 94
# (interrupted) is the registry's own and sits with the schemes as a current situation.
_UNINSURED: Final = (
    StatusCode.UNINSURED_INDIVIDUAL,
    StatusCode.UNINSURED_BY_EMPLOYER,
    StatusCode.UNINSURED_MILITARY_ABROAD_PRISON,
    StatusCode.NOT_REQUIRED,
)
_ELSEWHERE: Final = (
    StatusCode.INSURED_ELSEWHERE_IN_PROVINCE,
    StatusCode.INSURED_IN_ANOTHER_PROVINCE,
)


def registration_form_pdf(form: FormData, *, font_path: str) -> bytes:
    """The prefilled 全民参保登记表 of one survey task: what the registry knows printed, the rest
    as empty boxes, the items to verify highlighted, and the declaration to sign."""
    s = _styles(registered_cjk_font(font_path), 9)
    flagged = set(form.missing) | {item for item, _ in form.inaccurate}
    story: list[Flowable] = [
        _p(FORM_TITLE, s.title),
        _form_heading(form, s),
        _p("一、个人基本信息", s.heading),
        _basic_items(form, flagged, s),
        _p(f"{FLAG} 及底色标注的项目需核实，见第四部分。", s.body),
        _p("二、就业状态", s.heading),
        _employment(
            form.items.get(R.EMPLOYMENT_STATUS),
            form.items.get(R.UNIT_NAME),
            R.EMPLOYMENT_STATUS in flagged,
            s,
        ),
        _p("三、参保情况", s.heading),
        _insurance(form.statuses, s),
        _p("四、需核实事项", s.heading),
        _to_verify(form, s),
        _p("五、本人声明", s.heading),
        *_declaration(s),
    ]
    footer = f"任务编号：{form.task_id}　打印时间：{_when(form.printed_at)}"
    return _pdf(story, pagesize=A4, title=FORM_TITLE, footer=footer, font=s.font)


def _form_heading(form: FormData, s: _Styles) -> Table:
    cells = [
        _p(f"行政区划：{form.division}", s.body),
        _p(f"户号：{form.household_number or ''}", s.body),
        _p(f"填表日期：{DATE_BLANK}", s.body),
    ]
    return Table([cells], colWidths=[86 * mm, 45 * mm, 55 * mm])


def _item_value(item: RegistrationItem, value: str | None) -> str:
    value = (value or "").strip()
    if not value:  # a blank box to fill in; the gender's two choices are printed to tick
        return _choices((g.label, False) for g in Gender) if item is R.GENDER else ""
    if item in _CODED_ITEMS:
        return _label(_CODED_ITEMS[item], value)
    if item is R.BIRTH_DATE and re.fullmatch(r"\d{8}", value):
        return f"{value[:4]}年{value[4:6]}月{value[6:]}日"
    return value


def _basic_items(form: FormData, flagged: set[str], s: _Styles) -> Table:
    rows: list[list[Any]] = []
    style: list[Any] = [GRID, ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
    for r, items in enumerate(_ITEM_ROWS):
        row: list[Any] = []
        for c, item in enumerate(items):
            label = f"{FLAG}{item.label}" if item in flagged else item.label
            row += [_p(label, s.centred), _p(_item_value(item, form.items.get(item)), s.cell)]
            if item in flagged:
                end = 2 * c + 1 if len(items) == 2 else 3
                style.append(("BACKGROUND", (2 * c, r), (end, r), HIGHLIGHT))
        if len(items) == 1:
            row += ["", ""]
            style.append(("SPAN", (1, r), (3, r)))
        rows.append(row)
    widths = [26 * mm, 67 * mm, 26 * mm, 67 * mm]
    return Table(
        rows, colWidths=widths, style=TableStyle(style), minRowHeights=[7 * mm] * len(rows)
    )


def _employment_choice(value: str | None) -> tuple[str | None, str]:
    """(a code of EmploymentStatus, other text); a value outside the table (the registry's from
    before it had one) is kept under 其他 so that nothing it holds is lost from the print."""
    if not value or not value.strip():
        return None, ""
    by_label = {label: word for word, label in EMPLOYMENT_CHOICES.items()}
    word = value.strip()
    if word in EMPLOYMENT_CHOICES or word in by_label:
        return by_label.get(word, word), ""
    return "other", word


def _employment(value: str | None, unit_name: str | None, flagged: bool, s: _Styles) -> Table:
    choice, text = _employment_choice(value)
    no_unit = [w for w in EMPLOYMENT_CHOICES if w != "employed"]
    options = _choices(
        (
            EMPLOYMENT_CHOICES[w] + (f"（{text}）" if w == choice == "other" and text else ""),
            w == choice,
        )
        for w in no_unit
    )
    rows: list[list[Any]] = [
        [
            _p(_choices([(EMPLOYMENT_CHOICES["employed"], choice == "employed")]), s.cell),
            _p("工作单位全称", s.centred),
            _p((unit_name or "") if choice in ("employed", None) else "", s.cell),
        ],
        [_p(_choices([("无单位就业", choice in no_unit)]), s.cell), _p(options, s.cell), ""],
    ]
    style: list[Any] = [GRID, ("SPAN", (1, 1), (2, 1)), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]
    if flagged:
        style.append(("BACKGROUND", (0, 0), (-1, -1), HIGHLIGHT))
    return Table(
        rows,
        colWidths=[32 * mm, 28 * mm, 126 * mm],
        style=TableStyle(style),
        minRowHeights=[7 * mm, 7 * mm],
    )


def _status_code(value: str | None) -> StatusCode | None:
    try:
        return StatusCode(value) if value is not None else None
    except ValueError:
        return None


def _insurance(statuses: dict[str, str | None], s: _Styles) -> Table:
    """One row per insurance: its schemes to tick (the current one ticked), the reasons for not
    being insured (91 92 93 95) and insured elsewhere (81 82)."""
    shared = (*_UNINSURED, *_ELSEWHERE)
    header: list[list[Any]] = [
        [
            _p("险种", s.centred),
            _p("现参保情况", s.centred),
            _p("未参保原因", s.centred),
            "",
            "",
            "",
            _p("异地参保", s.centred),
            "",
        ],
        ["", "", *(_p(f"{code.label}（{code.value}）", s.small) for code in shared)],
    ]
    rows: list[list[Any]] = []
    for insurance in Insurance:
        raw = statuses.get(insurance)
        code = _status_code(raw)
        schemes = [c for c in codes_for(insurance) if c.insurance is insurance]
        options = [(c.label, code is c) for c in schemes]
        options += [
            (StatusCode.INTERRUPTED.label, code is StatusCode.INTERRUPTED),
            ("未参保", code in _UNINSURED),
        ]
        if raw and (code is None or insurance not in code.insurances):
            options.append((raw, True))  # a code the form has no box for: printed, not lost
        rows.append(
            [
                _p(insurance.label, s.centred),
                _p(_choices(options), s.cell),
                *(_p(_box(code is c), s.centred) for c in shared),
            ]
        )
    style: list[Any] = [
        GRID,
        ("SPAN", (0, 0), (0, 1)),
        ("SPAN", (1, 0), (1, 1)),
        ("SPAN", (2, 0), (5, 0)),
        ("SPAN", (6, 0), (7, 0)),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("BACKGROUND", (0, 0), (-1, 1), colors.HexColor("#EEEEEE")),
    ]
    widths = [20 * mm, 76 * mm, *[15 * mm] * 6]
    return Table(header + rows, colWidths=widths, style=TableStyle(style), repeatRows=2)


def _to_verify(form: FormData, s: _Styles) -> Table:
    reasons = "；".join(_label(SurveyReason, r) for r in form.survey_reasons) or "无"
    missing = "、".join(_label(RegistrationItem, i) for i in form.missing) or "无"
    inaccurate = [f"{_label(RegistrationItem, i)}：{why}" for i, why in form.inaccurate] or ["无"]
    rows: list[list[Any]] = [
        [_p("调查原因", s.centred), _p(reasons, s.cell)],
        [_p("缺失项目", s.centred), _p(missing, s.cell)],
        [_p("不准确项目", s.centred), [_p(line, s.cell) for line in inaccurate]],
    ]
    style: list[Any] = [
        GRID,
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("BACKGROUND", (0, 0), (-1, -1), HIGHLIGHT),
    ]
    return Table(rows, colWidths=[26 * mm, 160 * mm], style=TableStyle(style))


def _declaration(s: _Styles) -> list[Flowable]:
    signer = _choices(
        [("本人", False), ("监护人", False), ("指定代理人（代理人须附书面授权）", False)]
    )
    # Teams of two or three surveyors visit (domain.md §2.3): a line for each.
    lines = [[_p("签名：", s.body), "", _p("日期：", s.body), _p(DATE_BLANK, s.body)]]
    lines += [[_p("调查员：", s.body), "", _p("调查证号：", s.body), ""] for _ in range(3)]
    style = TableStyle(
        [
            ("LINEBELOW", (1, 0), (1, -1), 0.5, colors.black),
            ("LINEBELOW", (3, 1), (3, -1), 0.5, colors.black),
            ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
        ]
    )
    widths = [24 * mm, 66 * mm, 24 * mm, 66 * mm]
    return [
        _p(DECLARATION, s.body),
        _p(f"签名人：{signer}", s.body),
        Table(lines, colWidths=widths, style=style, rowHeights=[9 * mm] + [7.5 * mm] * 3),
    ]


# -- The community ledger (全民参保登记个人信息汇总表) --------------------------------------


def _ledger_cells(row: LedgerRow) -> list[str]:
    return [
        row.household_number or "",
        row.name,
        row.id_number,
        _label(Gender, row.gender) if row.gender else "",
        *(row.statuses.get(insurance) or "" for insurance in Insurance),
        row.survey_state,
        row.outcome or "",
        row.surveyors or "",
        row.approved_at.isoformat() if row.approved_at else "",
    ]


def _summary_text(summary: LedgerSummary) -> str:
    rate = summary.survey_rate
    return (
        f"人数：{summary.people}{GAP}需调查：{summary.needing_survey}{GAP}"
        f"已调查：{summary.surveyed}{GAP}已审定：{summary.approved}{GAP}"
        f"调查率：{'—' if rate is None else f'{rate:.1%}'}"
        "（已调查 ÷ 需调查）"
    )


def _codes_used(rows: Sequence[LedgerRow]) -> str:
    used = {code for row in rows for v in row.statuses.values() if (code := _status_code(v))}
    return "；".join(f"{c.value} {c.label}" for c in StatusCode if c in used)


_LEDGER_WIDTHS: Final = (20, 20, 36, 10, 12, 12, 12, 12, 12, 20, 55, 30, 22)  # mm, 273 in all
_WRAPPED: Final = frozenset({1, 9, 10, 11})  # name, state, outcome, surveyors: may be long


def ledger_pdf(ledger: Ledger, *, font_path: str) -> bytes:
    """The ledger of one village or community, A4 landscape, the header row on every page."""
    s = _styles(registered_cjk_font(font_path), 8)
    header = [_p(column, s.centred) for column in LEDGER_COLUMNS]
    body = [
        [_p(text, s.cell) if c in _WRAPPED else text for c, text in enumerate(_ledger_cells(row))]
        for row in ledger.rows
    ]  # short cells stay plain strings: a ledger may hold thousands of people
    style = TableStyle(
        [
            GRID,
            ("FONT", (0, 0), (-1, -1), s.font, 8),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("ALIGN", (3, 1), (8, -1), "CENTER"),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#EEEEEE")),
        ]
    )
    table = Table(
        [header, *body], colWidths=[w * mm for w in _LEDGER_WIDTHS], style=style, repeatRows=1
    )
    division = f"{ledger.division_code} {ledger.division_name}"
    generated = f"生成时间：{_when(ledger.generated_at)}"
    story: list[Flowable] = [
        _p(LEDGER_TITLE, s.title),
        _p(f"行政区划：{division}{GAP}{generated}", s.body),
        Spacer(0, 2 * mm),
        table,
        Spacer(0, 3 * mm),
        _p(_summary_text(ledger_summary(ledger)), s.heading),
    ]
    if codes := _codes_used(ledger.rows):
        story.append(_p(f"参保状态代码：{codes}", s.body))
    story += [
        Spacer(0, 6 * mm),
        _p(
            f"填表人：____________{GAP}审核人：____________{GAP}日期：{DATE_BLANK}",
            s.heading,
        ),
    ]
    footer = f"{LEDGER_TITLE}　{division}　{generated}"
    return _pdf(story, pagesize=landscape(A4), title=LEDGER_TITLE, footer=footer, font=s.font)


def ledger_xlsx(ledger: Ledger) -> bytes:
    """The same ledger as a workbook: title, division, the header on row 3 (frozen with the
    columns 户号 and 姓名), one row per person, then the summary rows and the signature row."""
    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)
    sheet.title = "汇总表"
    last = len(LEDGER_COLUMNS)
    _put_row(sheet, 1, [LEDGER_TITLE])
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=last)
    sheet.cell(1, 1).font = Font(size=16, bold=True)
    sheet.cell(1, 1).alignment = Alignment(horizontal="center")
    _put_row(
        sheet,
        2,
        [
            f"行政区划：{ledger.division_code} {ledger.division_name}",
            *[None] * 9,
            f"生成时间：{_when(ledger.generated_at)}",
        ],
    )
    _put_row(sheet, 3, list(LEDGER_COLUMNS))
    for column in range(1, last + 1):
        sheet.cell(3, column).font = Font(bold=True)
        sheet.cell(3, column).fill = PatternFill("solid", fgColor="EEEEEE")
    for r, row in enumerate(ledger.rows, start=4):
        cells: list[Any] = _ledger_cells(row)
        cells[-1] = row.approved_at  # a real date in the workbook
        _put_row(sheet, r, cells)
        if row.approved_at is not None:
            sheet.cell(r, last).number_format = "yyyy-mm-dd"
    sheet.freeze_panes = "C4"
    summary = ledger_summary(ledger)
    r = 4 + len(ledger.rows) + 1
    for offset, (label, value) in enumerate(
        [
            ("人数", summary.people),
            ("需调查", summary.needing_survey),
            ("已调查", summary.surveyed),
            ("已审定", summary.approved),
            ("调查率", summary.survey_rate),
        ]
    ):
        _put_row(sheet, r + offset, [label, "—" if value is None else value])
    sheet.cell(r + 4, 2).number_format = "0.0%"
    _put_row(sheet, r + 6, ["填表人：", None, "审核人：", None, "日期："])
    for column, width in enumerate(_LEDGER_WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = max(width * 0.55, 6)
    book.properties.creator = "canbao"
    book.properties.title = LEDGER_TITLE
    book.properties.created = book.properties.modified = _naive_china(ledger.generated_at)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _put_row(sheet: Worksheet, row: int, values: Sequence[Any]) -> None:
    for column, value in enumerate(values, start=1):
        if value is None:
            continue
        cell = sheet.cell(row, column)
        if isinstance(value, str):
            cell.value = ILLEGAL_CHARACTERS_RE.sub("", value)
            cell.data_type = "s"  # "=..." in a name stays text, never a formula
        else:
            cell.value = value


def _naive_china(moment: datetime) -> datetime:
    return moment.astimezone(CHINA).replace(tzinfo=None) if moment.tzinfo else moment


__all__ = [
    "DECLARATION",
    "EMPLOYMENT_CHOICES",
    "FORM_TITLE",
    "LEDGER_COLUMNS",
    "LEDGER_TITLE",
    "NO_SURVEY_NEEDED",
    "FormData",
    "Ledger",
    "LedgerRow",
    "LedgerSummary",
    "ledger_pdf",
    "ledger_summary",
    "ledger_xlsx",
    "registration_form_pdf",
]
