"""Numbers as the source systems hold them: citizen ID numbers (clean, and in the dirty forms
of sources.md: 15 digits, lower-case x, spaces, a mistyped check character), unified social
credit codes of units, and phone numbers (valid and malformed).

The check character comes from the one ID-number module, `canbao_contracts.id_numbers`.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Final

from canbao_contracts.id_numbers import CHECK_CHARACTERS, check_character

# Mobile prefixes of the three carriers; a landline is Guizhou's area code 0851 + 8 digits.
_MOBILE_PREFIXES: Final = [
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "156",
    "157",
    "158",
    "159",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]


def id_number(region: str, birth: date, sequence: int) -> str:
    """The 18-character number: region + YYYYMMDD + 3-digit sequence + check (GB 11643)."""
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_character(first17)


def legacy_15(number: str) -> str:
    """The pre-1999 15-digit form of an 18-digit number of someone born in the 1900s: the
    century and the check character dropped (domain.md §3)."""
    assert number[6:8] == "19", "only people born 1900-1999 had 15-digit numbers"
    return number[:6] + number[8:17]


def wrong_check(number: str, rng: random.Random) -> str:
    """The number with a mistyped check character: invalid, so it must never merge silently."""
    wrong = [c for c in CHECK_CHARACTERS if c != number[17]]
    return number[:17] + wrong[int(rng.random() * len(wrong))]


def with_spaces(number: str, rng: random.Random) -> str:
    """Spaces a clerk's copy-paste leaves: around the number or after the region code
    (at most 20 characters: the source columns are varchar(20))."""
    style = int(rng.random() * 3)
    if style == 0:
        return f" {number}"
    if style == 1:
        return f"{number} "
    return f"{number[:6]} {number[6:]}"


def credit_code(region: str, body: int, *, organ: bool) -> str:
    """A unified social credit code (GB 32100-2015): registration authority (1 organs,
    9 industry and commerce) + type + region + organisation code (GB 11714, with its own check
    digit) + check character."""
    organisation = f"{body % 100_000_000:08d}"
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    remainder = 11 - sum(int(d) * w for d, w in zip(organisation, weights, strict=True)) % 11
    organisation += "X" if remainder == 10 else "0" if remainder == 11 else str(remainder)
    first17 = ("11" if organ else "91") + region + organisation
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    total = sum(alphabet.index(c) * pow(3, i, 31) for i, c in enumerate(first17))
    return first17 + alphabet[(31 - total % 31) % 31]


def mobile(rng: random.Random) -> str:
    prefix = _MOBILE_PREFIXES[int(rng.random() * len(_MOBILE_PREFIXES))]
    return f"{prefix}{int(rng.random() * 100_000_000):08d}"


def landline(rng: random.Random) -> str:
    return f"0851-{8 + int(rng.random() * 2)}{int(rng.random() * 10_000_000):07d}"


def malformed_phone(rng: random.Random) -> str:
    """A phone no one can call: a digit short, a digit too many, or a letter O for a zero."""
    number = mobile(rng)
    style = int(rng.random() * 3)
    if style == 0:
        return number[:10]
    if style == 1:
        return number + str(int(rng.random() * 10))
    return number[:3] + "O" + number[4:]
