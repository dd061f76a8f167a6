"""Helpers for the population tests (no tests here): a fresh `sources` database, a seeded
population, and reading rows back."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import asyncpg

from canbao_platform.local.postgres import PostgresCluster
from canbao_stack.simulators import TABLES
from canbao_stack.simulators.population import Rates, SeedReport, load_expected, seed

_numbers = itertools.count(1)
# The columns the generator writes (bigserial ids and updated_at are the database's).
GENERATED = {("si_core", "ac60"), ("civil", "cremation"), ("civil", "dibao"),
             ("justice", "inmate"), ("employment", "job_registration"),
             ("national", "cross_region")}  # fmt: skip


@dataclass
class Population:
    dsn: str
    report: SeedReport
    expected: dict[str, dict[str, Any]]  # person_key → expected outcome (load_expected)


def fresh_database(postgres: PostgresCluster) -> str:
    name = f"population_{os.getpid()}_{next(_numbers)}"
    postgres.create_database(name)
    return postgres.dsn(name)


async def populate(
    postgres: PostgresCluster,
    people: int,
    seed_value: int,
    *,
    rates: Rates | None = None,
    loaders: int | None = 1,
    dsn: str | None = None,
) -> Population:
    dsn = dsn or fresh_database(postgres)
    report = await seed(dsn, people, seed_value, rates=rates, loaders=loaders)
    return Population(dsn, report, await load_expected(dsn))


async def fetch(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def table_text(dsn: str, schema: str, table: str) -> list[str]:
    """Every row of a source table as text, without the database's own columns, sorted."""
    columns = await fetch(
        dsn,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
        "AND table_name = $2 AND column_name NOT IN ('id', 'updated_at') ORDER BY ordinal_position",
        schema,
        table,
    )
    names = ", ".join(c["column_name"] for c in columns)
    rows = await fetch(dsn, f"SELECT ({names})::text AS row FROM {schema}.{table}")
    return sorted(r["row"] for r in rows)


async def all_tables_text(dsn: str) -> dict[str, list[str]]:
    tables = [*TABLES, ("simulator", "expected_outcome")]
    return {f"{schema}.{table}": await table_text(dsn, schema, table) for schema, table in tables}


def person_key(record_key: str) -> str:
    """AAC001, psn_no: person key (14 characters) + record number."""
    return record_key[:14]
