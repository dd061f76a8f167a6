"""Bulk statements over identity's tables: one array parameter per column, unnest()ed by
PostgreSQL. One statement and one round trip however many rows, planned once — an executemany
runs a statement per row, a VALUES list is compiled anew for every row count. JSON travels as
text (the caller encodes it, or passes on text it read) and is cast to jsonb."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

Columns = Mapping[str, str]  # column → PostgreSQL type, in the statement's order


def rows(columns: Columns) -> str:
    """`unnest(…) AS v(…)`: the arrays as rows."""
    arrays = ", ".join(
        f"CAST(:{c} AS {'text' if t == 'jsonb' else t}[])" for c, t in columns.items()
    )
    return f"unnest({arrays}) AS v({', '.join(columns)})"


def value(column: str, type_: str) -> str:
    return f"v.{column}::jsonb" if type_ == "jsonb" else f"v.{column}"


def insert(table: str, columns: Columns) -> str:
    """INSERT of the arrays' rows into `table` (add an ON CONFLICT clause as needed)."""
    values = ", ".join(value(c, t) for c, t in columns.items())
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {rows(columns)}"


def arrays(items: Iterable[Mapping[str, Any]], columns: Columns) -> dict[str, list[Any]]:
    """The statement's parameters: one list per column, in the rows' order."""
    listed = list(items)
    return {c: [item[c] for item in listed] for c in columns}


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
