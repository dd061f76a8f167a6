"""The field-by-field rules every channel shares (canbao_contracts.collected_items): each bad
field named with its official item name, a stable kind, and never its value."""

from __future__ import annotations

from datetime import date

import pytest

from canbao_contracts.codes import CertificateType
from canbao_contracts.collected_items import (
    DefectKind,
    item_defects,
    missing_required,
    normalised,
)
from tests.survey.conftest import NEW_PERSON, NUMBER

TODAY = date(2026, 11, 23)


def kinds(items: dict[str, str], **options: object) -> list[tuple[str, DefectKind]]:
    return [(d.item, d.kind) for d in item_defects(items, today=TODAY, **options)]  # type: ignore[arg-type]


def test_a_complete_new_registration_has_no_defect() -> None:
    assert kinds(NEW_PERSON) == []
    assert missing_required(NEW_PERSON) == []


@pytest.mark.parametrize(
    "phone",
    [
        "13812345678",
        "19912345678",
        "138 1234 5678",
        "0851-85551234",
        "085185551234",
        "010-12345678",
        "0851-8555123",
    ],
)
def test_a_mobile_or_a_landline_with_area_code_is_a_phone(phone: str) -> None:
    assert kinds({"phone": phone}) == []


@pytest.mark.parametrize(
    "phone",
    [
        "1381234567",
        "138123456789",
        "12812345678",
        "85551234",
        "0851-855512",
        "+8613812345678",
        "1381234567a",
        "0851-85551234-12",
    ],
)
def test_anything_else_is_not_a_phone(phone: str) -> None:
    [defect] = item_defects({"phone": phone}, today=TODAY)
    assert (defect.item, defect.code, defect.kind) == ("phone", "AAE005", DefectKind.INVALID_PHONE)
    assert defect.message_zh.startswith("联系电话（AAE005）")
    assert phone not in defect.message + defect.message_zh


def test_an_id_number_with_a_wrong_check_character_says_which_it_should_be() -> None:
    [defect] = item_defects({"id_number": NUMBER[:17] + "6"}, today=TODAY)
    assert defect.kind is DefectKind.INVALID_ID_NUMBER
    assert defect.message_zh == "公民身份号码（AAC002）校验码应为3，实为6"


def test_a_passport_number_is_not_checked_as_a_citizen_number() -> None:
    assert kinds({"id_number": "E12345678"}, document_type=CertificateType.PASSPORT) == []


@pytest.mark.parametrize(
    ("item", "value"),
    [("gender", "0"), ("gender", "男"), ("household_type", "60"), ("personal_identity", "99")],
)
def test_coded_items_take_a_code_of_their_table(item: str, value: str) -> None:
    [defect] = item_defects({item: value}, today=TODAY)
    assert defect.kind is DefectKind.NOT_IN_CODE_TABLE
    assert "应为代码表中的代码" in defect.message_zh


@pytest.mark.parametrize("born", ["1980-01-01", "19801301", "19800230", "18991231", "20270101"])
def test_a_birth_date_is_a_real_past_date_yyyymmdd(born: str) -> None:
    assert kinds({"birth_date": born}) == [("birth_date", DefectKind.INVALID_DATE)]


def test_birth_date_and_gender_must_agree_with_the_id_number() -> None:
    items = {"id_number": NUMBER, "birth_date": "19800102", "gender": "2"}
    assert kinds(items) == [
        ("birth_date", DefectKind.DISAGREES_WITH_ID_NUMBER),
        ("gender", DefectKind.DISAGREES_WITH_ID_NUMBER),
    ]


def test_empty_too_long_and_unknown_items_are_named() -> None:
    items = {"name": "  ", "residence_address": "路" * 151, "nickname": "小王"}
    assert kinds(items) == [
        ("nickname", DefectKind.UNKNOWN_ITEM),
        ("name", DefectKind.EMPTY),
        ("residence_address", DefectKind.TOO_LONG),
    ]


def test_a_new_registration_lacks_every_required_item_it_does_not_bring() -> None:
    missing = [d.item for d in missing_required({"phone": "13812345678"})]
    assert missing == [
        "name",
        "gender",
        "id_number",
        "birth_date",
        "household_place",
        "residence_address",
    ]


def test_values_are_kept_trimmed_with_the_18_digit_number_and_a_compact_phone() -> None:
    legacy = "520102800101001"
    kept = normalised(
        {"id_number": f" {legacy} ", "phone": "138 1234 5678", "name": " 王伟 "},
        document_type=CertificateType.CITIZEN_ID,
    )
    assert kept == {"id_number": NUMBER, "phone": "13812345678", "name": "王伟"}
