"""Bulk statements over a service's tables: one array parameter per column, unnest()ed by
PostgreSQL. One statement and one round trip however many rows, planned once — an executemany
runs a statement per row, a VALUES list is compiled anew for every row count. The columns and
their types come from the table's definition (`columns`), so a statement and its table cannot
disagree. JSON travels as text (the caller encodes it with `to_json`, or passes on text it read)
and is cast to jsonb; so does an array column's value (`array_literal`), since unnest() cannot
take an array of arrays of different lengths apart row by row."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

Columns = Mapping[str, str]  # column → PostgreSQL type, in the statement's order

# The array types the parameters travel as: text for every string column (a cast to varchar(n)
# would cut a long value silently; the column refuses it instead); JSON and arrays as text (cast
# by `value`).
_TYPES: tuple[tuple[type[sa.types.TypeEngine[Any]], str], ...] = (
    (JSONB, "jsonb"),
    (UUID, "uuid"),
    (sa.String, "text"),
    (sa.SmallInteger, "smallint"),
    (sa.BigInteger, "bigint"),
    (sa.Integer, "integer"),
    (sa.Boolean, "boolean"),
    (sa.LargeBinary, "bytea"),
    (sa.DateTime, "timestamptz"),
    (sa.Date, "date"),
)


def columns(
    table: sa.Table, names: Iterable[str] | None = None, *, without: Iterable[str] = ()
) -> Columns:
    """The columns a bulk statement writes, with their types, from the table's definition
    (tables.py): `names` in that order, or every column in the table's order but those
    `without` (the ones the database fills: `updated_at`, an identity, a computed share)."""
    chosen = [table.c[n] for n in names] if names is not None else list(table.c)
    skipped = set(without)
    return {c.name: _type(c) for c in chosen if c.name not in skipped}


def _type(column: sa.Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, sa.TypeDecorator):  # SQLModel's AutoString for a `str` field
        kind = kind.impl_instance
    if isinstance(kind, sa.ARRAY):
        return f"{_element_type(kind.item_type, column)}[]"
    return _element_type(kind, column)


def _element_type(kind: sa.types.TypeEngine[Any], column: sa.Column[Any]) -> str:
    for python, name in _TYPES:
        if isinstance(kind, python):
            return name
    raise TypeError(f"no bulk type for {column.table.name}.{column.name}: {column.type!r}")


def as_text(type_: str) -> bool:
    """Whether a column of this bulk type travels as text, cast by `value`: JSON and arrays."""
    return type_ == "jsonb" or type_.endswith("[]")


def text_encoder(type_: str) -> Callable[[Any], str] | None:
    """How a Python value of a column of this bulk type becomes the text it travels as
    (`to_json`, `array_literal`); None for a type that travels as it is."""
    if type_ == "jsonb":
        return to_json
    return array_literal if type_.endswith("[]") else None


def rows(columns: Columns) -> str:
    """`unnest(…) AS v(…)`: the arrays as rows."""
    arrays = ", ".join(f"CAST(:{c} AS {'text' if as_text(t) else t}[])" for c, t in columns.items())
    return f"unnest({arrays}) AS v({', '.join(columns)})"


def value(column: str, type_: str) -> str:
    return f"v.{column}::{type_}" if as_text(type_) else f"v.{column}"


def insert(table: str, columns: Columns) -> str:
    """INSERT of the arrays' rows into `table`, in their order (add an ON CONFLICT clause as
    needed)."""
    values = ", ".join(value(c, t) for c, t in columns.items())
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {rows(columns)}"


def arrays(items: Iterable[Mapping[str, Any]], columns: Columns) -> dict[str, list[Any]]:
    """The statement's parameters: one list per column, in the rows' order."""
    listed = list(items)
    return {c: [item[c] for item in listed] for c in columns}


def arrays_of(rows: Sequence[tuple[Any, ...]], columns: Columns) -> dict[str, list[Any]]:
    """As `arrays`, from tuples whose values are in the columns' order (NamedTuples)."""
    values = zip(*rows, strict=True) if rows else ((),) * len(columns)
    return {c: list(v) for c, v in zip(columns, values, strict=True)}


def to_json(value: Any) -> str:
    """`value` as JSON text for a jsonb column, by pydantic's encoder: a tenth of the time of
    json.dumps, which staging and every rebuild pay several times per row."""
    return pydantic_core.to_json(value).decode()


def array_literal(values: Iterable[str | bytes | None]) -> str:
    """`values` as the text of a PostgreSQL array of text or bytea, for an array column of a bulk
    statement: every element double-quoted, a backslash or a quote inside it escaped by a
    backslash; bytes in bytea's hex format (\\x…); None as NULL."""
    return "{" + ",".join(map(_element, values)) + "}"


def _element(value: str | bytes | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f'"\\\\x{value.hex()}"'
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"an array element must be text or bytes, not {type(value).__name__}")
