"""Reading source columns: blanks are no value; dates as Debezium writes them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from canbao_contracts.debezium import decode_date
from canbao_contracts.id_numbers import PROVINCE_CODES


def text(row: dict[str, Any], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def day(row: dict[str, Any], column: str) -> str | None:
    """A date column as ISO text (claims and facts are JSON)."""
    value = decode_date(row.get(column), column=column)
    return None if value is None else value.isoformat()


def compact_day(row: dict[str, Any], column: str) -> str | None:
    """A YYYYMMDD varchar (si_core.ac01.aac006) as ISO text, None when not a date."""
    value = text(row, column)
    try:
        return None if value is None else datetime.strptime(value, "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def region(row: dict[str, Any], column: str) -> str | None:
    """A GB/T 2260 code, or None where the value is not one (EnrolmentFact.region_code)."""
    value = text(row, column)
    if value and len(value) == 6 and value.isdigit() and value[:2] in PROVINCE_CODES:
        return value
    return None


def iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
