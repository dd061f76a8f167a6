"""Loading populations into the real PostgreSQL: reproducible from the seed, appendable with
another seed, every source table filled, one transaction, and the `canbao seed` command."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from canbao_contracts.id_numbers import validate
from canbao_platform.local.postgres import PostgresCluster
from canbao_stack.simulators import TABLES
from canbao_stack.simulators.cli import add_seed_command
from canbao_stack.simulators.population import PopulationExists, seed
from tests.stack.test_population_support import all_tables_text, fetch, fresh_database, populate


async def test_same_seed_gives_byte_identical_rows(postgres: PostgresCluster) -> None:
    first = await populate(postgres, 3_000, 11)
    again = await populate(postgres, 3_000, 11)
    assert await all_tables_text(first.dsn) == await all_tables_text(again.dsn)
    assert first.report.rows == again.report.rows


async def test_two_loader_processes_write_the_same_rows_as_one(postgres: PostgresCluster) -> None:
    """Lanes of sequence numbers make the chunks independent (households.LANES): three chunks
    split between two worker processes equal one process doing all three."""
    alone = await populate(postgres, 25_000, 12, loaders=1)
    together = await populate(postgres, 25_000, 12, loaders=2)
    assert together.report.loaders == 2
    assert await all_tables_text(alone.dsn) == await all_tables_text(together.dsn)


async def test_another_seed_appends_without_key_collisions(postgres: PostgresCluster) -> None:
    first = await populate(postgres, 4_000, 21)
    second = await populate(postgres, 4_000, 22, dsn=first.dsn)
    assert len(second.expected) == 8_000
    for schema, table in TABLES:
        rows = await fetch(first.dsn, f"SELECT count(*) AS n FROM {schema}.{table}")
        assert (
            rows[0]["n"]
            == first.report.rows[f"{schema}.{table}"] + second.report.rows[f"{schema}.{table}"]
        ), f"{schema}.{table}"
    numbers = Counter(e["id_number"] for e in second.expected.values() if e["id_number"])
    assert numbers.most_common(1)[0][1] == 1  # no one's number is another's
    households = await fetch(
        first.dsn, "SELECT count(DISTINCT hh) AS n, count(*) FROM hukou.person"
    )
    assert households[0]["n"] > 2_000


async def test_a_seed_loads_once(postgres: PostgresCluster) -> None:
    population = await populate(postgres, 500, 31)
    with pytest.raises(PopulationExists):
        await seed(population.dsn, 500, 31)


async def test_every_source_table_receives_rows(postgres: PostgresCluster) -> None:
    population = await populate(postgres, 6_000, 41)
    for schema, table in TABLES:
        assert population.report.rows[f"{schema}.{table}"] > 0, f"{schema}.{table} is empty"
    assert population.report.rows["simulator.expected_outcome"] == 6_000 == len(population.expected)
    # The household register holds clean, valid numbers only: dirt lives in the other copies.
    numbers = await fetch(population.dsn, "SELECT sfzh FROM hukou.person")
    assert not [n["sfzh"] for n in numbers if validate(n["sfzh"])]


async def test_the_schema_is_created_when_missing(postgres: PostgresCluster) -> None:
    dsn = fresh_database(postgres)  # no tables at all
    report = await seed(dsn, 200, 51)
    assert report.rows["hukou.person"] > 0


async def test_seed_command_loads_a_population_and_reports(
    postgres: PostgresCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = fresh_database(postgres)
    parser = argparse.ArgumentParser(prog="canbao")
    add_seed_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["seed", "--people", "1500", "--seed", "61", "--dsn", dsn, "--rate", "phone_missing=0.5"]
    )
    # The handler runs its own event loop (asyncio.run), as `canbao seed` does.
    import asyncio

    await asyncio.to_thread(args.handler, args)
    output = capsys.readouterr().out
    assert "seed 61: 1,500 people" in output and "people/s" in output
    assert "hukou.person" in output
    rates = await fetch(dsn, "SELECT rates->>'phone_missing' AS r FROM simulator.population")
    assert rates[0]["r"] == "0.5"


def test_seed_command_refuses_an_unknown_rate() -> None:
    parser = argparse.ArgumentParser(prog="canbao")
    add_seed_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["seed", "--rate", "typos=0.1"])
    with pytest.raises(SystemExit, match="unknown rate 'typos'"):
        args.handler(args)


async def test_uninsured_migrants_are_known_from_residence_permits(
    postgres: PostgresCluster,
) -> None:
    """Some non-local people live here uninsured (public security's 外来常住人员): a permit for
    where they live, their household elsewhere; in scope while it is valid, needing a survey
    (domain.md §1, §5); a permit expired or cancelled leaves them out of scope."""
    population = await populate(postgres, 6_000, 43)
    permits = await fetch(
        population.dsn, "SELECT sfzh, hjdz_xzqh, jzdz_xzqh, zt, yxqz FROM hukou.resident_permit"
    )
    assert permits and all(not p["hjdz_xzqh"].startswith("52") for p in permits)
    by_number = {p["sfzh"]: p for p in permits}
    residents = [p for p in population.expected.values() if p["situation"] == "non_local_resident"]
    assert residents
    for person in residents:
        permit = by_number[person["id_number"]]
        assert permit["jzdz_xzqh"] == person["region"]
        current = permit["zt"] == "1"
        assert person["in_scope"] is current, person
        if current:
            assert person["statuses"]["pension"] in ("91", "92") and person["needs_survey"]
    assert {p["zt"] for p in permits} >= {"1", "2"}
