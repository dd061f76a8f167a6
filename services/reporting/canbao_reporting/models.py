"""What the internal API answers for the quarterly basic-data table (api.md "Reports"; domain.md
§6): the routes build it, the file renderings (exports.py) print it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class TableRow(BaseModel):
    city: str
    name: str
    columns: dict[str, int]


class TableCheck(BaseModel):
    rule: str
    city: str
    passed: bool


class QuarterlyTableResponse(BaseModel):
    quarter: str
    as_of: datetime
    """The table counts every state applied before the quarter's end, or, for the current one,
    every state applied so far (this moment)."""
    provisional: bool
    """True for the current quarter: it changes until the quarter ends."""
    rows: list[TableRow]
    checks: list[TableCheck]
