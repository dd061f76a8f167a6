"""The `sources` database: the business systems' tables (schema.sql, created when missing), the
generator's own schema `simulator` (not a business system: the CDC bridge does not capture it),
COPY of generated rows, and reading the expected outcomes back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from typing import Any, Final

import asyncpg

from canbao_stack.simulators import SCHEMA_SQL, TABLES
from canbao_stack.simulators.expected import outcome
from canbao_stack.simulators.truth import facts_from_json

SIMULATOR_SQL: Final = """
CREATE SCHEMA IF NOT EXISTS simulator;
-- One row per population loaded: its seed is the namespace of its keys.
CREATE TABLE IF NOT EXISTS simulator.population (
    seed integer PRIMARY KEY,
    people integer NOT NULL,
    world_date date NOT NULL,
    as_of date NOT NULL,
    rates jsonb NOT NULL,
    row_counts jsonb NOT NULL,
    people_per_second double precision NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
-- The registry outcome each generated person should get (expected.py): the ground truth.
CREATE TABLE IF NOT EXISTS simulator.expected_outcome (
    person_key varchar(16) PRIMARY KEY,   -- seed (5 digits) + index (9 digits), as in AAC001
    seed integer NOT NULL,
    person_index integer NOT NULL,
    id_number varchar(18),                -- canonical 18 characters; null with another document
    document jsonb,                       -- {"type": "02", "number": …} (psn_cert_type 02-04)
    name varchar(50) NOT NULL,
    gender varchar(1) NOT NULL,
    birth_date date NOT NULL,
    region varchar(6) NOT NULL,           -- household county, else the county insured in
    household_registered boolean NOT NULL,
    situation varchar(20) NOT NULL,       -- lives.py: student, retired, farmer …
    deceased boolean NOT NULL,
    in_scope boolean NOT NULL,
    statuses jsonb NOT NULL,              -- {"pension": "11", …}; null values when deceased
    flags jsonb NOT NULL,                 -- [{"type": …, "insurance": …}]
    needs_survey boolean NOT NULL,
    survey_reasons jsonb NOT NULL,        -- words of api.md
    registration varchar(12),             -- confirmed | needs_survey; null out of scope
    missing jsonb NOT NULL,               -- [{"item", "code"}]
    inaccurate jsonb NOT NULL,            -- [{"item", "code", "source", "defect", "value"}]
    traits jsonb NOT NULL,                -- what the generator did: legacy_15, name_variant …
    facts json NOT NULL,                  -- expected.Facts as an array, to recompute (truth.py)
    as_of date NOT NULL
);
CREATE INDEX IF NOT EXISTS expected_outcome_id_number ON simulator.expected_outcome (id_number);
"""
EXPECTED_COLUMNS: Final = (
    "person_key", "seed", "person_index", "id_number", "document", "name", "gender",
    "birth_date", "region", "household_registered", "situation", "deceased", "in_scope",
    "statuses", "flags", "needs_survey", "survey_reasons", "registration", "missing",
    "inaccurate", "traits", "facts", "as_of",
)  # fmt: skip
_JSON_COLUMNS: Final = ("document", "statuses", "flags", "survey_reasons", "missing",
                        "inaccurate", "traits", "facts")  # fmt: skip


async def ensure_schema(connection: asyncpg.Connection) -> None:
    """Create the business systems' tables if any is missing, and the simulator schema."""
    present = await connection.fetchval(
        "SELECT count(*) FROM unnest($1::text[]) AS t(name) WHERE to_regclass(name) IS NOT NULL",
        [f"{schema}.{table}" for schema, table in TABLES],
    )
    if present != len(TABLES):
        await connection.execute(SCHEMA_SQL.read_text())
    await connection.execute(SIMULATOR_SQL)


async def numbers_in_use(connection: asyncpg.Connection) -> set[str]:
    """The first 17 characters of every 18-character number already in the database, so that an
    appended population never reuses one."""
    rows = await connection.fetch(
        """
        SELECT left(id_number, 17) FROM simulator.expected_outcome WHERE id_number IS NOT NULL
        UNION SELECT left(document->>'number', 17) FROM simulator.expected_outcome
              WHERE document->>'type' = '03'
        UNION SELECT left(upper(sfzh), 17) FROM hukou.person WHERE length(sfzh) = 18
        """
    )
    return {row[0] for row in rows}


async def copy_rows(
    connection: asyncpg.Connection, schema: str, table: str, columns: Iterable[str], rows: list[Any]
) -> None:
    if rows:
        await connection.copy_records_to_table(
            table, schema_name=schema, columns=list(columns), records=rows
        )


async def load_expected(dsn: str, *, as_of: date | None = None) -> dict[str, dict[str, Any]]:
    """Every expected outcome, by person_key, with the JSON columns decoded. Given `as_of`, the
    statuses, flags, reasons and registration are recomputed for that day from the stored facts
    (a child turns 16, and pension 95 becomes 91)."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            f"SELECT {', '.join(EXPECTED_COLUMNS)} FROM simulator.expected_outcome "
            "ORDER BY seed, person_index"
        )
    finally:
        await connection.close()
    expected = {}
    for row in rows:
        item = dict(row)
        for column in _JSON_COLUMNS:
            if item[column] is not None:
                item[column] = json.loads(item[column])
        if as_of is not None and as_of != item["as_of"]:
            item.update(outcome_columns(outcome(facts_from_json(item["facts"]), as_of)))
            item["as_of"] = as_of
        expected[item["person_key"]] = item
    return expected


def outcome_columns(result: Any) -> dict[str, Any]:
    """An expected.Outcome as the JSON-ready values of its columns."""
    return {
        "deceased": result.deceased,
        "in_scope": result.in_scope,
        "statuses": {str(k): (None if v is None else str(v)) for k, v in result.statuses.items()},
        "flags": [{"type": str(f), "insurance": str(i)} for f, i in result.flags],
        "needs_survey": result.needs_survey,
        "survey_reasons": [str(r) for r in result.survey_reasons],
        "registration": None if result.registration is None else str(result.registration),
    }
