"""Citizen ID numbers (公民身份号码, GB 11643-1999; domain.md §3): validation that says exactly what
is wrong, normalisation (15 → 18 digits, lower-case x, spaces), the facts a number carries, and the
one way every service masks numbers and names (api.md).

An 18-character number is region (6 digits, GB/T 2260) + birth date (YYYYMMDD) + sequence
(3 digits, odd for men) + a check character (ISO 7064 MOD 11-2). A legacy 15-digit number has
no check character and a two-digit year, always 19YY.
"""

from __future__ import annotations

from calendar import isleap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from operator import mul
from typing import Final

from canbao_contracts.codes import Gender

CHECK_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARACTERS: Final = "10X98765432"  # indexed by the weighted sum mod 11
_ZERO_WEIGHT: Final = ord("0") * sum(CHECK_WEIGHTS)
# GB/T 2260 provinces. Only the first two digits are checked: the full list of ~3,000 counties
# changes every year and a number keeps the code its holder was born under, so a county code that
# no longer exists is still a valid number.
# fmt: off
PROVINCE_CODES: Final = frozenset({
    "11", "12", "13", "14", "15",              # North
    "21", "22", "23",                          # Northeast
    "31", "32", "33", "34", "35", "36", "37",  # East
    "41", "42", "43", "44", "45", "46",        # Central South
    "50", "51", "52", "53", "54",              # Southwest
    "61", "62", "63", "64", "65",              # Northwest
    "71", "81", "82",                          # Taiwan, Hong Kong, Macao
})
# fmt: on
# Our convention: a registry of the living. GB 11643's own example 440524188001010014 (born 1880)
# is refused, as would be the numbers of the long dead.
EARLIEST_BIRTH_YEAR: Final = 1900
_DIGITS: Final = frozenset("0123456789")  # str.isdigit() alone would also accept "٣" or "²"
# Counter clerks type with Chinese input methods, which produce full-width digits and letters.
_FULL_WIDTH: Final = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789XX")


class DefectCode(StrEnum):
    """What is wrong with a number: stable, for machines (problem details, batch rejections)."""

    EMPTY = "empty"
    BAD_LENGTH = "bad_length"
    BAD_CHARACTERS = "bad_characters"
    BAD_REGION = "bad_region"
    BAD_BIRTH_DATE = "bad_birth_date"
    FUTURE_BIRTH_DATE = "future_birth_date"
    BAD_CHECK_DIGIT = "bad_check_digit"


@dataclass(frozen=True, slots=True)
class IdNumberDefect:
    """One defect, with messages a clerk can act on."""

    code: DefectCode
    message: str  # English
    message_zh: str


class InvalidIdNumber(ValueError):
    def __init__(self, defects: Sequence[IdNumberDefect]) -> None:
        self.defects = tuple(defects)
        super().__init__("; ".join(defect.message for defect in self.defects))


@dataclass(frozen=True, slots=True, repr=False)
class CitizenId:
    number: str  # normalised, 18 characters
    region_code: str
    birth_date: date
    gender: Gender
    was_legacy_15: bool

    def __repr__(self) -> str:  # numbers are personal data (domain.md §2.5): keep them out of logs
        return f"CitizenId({mask(self.number)})"


def check_character(first17: str) -> str:
    """The 18th character of a number whose first 17 digits are `first17`."""
    if len(first17) != 17 or not _all_digits(first17):
        raise ValueError(f"expected 17 digits, got {len(first17)} characters")  # no number here
    # Hot (every number of every event): the digits' ASCII codes weighed, less what the code of
    # "0" adds, instead of int() of each digit — a third of the time.
    total = sum(map(mul, first17.encode(), CHECK_WEIGHTS)) - _ZERO_WEIGHT
    return CHECK_CHARACTERS[total % 11]


def normalise(raw: str) -> str:
    """Without whitespace, with an upper-case X, and a valid 15-digit number converted to its
    18 digits (the same person, domain.md §3). An invalid number is only cleaned."""
    number = _clean(raw)
    if len(number) == 15 and not validate(number):
        first17 = number[:6] + "19" + number[6:]
        return first17 + check_character(first17)
    return number


def parse(raw: str, *, today: date | None = None) -> CitizenId:
    """The facts a valid number carries; raises InvalidIdNumber with every defect otherwise."""
    if defects := validate(raw, today=today):
        raise InvalidIdNumber(defects)
    number = normalise(raw)
    return CitizenId(
        number=number,
        region_code=number[:6],
        birth_date=date(int(number[6:10]), int(number[10:12]), int(number[12:14])),
        gender=Gender.MALE if int(number[16]) % 2 else Gender.FEMALE,
        was_legacy_15=len(_clean(raw)) == 15,
    )


def validate(raw: str, *, today: date | None = None) -> list[IdNumberDefect]:
    """Every defect of `raw`; empty when it is a valid 15- or 18-character number."""
    number = _clean(raw)
    today = today or date.today()
    if _plainly_valid(number, today):
        return []
    if not number:
        return [IdNumberDefect(DefectCode.EMPTY, "the ID number is empty", "公民身份号码为空")]
    defects = [*_length_defects(number), *_character_defects(number), *_region_defects(number)]
    if len(number) in (15, 18):
        defects += _birth_date_defects(number, today)
    if len(number) == 18:
        defects += _check_defects(number)
    return defects


def _plainly_valid(number: str, today: date) -> bool:
    """Whether a clean `number` is a valid 18-character one, decided without listing defects:
    nearly every number validated is (every event's), and listing costs three times as much."""
    if len(number) != 18 or not _all_digits(number[:17]) or number[:2] not in PROVINCE_CODES:
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return (
        born.year >= EARLIEST_BIRTH_YEAR
        and born <= today
        and number[17] == check_character(number[:17])
    )


def possible_corrections(raw: str, *, today: date | None = None) -> list[str]:
    """For an 18-character number with a wrong check character, the valid numbers one slip away:
    the check character recomputed, or two adjacent characters swapped back (MOD 11-2 detects
    every such swap, so any swap that validates is a genuine candidate). For a clerk to choose
    from with the person's document in hand, never to apply on its own."""
    number = _clean(raw)
    codes = {defect.code for defect in validate(number, today=today)}
    if len(number) != 18 or DefectCode.BAD_CHECK_DIGIT not in codes:
        return []
    recomputed = number[:17] + check_character(number[:17])
    swaps = (number[:i] + number[i + 1] + number[i] + number[i + 2 :] for i in range(17))
    candidates = [recomputed, *(swapped for swapped in swaps if swapped != number)]
    return [c for c in dict.fromkeys(candidates) if not validate(c, today=today)]


def mask(number: str) -> str:
    """`5201**********123X` (api.md): the first and last four characters kept."""
    number = normalise(number)
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def mask_name(name: str) -> str:
    """`张**` (api.md): the first character kept; a one-character name fully masked."""
    name = name.strip()
    return "*" * len(name) if len(name) <= 1 else name[0] + "*" * (len(name) - 1)


def _clean(raw: str) -> str:
    return "".join(raw.split()).translate(_FULL_WIDTH).replace("x", "X")


def _all_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _length_defects(number: str) -> list[IdNumberDefect]:
    if len(number) in (15, 18):
        return []
    return [
        IdNumberDefect(
            DefectCode.BAD_LENGTH,
            f"the ID number has {len(number)} characters instead of 18 (or 15 for an old number)",
            f"公民身份号码应为18位（旧号码为15位），实为{len(number)}位",
        )
    ]


def _character_defects(number: str) -> list[IdNumberDefect]:
    bad = [
        (position, c if c.isprintable() else f"U+{ord(c):04X}")
        for position, c in enumerate(number, start=1)
        if c not in _DIGITS and not (c == "X" and position == 18 == len(number))
    ]
    if not bad:
        return []
    en = ", ".join(f"'{c}' at position {position}" for position, c in bad)
    zh = "；".join(f"第{position}位“{c}”不是数字" for position, c in bad)
    if any(c == "X" for _, c in bad):
        en += " (X may only be the 18th, check character)"
        zh += "（X只能是第18位校验码）"
    plural = "s" if len(bad) > 1 else ""
    return [IdNumberDefect(DefectCode.BAD_CHARACTERS, f"non-digit character{plural} {en}", zh)]


def _region_defects(number: str) -> list[IdNumberDefect]:
    province, region = number[:2], number[:6]
    if len(province) < 2 or not _all_digits(province) or province in PROVINCE_CODES:
        return []
    return [
        IdNumberDefect(
            DefectCode.BAD_REGION,
            f"region code {region} starts with {province}, which is not a province of GB/T 2260",
            f"行政区划代码{region}的前两位{province}不是省级行政区划代码（GB/T 2260）",
        )
    ]


def _birth_date_defects(number: str, today: date) -> list[IdNumberDefect]:
    legacy = len(number) == 15
    written = number[6:12] if legacy else number[6:14]
    if not _all_digits(written):
        return []
    digits = "19" + written if legacy else written
    year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    en, zh = f"birth date {written}", f"出生日期{written}"
    if not 1 <= month <= 12:
        return [_bad_date(f"{en}: month {month} does not exist", f"{zh}中的月份{month}不存在")]
    last_day = (31, 29 if isleap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    if not 1 <= day <= last_day:
        return [
            _bad_date(
                f"{en}: day {day} does not exist ({year}-{month:02} has {last_day} days)",
                f"{zh}中的日期{day}不存在（{year}年{month}月只有{last_day}天）",
            )
        ]
    if year < EARLIEST_BIRTH_YEAR:
        return [_bad_date(f"{en} is before 1900-01-01", f"{zh}早于1900年1月1日")]
    if date(year, month, day) > today:
        return [
            IdNumberDefect(
                DefectCode.FUTURE_BIRTH_DATE,
                f"{en} is in the future (today is {today.isoformat()})",
                f"{zh}晚于今天（{today.isoformat()}）",
            )
        ]
    return []


def _bad_date(message: str, message_zh: str) -> IdNumberDefect:
    return IdNumberDefect(DefectCode.BAD_BIRTH_DATE, message, message_zh)


def _check_defects(number: str) -> list[IdNumberDefect]:
    first17, actual = number[:17], number[17]
    if not _all_digits(first17) or not (actual in _DIGITS or actual == "X"):
        return []  # the characters are wrong already; the check character means nothing
    expected = check_character(first17)
    if actual == expected:
        return []
    return [
        IdNumberDefect(
            DefectCode.BAD_CHECK_DIGIT,
            f"the check character is {actual} but should be {expected}",
            f"校验码应为{expected}，实为{actual}",
        )
    ]
