"""Reading source columns: blanks are no value; dates as Debezium writes them; text by the
registry's text rules (canbao_contracts.text.source_text: NFKC, a line break a space, and a value
holding a NUL or another control character is no value: the item is taken from another source or
reported missing, the rest of the row is kept)."""

from __future__ import annotations

from datetime import date
from typing import Any

from canbao_contracts.debezium import decode_date
from canbao_contracts.id_numbers import PROVINCE_CODES
from canbao_contracts.text import source_text


def text(row: dict[str, Any], column: str) -> str | None:
    return source_text(row.get(column))


def day(row: dict[str, Any], column: str) -> str | None:
    """A date column as ISO text (claims and facts are JSON)."""
    value = decode_date(row.get(column), column=column)
    return None if value is None else value.isoformat()


def compact_day(row: dict[str, Any], column: str) -> str | None:
    """A YYYYMMDD varchar (si_core.ac01.aac006) as ISO text, None when not eight digits making a
    date. Sliced, not strptime's (a tenth of its time; every person's ac01 has one)."""
    value = text(row, column)
    if value is None or len(value) != 8 or not value.isascii() or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:])).isoformat()
    except ValueError:
        return None


def region(row: dict[str, Any], column: str) -> str | None:
    """A GB/T 2260 code, or None where the value is not one (EnrolmentFact.region_code)."""
    return region_code(text(row, column))


def region_code(value: str | None) -> str | None:
    """`value` if it is a GB/T 2260 code (six digits, a known province), else None."""
    if value and len(value) == 6 and value.isdigit() and value[:2] in PROVINCE_CODES:
        return value
    return None
