"""Collected registration items checked field by field, with the same rules everywhere: the one
place a counter, a kiosk, a survey form or a partner batch learns what is wrong with a value, in
words a clerk can act on.

`item_defects` names every bad field with its official name (联系电话 AAE005) and a stable `kind`;
it never quotes the value, which is personal data. What passes is what `CollectionApproved`
(events.collection) may carry.

Every value is checked and kept in its canonical spelling (canbao_contracts.text: NFKC, trimmed,
so full-width digits typed with a Chinese input method are accepted and kept as ASCII digits);
a value holding a control, invisible or surrogate character (a NUL, a tab, a newline, a
zero-width space) is refused with where that character is, for the clerk to type it again.

The phone rule is our convention (the documents only say "mobile phone; else a
family member's or a landline"): an 11-digit mainland mobile number, or a landline with its area
code, hyphen optional.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Final

from canbao_contracts.codes import (
    CertificateType,
    EmploymentStatus,
    Gender,
    HouseholdType,
    LabelledCode,
    PersonalIdentity,
    RegistrationItem,
)
from canbao_contracts.id_numbers import EARLIEST_BIRTH_YEAR, normalise, parse, validate
from canbao_contracts.text import canonical, forbidden_character

MAX_LENGTH: Final = 150  # the longest value CollectionApproved carries (an address)
# Mainland mobile numbers: 11 digits starting 13-19 (MIIT numbering plan).
MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
# A landline with its area code: 0 + 2-3 digits (010 Beijing, 0851 Guiyang), then 7-8 digits.
LANDLINE: Final = re.compile(r"0[1-9][0-9]{1,2}-?[1-9][0-9]{6,7}")
_CODED: Final[Mapping[RegistrationItem, type[LabelledCode]]] = {
    RegistrationItem.GENDER: Gender,
    RegistrationItem.HOUSEHOLD_TYPE: HouseholdType,
    RegistrationItem.PERSONAL_IDENTITY: PersonalIdentity,
    RegistrationItem.EMPLOYMENT_STATUS: EmploymentStatus,
}


class DefectKind(StrEnum):
    """What is wrong with a field: stable, for machines (problem details' `errors[].kind`)."""

    UNKNOWN_ITEM = "unknown_item"
    EMPTY = "empty"
    INVALID_CHARACTER = "invalid_character"
    TOO_LONG = "too_long"
    INVALID_ID_NUMBER = "invalid_id_number"
    NOT_IN_CODE_TABLE = "not_in_code_table"
    INVALID_DATE = "invalid_date"
    INVALID_PHONE = "invalid_phone"
    DISAGREES_WITH_ID_NUMBER = "disagrees_with_id_number"
    MISSING_REQUIRED = "missing_required"


@dataclass(frozen=True, slots=True)
class ItemDefect:
    item: str  # the item's API name (`phone`), or what the client sent when it is unknown
    code: str  # the indicator (AAE005); empty for an unknown item
    label: str  # 联系电话
    kind: DefectKind
    message: str  # English
    message_zh: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}


def item_defects(
    items: Mapping[str, str],
    *,
    document_type: CertificateType = CertificateType.CITIZEN_ID,
    today: date | None = None,
) -> list[ItemDefect]:
    """Every defect of the collected `items` (API name → value), in the order of the item table."""
    today = today or date.today()
    known = {item.value: item for item in RegistrationItem}
    defects = [
        ItemDefect(
            name[:40],
            "",
            "",
            DefectKind.UNKNOWN_ITEM,
            f"unknown item '{name[:40]}'",
            f"未知的登记项目“{name[:40]}”",
        )
        for name in items
        if name not in known
    ]
    for item in RegistrationItem:
        if item.value in items:
            defects += _value_defects(item, canonical(items[item.value]), document_type, today)
    if not defects:
        defects += _agreement_defects(items, document_type, today)
    return defects


def missing_required(items: Mapping[str, str]) -> list[ItemDefect]:
    """The required items (domain.md §4 Y column, and the phone) a new registration lacks."""
    return [
        _defect(
            item,
            DefectKind.MISSING_REQUIRED,
            "is required for a new registration",
            "为新参保登记的必填项目",
        )
        for item in RegistrationItem
        if item.required and not canonical(items.get(item.value, ""))
    ]


def normalised(items: Mapping[str, str], *, document_type: CertificateType) -> dict[str, str]:
    """Valid `items` as the registry keeps them: canonical (NFKC, trimmed), a citizen number in
    its 18 characters, a phone without spaces."""
    result = {name: canonical(value) for name, value in items.items()}
    if document_type is CertificateType.CITIZEN_ID and RegistrationItem.ID_NUMBER in result:
        result[RegistrationItem.ID_NUMBER] = normalise(result[RegistrationItem.ID_NUMBER])
    if RegistrationItem.PHONE in result:
        result[RegistrationItem.PHONE] = "".join(result[RegistrationItem.PHONE].split())
    return result


def _value_defects(
    item: RegistrationItem, value: str, document_type: CertificateType, today: date
) -> list[ItemDefect]:
    if not value:
        return [_defect(item, DefectKind.EMPTY, "is empty", "不能为空")]
    if (bad := forbidden_character(value)) is not None:
        return [
            _defect(
                item,
                DefectKind.INVALID_CHARACTER,
                f"holds a forbidden {bad.kind} character"
                f" ({bad.code_point}, character {bad.position})",
                f"含有控制字符或不可见字符（第{bad.position}个字符，{bad.code_point}），请重新输入",
            )
        ]
    if len(value) > MAX_LENGTH:
        return [
            _defect(
                item,
                DefectKind.TOO_LONG,
                f"is longer than {MAX_LENGTH} characters",
                f"超过{MAX_LENGTH}个字符",
            )
        ]
    citizen_number = document_type is CertificateType.CITIZEN_ID
    if (
        item is RegistrationItem.ID_NUMBER
        and citizen_number
        and (problems := validate(value, today=today))
    ):
        return [
            _defect(
                item,
                DefectKind.INVALID_ID_NUMBER,
                "; ".join(p.message for p in problems),
                "；".join(p.message_zh for p in problems),
            )
        ]
    if item in _CODED:
        table = _CODED[item]
        if value not in {code.value for code in table}:
            choices = "、".join(f"{code.value} {code.label}" for code in table)
            return [
                _defect(
                    item,
                    DefectKind.NOT_IN_CODE_TABLE,
                    "is not a code of its table",
                    f"应为代码表中的代码：{choices}",
                )
            ]
    if item is RegistrationItem.BIRTH_DATE:
        return _birth_date_defects(value, today)
    if item is RegistrationItem.PHONE:
        phone = "".join(value.split())
        if not (MOBILE.fullmatch(phone) or LANDLINE.fullmatch(phone)):
            return [
                _defect(
                    item,
                    DefectKind.INVALID_PHONE,
                    "is neither an 11-digit mobile number nor a landline with area code",
                    "应为11位手机号码，或带区号的固定电话（如010-12345678）",
                )
            ]
    return []


def _birth_date_defects(value: str, today: date) -> list[ItemDefect]:
    item = RegistrationItem.BIRTH_DATE
    try:
        born = date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        if len(value) != 8 or not value.isascii() or not value.isdigit():
            raise ValueError
    except ValueError:
        return [
            _defect(
                item,
                DefectKind.INVALID_DATE,
                "is not a date YYYYMMDD",
                "应为8位日期YYYYMMDD（如19800101）",
            )
        ]
    if born.year < EARLIEST_BIRTH_YEAR or born > today:
        return [
            _defect(
                item,
                DefectKind.INVALID_DATE,
                "is before 1900 or in the future",
                "不能早于1900年1月1日或晚于今天",
            )
        ]
    return []


def _agreement_defects(
    items: Mapping[str, str], document_type: CertificateType, today: date
) -> list[ItemDefect]:
    """Birth date and gender against the citizen number (domain.md §5 "ID disagreeing with birth
    date/gender" is an inaccurate item: a collection must not bring one in)."""
    number = items.get(RegistrationItem.ID_NUMBER)
    if number is None or document_type is not CertificateType.CITIZEN_ID:
        return []
    citizen, defects = parse(number, today=today), []
    born = items.get(RegistrationItem.BIRTH_DATE)
    if born is not None and canonical(born) != citizen.birth_date.strftime("%Y%m%d"):
        defects.append(
            _defect(
                RegistrationItem.BIRTH_DATE,
                DefectKind.DISAGREES_WITH_ID_NUMBER,
                "disagrees with the ID number",
                "与公民身份号码中的出生日期不一致",
            )
        )
    gender = items.get(RegistrationItem.GENDER)
    if gender is not None and canonical(gender) != citizen.gender.value:
        defects.append(
            _defect(
                RegistrationItem.GENDER,
                DefectKind.DISAGREES_WITH_ID_NUMBER,
                "disagrees with the ID number",
                "与公民身份号码中的性别不一致",
            )
        )
    return defects


def _defect(item: RegistrationItem, kind: DefectKind, message: str, message_zh: str) -> ItemDefect:
    return ItemDefect(
        item.value,
        item.code,
        item.label,
        kind,
        f"{item.value} ({item.code}) {message}",
        f"{item.label}（{item.code}）{message_zh}",
    )
