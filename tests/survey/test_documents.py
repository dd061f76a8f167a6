"""The household survey's printed documents (domain.md §2.3; api.md "Survey"): the prefilled
registration form 全民参保登记表 and the community ledger 全民参保登记个人信息汇总表, read back as a
person and a spreadsheet would read them: the PDFs' text extracted (the CJK font is embedded with
its Unicode map), a page rendered to pixels, the workbook opened. Pure: no database.

Renders are kept in artifacts/survey-documents/ (CANBAO_ARTIFACTS overrides artifacts/)."""

from __future__ import annotations

import io
import os
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pypdf
import pypdfium2  # type: ignore[import-untyped]
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from PIL import Image

from canbao_survey.documents import (
    DECLARATION,
    FORM_TITLE,
    LEDGER_COLUMNS,
    LEDGER_TITLE,
    NO_SURVEY_NEEDED,
    FormData,
    Ledger,
    LedgerRow,
    ledger_pdf,
    ledger_summary,
    ledger_xlsx,
    registration_form_pdf,
)
from canbao_survey.settings import SurveySettings

NUMBER = "520102198001010013"
PRINTED_AT = datetime(2026, 3, 1, 6, 5, tzinfo=UTC)  # 14:05 in Beijing
ADDRESS_REASON = "与户籍系统登记的地址不一致"
FORM = FormData(
    task_id="task-2026-000123",
    division="520102 贵阳市南明区",
    household_number="0012",
    items={
        "name": "王小明",
        "gender": "1",
        "id_number": NUMBER,
        "birth_date": "19800101",
        "personal_identity": "27",
        "household_type": "21",
        "household_place": "贵州省贵阳市南明区",
        "residence_address": "贵州省贵阳市南明区花果园街道1号",
        "phone": None,
        "person_number": None,
        "household_book_number": "H5201020012",
        "family_number": None,
        "employment_status": "employed",
        "unit_name": "贵阳市某某建筑有限公司",
    },
    statuses={
        "pension": "91",  # ticks 未参保 and the reason 91
        "medical": "27",  # ticks its scheme
        "injury": "92",  # ticks 未参保 and the reason 92
        "unemployment": "81",  # ticks 省内异地参保
        "maternity": None,  # nothing ticked: to fill in
    },
    survey_reasons=("uninsured", "missing_info", "inaccurate_info"),
    missing=("phone",),
    inaccurate=(("residence_address", ADDRESS_REASON),),
    printed_at=PRINTED_AT,
)
TICKS_ON_FORM = 2 + 1 + 2 + 1 + 0 + 1  # the five insurances above, and 单位就业


@pytest.fixture(scope="module")
def font_path() -> str:
    return SurveySettings().cjk_font


def artifacts() -> Path:
    root = Path(os.environ.get("CANBAO_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))
    folder = root / "survey-documents"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages]


def compact(text: str) -> str:
    """Extracted text without the line breaks and spaces that the layout puts in."""
    return re.sub(r"\s+", "", text)


def render(pdf: bytes, page: int, name: str) -> Image.Image:
    document = pypdfium2.PdfDocument(pdf)
    image: Image.Image = document[page].render(scale=2).to_pil().convert("L")
    image.save(artifacts() / name)
    document.close()
    return image


def dark_share(image: Image.Image, box: tuple[float, float, float, float]) -> float:
    """The share of pixels darker than light grey within `box` (fractions of the page)."""
    w, h = image.size
    left, top, right, bottom = box
    region = image.crop((int(left * w), int(top * h), int(right * w), int(bottom * h)))
    histogram = region.histogram()
    return sum(histogram[:200]) / (region.width * region.height)


def has_ruled_line(image: Image.Image, box: tuple[float, float, float, float]) -> bool:
    """Whether a horizontal line crosses all of `box`: a table's border, not just text."""
    w, h = image.size
    left, top, right, bottom = box
    region = image.crop((int(left * w), int(top * h), int(right * w), int(bottom * h)))
    pixels, width = region.tobytes(), region.width  # one byte per pixel in mode "L"
    rows = (pixels[y * width : (y + 1) * width] for y in range(region.height))
    return any(all(value < 200 for value in row) for row in rows)


def person(i: int, **changes: object) -> LedgerRow:
    surveyed = i % 4 != 0
    row = LedgerRow(
        household_number=f"{i // 3:04d}",
        name="王**",
        id_number="5201**********001X",
        gender="1" if i % 2 else "2",
        statuses={
            "pension": "11",
            "medical": "27",
            "injury": None,
            "unemployment": "91",
            "maternity": "95",
        },
        survey_state="已审定" if surveyed else NO_SURVEY_NEEDED,
        outcome="核实未参保原因：93 因服兵役、出国定居、服刑等原因未参保" if surveyed else None,
        surveyors="demo-surveyor、demo-surveyor2" if surveyed else None,
        approved_at=date(2026, 3, 2) if surveyed else None,
    )
    return replace(row, **changes)  # type: ignore[arg-type]


LEDGER = Ledger(
    division_code="520102003",
    division_name="花果园社区",
    generated_at=PRINTED_AT,
    rows=tuple(person(i) for i in range(120)),
)


# -- The registration form ------------------------------------------------------------------------


def test_the_form_prints_the_person_the_items_to_verify_and_the_declaration(
    font_path: str,
) -> None:
    pdf = registration_form_pdf(FORM, font_path=font_path)

    text = pages_text(pdf)
    assert len(text) == 1, "the form fits one A4 sheet"
    assert pdf.startswith(b"%PDF-")
    page = compact(text[0])
    for expected in (FORM_TITLE, "王小明", NUMBER, "1980年01月01日", "本地农业户口（本地农村）"):
        assert expected in page
    assert "居住地址：" + ADDRESS_REASON in page
    assert "联系电话" in page.split("缺失项目")[1], "the missing phone is listed to verify"
    assert "养老或医疗保险应参保未参保" in page
    assert compact(DECLARATION) in page
    assert "指定代理人（代理人须附书面授权）" in page
    assert "调查员" in page and "调查证号" in page
    assert "贵阳市某某建筑有限公司" in page


def test_the_ticks_follow_the_status_codes_and_the_employment(font_path: str) -> None:
    page = compact(pages_text(registration_form_pdf(FORM, font_path=font_path))[0])

    assert page.count("■") == TICKS_ON_FORM
    assert "■城乡居民基本医疗保险" in page
    assert "■单位就业" in page
    assert "□无单位就业" in page


def test_what_the_form_has_no_box_for_is_printed_not_lost(font_path: str) -> None:
    odd = replace(
        FORM,
        items={**FORM.items, "employment_status": "个体经营"},
        statuses={**FORM.statuses, "medical": "11"},  # a pension scheme under medical
    )
    page = compact(pages_text(registration_form_pdf(odd, font_path=font_path))[0])

    assert "■无单位就业" in page and "■其他（个体经营）" in page
    assert "■11" in page


def test_the_footer_names_the_task_and_the_print_time_in_beijing(font_path: str) -> None:
    page = pages_text(registration_form_pdf(FORM, font_path=font_path))[0]

    assert "task-2026-000123" in page
    assert "2026-03-01 14:05" in page


def test_a_blank_item_prints_as_an_empty_box_under_its_label(font_path: str) -> None:
    blank = replace(
        FORM,
        household_number=None,
        items={**FORM.items, "phone": None, "employment_status": None},
        statuses=dict.fromkeys(FORM.statuses),
    )
    page = pages_text(registration_form_pdf(blank, font_path=font_path))[0]

    assert "None" not in page
    # The phone's value box is empty: its label is followed straight by the next label.
    assert re.search(r"联系电话\s*个人编号", page)
    assert re.search(r"家庭编号\s*▲", page), "the family number's box is empty too"
    assert "■" not in page, "nothing is ticked when nothing is known"


def test_the_rendered_form_shows_its_tables(font_path: str) -> None:
    image = render(registration_form_pdf(FORM, font_path=font_path), 0, "registration-form.png")

    # The basic items table (一、个人基本信息) sits in the upper third of the page.
    assert dark_share(image, (0.08, 0.13, 0.92, 0.28)) > 0.01
    assert has_ruled_line(image, (0.08, 0.13, 0.92, 0.28))
    # The right margin stays blank: the measure does tell ink from paper.
    assert dark_share(image, (0.97, 0.0, 1.0, 1.0)) == 0


def test_the_same_form_gives_the_same_bytes(font_path: str) -> None:
    assert registration_form_pdf(FORM, font_path=font_path) == registration_form_pdf(
        FORM, font_path=font_path
    )


# -- The community ledger -------------------------------------------------------------------------


def test_a_long_ledger_repeats_its_header_on_every_page(font_path: str) -> None:
    pdf = ledger_pdf(LEDGER, font_path=font_path)

    text = pages_text(pdf)
    assert len(text) >= 3
    assert LEDGER_TITLE in text[0] and "520102003 花果园社区" in text[0]
    for page in text[1:]:
        assert "户号" in page and "公民身份号码" in page and "审定日期" in page
    last = compact(text[-1])
    assert "人数：120" in last
    assert "需调查：90" in last and "已调查：90" in last and "已审定：90" in last
    assert "调查率：100.0%" in last
    assert "填表人" in last and "审核人" in last
    assert "11城镇企业职工基本养老保险" in last, "the codes used are explained"
    render(pdf, 0, "ledger-page-1.png")


def test_ledger_summary_counts_surveyed_against_those_needing_a_survey() -> None:
    rows = (
        person(0),  # no survey needed
        person(1),  # surveyed and approved
        person(2, approved_at=None, survey_state="已初审"),  # surveyed, not approved yet
        person(3, outcome=None, approved_at=None, survey_state="已分派"),  # not surveyed yet
    )
    summary = ledger_summary(replace(LEDGER, rows=rows))

    assert (summary.people, summary.needing_survey, summary.surveyed, summary.approved) == (
        4,
        3,
        2,
        1,
    )
    assert summary.survey_rate == pytest.approx(2 / 3)
    assert ledger_summary(replace(LEDGER, rows=(person(0),))).survey_rate is None


def test_a_ledger_with_blanks_prints_no_none(font_path: str) -> None:
    blank = person(
        1,
        household_number=None,
        gender=None,
        statuses=dict.fromkeys(FORM.statuses),
        outcome=None,
        surveyors=None,
        approved_at=None,
    )
    ledger = replace(LEDGER, rows=(blank, person(0)))

    text = "".join(pages_text(ledger_pdf(ledger, font_path=font_path)))
    assert "None" not in text
    assert "调查率：0.0%" in compact(text)
    sheet = workbook_sheet(ledger_xlsx(ledger))
    assert all(cell != "None" for row in sheet.iter_rows(values_only=True) for cell in row)


def workbook_sheet(data: bytes) -> Worksheet:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert isinstance(sheet, Worksheet)
    return sheet


def test_the_ledger_workbook_has_the_columns_the_rows_and_the_summary() -> None:
    sheet = workbook_sheet(ledger_xlsx(LEDGER))

    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == LEDGER_TITLE
    assert rows[1][0] == "行政区划：520102003 花果园社区"
    assert rows[2] == LEDGER_COLUMNS
    assert sheet.freeze_panes == "C4"
    people = [row for row in rows[3:] if row[2] == "5201**********001X"]
    assert len(people) == 120
    assert people[1][:9] == (
        "0000",
        "王**",
        "5201**********001X",
        "男",
        "11",
        "27",
        None,
        "91",
        "95",
    )
    assert people[1][12] == datetime(2026, 3, 2)
    summary = {row[0]: row[1] for row in rows[3 + 120 :] if row[0]}
    assert summary["人数"] == 120
    assert summary["需调查"] == 90 and summary["已调查"] == 90 and summary["已审定"] == 90
    assert summary["调查率"] == 1
    assert "填表人：" in summary
    assert (sheet.column_dimensions["C"].width or 0) > (sheet.column_dimensions["D"].width or 0)


def test_a_name_that_looks_like_a_formula_stays_text() -> None:
    ledger = replace(LEDGER, rows=(person(1, name='=HYPERLINK("http://x","点我")'),))

    sheet = workbook_sheet(ledger_xlsx(ledger))
    assert sheet["B4"].value == '=HYPERLINK("http://x","点我")'
    assert sheet["B4"].data_type == "s"
