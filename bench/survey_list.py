"""A survey target list (`POST /internal/survey/lists`, api.md "Survey"): seconds and the survey
process's memory, by population size.

    uv run --frozen python -m bench.survey_list [--sizes 10000 110000]

Everything real and on this machine: a throwaway PostgreSQL (fsync off), the test broker (the
services' producers and survey's consumer need one; nothing is produced), identity and survey as
service processes of their own (`uvicorn canbao_identity.app:create`, IDENTITY_ROLES=build: its
builder idles; `uvicorn canbao_survey.app:create`, reaching identity over HTTP at
SURVEY_IDENTITY_URL). For each size the people are written straight into identity's persons
table as the builder writes them (tests/identity/households.py: four to a household in the four
districts of 5201), and survey's `subjects` gets, by COPY, what its consumer would have stored
from matching's verdicts for each locally registered living person: needs a survey, uninsured
(not timed). Then this process asks survey for the city's list (`5201`) twice, as a platform
reviewer of the province would through the gateway: a service token for survey and one for
identity, which survey passes on to stream the division's household members. The second list
finds every person already holding a waiting task: it refreshes the households and adds none.

Printed per list: people loaded, people needing a survey in the division, tasks created,
households (of the new tasks), seconds for the list, people needing a survey per second, the
survey process's memory (VmRSS before the list, VmHWM after it: the high-water mark since it
started) and identity's VmHWM; CPU ms per 1,000 people needing a survey of the survey process, of
identity and of PostgreSQL's backends. Survey reads identity's stream and writes the residents
one batch at a time and makes the tasks in one INSERT … SELECT: the high-water marks should not
grow with the size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import canbao_identity
from bench.processes import (
    children_of,
    cpu_seconds,
    cpu_since,
    machine_facts,
    memory_kib,
    postmaster,
    service_token,
    start,
    wait_up,
)
from canbao_contracts.id_numbers import mask_name
from canbao_contracts.topics import COLLECTIONS, PERSONS, STATUSES
from canbao_identity.app import protector_from
from canbao_identity.settings import IdentitySettings
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_survey.app import SERVICE as SURVEY
from tests.identity import households

DIVISION = "5201"
RUNS = 2
COPY_BATCH = 20_000
SUBJECT_COLUMNS = ("person_id", "region_code", "household_registered", "deceased", "masked_name",
                   "missing", "inaccurate", "person_at", "in_scope", "needs_survey",
                   "survey_reasons", "statuses", "statuses_at")  # fmt: skip


async def store_subjects(url: str, population: households.Population) -> int:
    """Survey's copy of matching's verdicts for every locally registered living person, as
    subjects.py stores them: needing a survey because uninsured. Returns how many."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    rows: list[tuple[Any, ...]] = []
    count = 0
    try:
        for index, person in enumerate(population.residents):
            if not person.registered or person.deceased:
                continue
            name = households.SURNAMES[index % len(households.SURNAMES)] + "某某"
            rows.append(
                (
                    person.person_id,
                    person.region_code,
                    True,
                    False,
                    mask_name(name),
                    [],
                    "[]",
                    now,
                    True,
                    True,
                    ["uninsured"],
                    "{}",
                    now,
                )
            )
            if len(rows) >= COPY_BATCH:
                await connection.copy_records_to_table(
                    "subjects", records=rows, columns=SUBJECT_COLUMNS
                )
                count += len(rows)
                rows.clear()
        if rows:
            await connection.copy_records_to_table(
                "subjects", records=rows, columns=SUBJECT_COLUMNS
            )
            count += len(rows)
        await connection.execute("ANALYZE subjects")
    finally:
        await connection.close()
    return count


async def make_list(url: str, region: str) -> tuple[dict[str, Any], float]:
    """The list survey made, and seconds for the call."""
    headers = {
        "Authorization": f"Bearer {service_token('survey')}",
        "Canbao-Identity-Token": service_token("identity"),
    }
    async with httpx.AsyncClient(base_url=url, timeout=900) as http:
        started = time.perf_counter()
        response = await http.post(
            "/internal/survey/lists", json={"region_code": region}, headers=headers
        )
        seconds = time.perf_counter() - started
    assert response.status_code == 201, response.text
    return dict(response.json()), seconds


async def measure(
    postgres: PostgresCluster, kafka: MockKafkaCluster, size: int, log_dir: Path
) -> None:
    identity_url = postgres.create_database(f"bench_list_identity_{size}")
    await migrate_async(identity_url, Path(canbao_identity.__file__).parent / "migrations")
    settings = IdentitySettings(CANBAO_ENV="test", database_url=identity_url)
    database = Database(identity_url)
    started = time.perf_counter()
    population = await households.load(database, protector_from(settings), size)
    await database.dispose()
    survey_url = postgres.create_database(f"bench_list_survey_{size}")
    await migrate_async(survey_url, SURVEY.migrations)
    stored = await store_subjects(survey_url, population)
    loaded = time.perf_counter() - started
    needing = len(population.expected(DIVISION))
    assert stored == needing, (stored, needing)
    print(
        f"\n{size:,} people loaded into identity and {stored:,} subjects into survey in "
        f"{loaded:.1f} s (not timed below):",
        flush=True,
    )
    identity_env = {
        "CANBAO_ENV": "test",
        "IDENTITY_DATABASE_URL": identity_url,
        "IDENTITY_ROLES": "build",
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
    }
    identity, identity_base = start(
        f"identity-{size}", "canbao_identity.app:create", identity_env, log_dir
    )
    survey_env = {
        "CANBAO_ENV": "test",
        "SURVEY_DATABASE_URL": survey_url,
        "SURVEY_IDENTITY_URL": identity_base,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
    }
    survey, survey_base = start(f"survey-{size}", "canbao_survey.app:create", survey_env, log_dir)
    try:
        await wait_up(identity_base)
        await wait_up(survey_base)
        print(
            f"{'loaded':>8} {'division':>8} {'run':>3} {'needing':>8} {'tasks':>8} "
            f"{'househ.':>8} {'list s':>7} {'people/s':>8} {'RSS MiB':>8} {'HWM MiB':>8} "
            f"{'id HWM':>7} {'CPU ms/1k sv':>12} {'/1k id':>7} {'/1k pg':>7}"
        )
        for run in range(1, RUNS + 1):
            backends = children_of(postmaster(postgres))
            before = memory_kib(survey.pid)["VmRSS"]
            cpu_before = (
                cpu_seconds([survey.pid]),
                cpu_seconds([identity.pid]),
                cpu_seconds(backends),
            )
            made, seconds = await make_list(survey_base, DIVISION)
            per_1k = 1e6 / max(needing, 1)
            survey_ms = cpu_since(cpu_before[0], [survey.pid]) * per_1k
            identity_ms = cpu_since(cpu_before[1], [identity.pid]) * per_1k
            backends = children_of(postmaster(postgres))  # and those opened meanwhile
            pg_ms = cpu_since(cpu_before[2], backends) * per_1k
            peak = memory_kib(survey.pid)["VmHWM"]
            identity_peak = memory_kib(identity.pid)["VmHWM"]
            assert made["residents"] == needing, f"{made['residents']} residents, {needing}"
            assert made["tasks"] == (needing if run == 1 else 0), made
            print(
                f"{size:>8,} {DIVISION:>8} {run:>3} {needing:>8,} {made['tasks']:>8,} "
                f"{made['households']:>8,} {seconds:>7.2f} {needing / seconds:>8,.0f} "
                f"{before / 1024:>8.0f} {peak / 1024:>8.0f} {identity_peak / 1024:>7.0f} "
                f"{survey_ms:>12.0f} {identity_ms:>7.0f} {pg_ms:>7.0f}",
                flush=True,
            )
    finally:
        for process in (survey, identity):
            process.terminate()
            process.wait(timeout=30)


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-list-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with (
            PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres,
            MockKafkaCluster(brokers=1) as kafka,
        ):
            kafka.create_topics([PERSONS, STATUSES, COLLECTIONS])  # survey's consumer reads two
            print(machine_facts("this process (the caller), identity, survey"), flush=True)
            for size in sizes:
                await measure(postgres, kafka, size, Path(tmp))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nthis process (loader and caller) peak RSS: {own:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    asyncio.run(main(parser.parse_args().sizes))
