"""Matching throughput at growing populations: verdicts/s, and how the cost grows with size.

    uv run --frozen python -m bench.matching [--sizes 10000 100000 1000000] [--sample 20000]

For a synthetic province of N people (a mix of unit employees, farmers, children, students,
retirees, migrants insured elsewhere, prisoners and people in arrears, ~4.5 facts each, built
from the contracts' events) on a throwaway PostgreSQL:

* **rules**: `rules.evaluate` alone, in memory (domain.md §5 in Python, no I/O), on up to
  `--sample` people;
* **consume**: the consumer's handler on `--sample` people's events (a PersonRegistered and a
  FactsAsserted of their facts, as identity publishes a rebuild), 500 per transaction as the
  runner's batches are, into a table already holding N people: recording facts and marking
  people pending (the broker's share is bench/messaging.py), with the statements sent to
  PostgreSQL per event (stmt/ev);
* **evaluate**: the evaluator over all N people pending (a rebuild, or a snapshot's first
  pass): load each batch of 500 people with their facts, apply the rules, save the verdicts,
  write the StatusesChanged to the outbox, one transaction per batch;
* **idle poll**: one evaluator wake-up with nobody pending or due (what it costs every 0.2 s),
  once autovacuum has run after the rebuild; in brackets the one right after the rebuild, with
  the statistics taken while everyone was pending (the planner then scans the table).

State for N people is loaded with COPY (the consumer's rate is measured separately on the
sample), so 10^6 fits in minutes. Growth is each rate over the previous size's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa

import canbao_matching
from bench.events import inbound
from canbao_contracts.codes import (
    BenefitPaymentStatus,
    Gender,
    Insurance,
    StatusCode,
    StudentStatus,
)
from canbao_contracts.events import (
    BenefitFact,
    CrossRegionEnrolmentFact,
    CustodyFact,
    EmploymentFact,
    EnrolmentFact,
    EnrolmentState,
    Event,
    Fact,
    FactsAsserted,
    FactSource,
    PersonRegistered,
    StudyFact,
    fact_id_for,
)
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_matching.evaluation import Evaluator
from canbao_matching.handlers import HANDLER
from canbao_matching.rules import Situation, evaluate
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_platform.messaging import unit_of_work

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TODAY = date(2026, 11, 23)
OBSERVED = datetime(2026, 11, 1, tzinfo=UTC)
REGIONS = ("520102", "520103", "520302", "520402", "522601")
MIGRATIONS = Path(canbao_matching.__file__).parent / "migrations"
BATCH = 500
S = StatusCode


def _fact_fields(pid: uuid.UUID, kind: str, system: str, table: str, n: int) -> dict[str, Any]:
    source = FactSource(system=system, table=table, record_key=f"id={pid.hex[:12]}{n}")
    return {
        "fact_id": fact_id_for(pid, kind, source),
        "source": source,
        "observed_at": OBSERVED,
        "revision": 1,
    }


def person_and_facts(rng: random.Random) -> tuple[PersonRegistered, list[Fact]]:
    """One synthetic person of a province, with the facts identity would assert."""
    pid = uuid.UUID(int=rng.getrandbits(128), version=4)
    region = rng.choice(REGIONS)
    roll = rng.random()
    age = 3 if roll < 0.12 else 19 if roll < 0.2 else 70 if roll < 0.35 else rng.randint(20, 59)
    birth = date(TODAY.year - age, rng.randint(1, 12), rng.randint(1, 28))
    person = PersonRegistered(
        person_id=pid,
        masked_name="张*",
        birth_date=birth,
        gender=rng.choice(list(Gender)),
        household_type=None,
        household_region_code=region,
        region_code=region,
        household_registered_locally=True,
        household_data_obtained=True,
    )
    n = iter(range(100))

    def enrolment(
        scheme: StatusCode, state: EnrolmentState = EnrolmentState.PAYING, unit: str | None = None
    ) -> EnrolmentFact:
        assert scheme.insurance is not None
        return EnrolmentFact(
            **_fact_fields(pid, "enrolment", "si_core", "ac02", next(n)),
            insurance=scheme.insurance,
            scheme=scheme,
            state=state,
            region_code=region,
            unit_id=unit,
        )

    facts: list[Fact] = []
    kind = rng.random()
    if age < 16:
        facts.append(enrolment(S.RESIDENT_MEDICAL))
    elif age == 19:
        facts += [
            enrolment(S.RESIDENT_MEDICAL),
            StudyFact(
                **_fact_fields(pid, "study", "education", "student", 0),
                level=None,
                state=StudentStatus.ENROLLED,
                region_code=region,
            ),
        ]
    elif age == 70:
        facts += [
            enrolment(S.URBAN_EMPLOYEE_PENSION),
            enrolment(S.EMPLOYEE_MEDICAL),
            BenefitFact(
                **_fact_fields(pid, "benefit", "si_core", "ac60", 0),
                insurance=Insurance.PENSION,
                scheme=S.URBAN_EMPLOYEE_PENSION,
                state=BenefitPaymentStatus.PAYING,
                region_code=region,
            ),
        ]
    elif kind < 0.45:  # unit employee, some in arrears, some partially insured
        state = EnrolmentState.SUSPENDED if rng.random() < 0.05 else EnrolmentState.PAYING
        schemes = [
            S.URBAN_EMPLOYEE_PENSION,
            S.EMPLOYEE_MEDICAL,
            S.INJURY_INSURED,
            S.UNEMPLOYMENT_INSURED,
            S.MATERNITY_INSURED,
        ][: rng.choice((2, 3, 5, 5, 5))]
        facts += [enrolment(s, state, unit="U1") for s in schemes]
        facts.append(
            EmploymentFact(
                **_fact_fields(pid, "employment", "employment", "job_registration", 0),
                unit_id="U1",
                region_code=region,
                started_on=date(2020, 1, 1),
            )
        )
    elif kind < 0.8:  # farmer or flexible worker with the resident schemes
        facts += [enrolment(S.RESIDENT_PENSION), enrolment(S.RESIDENT_MEDICAL)]
    elif kind < 0.97:  # migrant worker insured in another province
        facts += [
            CrossRegionEnrolmentFact(
                **_fact_fields(pid, "cross_region_enrolment", "national", "cross_region", i),
                insurance=insurance,
                scope=ComparisonScope.NATIONAL,
                region_code="440103",
                state=EnrolmentState.PAYING,
                receiving_benefit=False,
            )
            for i, insurance in enumerate((Insurance.PENSION, Insurance.MEDICAL, Insurance.INJURY))
        ]
    else:  # in prison
        facts.append(
            CustodyFact(
                **_fact_fields(pid, "custody", "justice", "inmate", 0),
                admitted_on=date(2024, 1, 1),
                released_on=None,
            )
        )
    return person, facts


def population(size: int, seed: int) -> Iterator[tuple[PersonRegistered, list[Fact]]]:
    rng = random.Random(seed)
    for _ in range(size):
        yield person_and_facts(rng)


def bench_rules(sample: int) -> float:
    situations = [
        Situation(person=p, facts=tuple(f), latest_source_change=OBSERVED)
        for p, f in population(sample, 1)
    ]
    started = time.perf_counter()
    for situation in situations:
        evaluate(situation, TODAY)
    return sample / (time.perf_counter() - started)


async def load_state(dsn: str, size: int) -> int:
    """N people and their facts, all pending, with COPY; returns the number of facts."""
    connection = await asyncpg.connect(dsn)
    count = 0
    try:
        people: list[tuple[Any, ...]] = []
        facts: list[tuple[Any, ...]] = []

        async def flush() -> None:
            await connection.copy_records_to_table(
                "persons", records=people, columns=["person_id", "state", "pending"]
            )
            columns = [
                "fact_id",
                "person_id",
                "revision",
                "retracted",
                "from_collection",
                "observed_at",
                "body",
            ]
            await connection.copy_records_to_table("facts", records=facts, columns=columns)
            people.clear()
            facts.clear()

        for person, person_facts in population(size, 2):
            people.append((person.person_id, person.model_dump_json(), True))
            for fact in person_facts:
                facts.append(
                    (
                        fact.fact_id,
                        person.person_id,
                        1,
                        False,
                        False,
                        OBSERVED,
                        fact.model_dump_json(),
                    )
                )
            count += len(person_facts)
            if len(people) >= 20_000:
                await flush()
        await flush()
        await connection.execute("ANALYZE persons; ANALYZE facts")
    finally:
        await connection.close()
    return count


async def bench_consume(database: Database, sample: int) -> tuple[float, int, int]:
    """events/s, events, and the statements sent to PostgreSQL for them."""
    events: list[Event] = []
    for person, facts in population(sample, 3):
        events.append(person)
        if facts:
            events.append(FactsAsserted(person_id=person.person_id, facts=tuple(facts)))
    messages = [inbound(event, offset) for offset, event in enumerate(events)]
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    sa.event.listen(database.engine.sync_engine, "before_cursor_execute", count)
    started = time.perf_counter()
    try:
        for start in range(0, len(messages), BATCH):
            async with unit_of_work(database, service="matching") as uow:
                for message in messages[start : start + BATCH]:
                    await HANDLER(message, uow)
        elapsed = time.perf_counter() - started
    finally:
        sa.event.remove(database.engine.sync_engine, "before_cursor_execute", count)
    return len(messages) / elapsed, len(messages), statements


async def bench_size(postgres: PostgresCluster, size: int, sample: int) -> dict[str, float]:
    url = postgres.create_database(f"bench_matching_{size}")
    await migrate_async(url, MIGRATIONS)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    started = time.perf_counter()
    facts = await load_state(dsn, size)
    loaded_s = time.perf_counter() - started
    database = Database(url, pool_size=2)
    try:
        evaluator = Evaluator(database, clock=lambda: NOW, batch_size=BATCH)
        started = time.perf_counter()
        published = await evaluator.run_once()
        evaluate_s = time.perf_counter() - started
        assert evaluator.evaluated == size and published == size, (evaluator.evaluated, published)
        idle_ms = []
        for _ in range(2):
            started = time.perf_counter()
            assert await evaluator.run_once() == 0
            idle_ms.append((time.perf_counter() - started) * 1000)
            # What autovacuum does after a rebuild changed every row: the statistics taken
            # when everyone was pending would otherwise keep the planner off the partial index.
            postgres.psql(f"bench_matching_{size}", "VACUUM ANALYZE persons")
        consume_rate, events, statements = await bench_consume(database, sample)
    finally:
        await database.dispose()
    postgres.psql("postgres", f'DROP DATABASE "bench_matching_{size}"')
    return {
        "people": size,
        "facts": facts,
        "load_s": loaded_s,
        "evaluate_rate": size / evaluate_s,
        "evaluate_s": evaluate_s,
        "idle_first_ms": idle_ms[0],
        "idle_ms": idle_ms[1],
        "consume_rate": consume_rate,
        "consume_events": events,
        "consume_statements_per_event": statements / events,
    }


async def main(sizes: list[int], sample: int) -> None:
    rules_rate = bench_rules(min(sample, max(sizes)))
    print(f"rules alone (in memory): {rules_rate:,.0f} verdicts/s on {sample:,} people\n")
    print(
        f"{'people':>10} {'facts':>10} {'evaluate/s':>11} {'growth':>7} {'time s':>7} "
        f"{'consume ev/s':>13} {'growth':>7} {'stmt/ev':>7} {'idle poll ms (first)':>21}"
    )
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres:
            previous: dict[str, float] | None = None
            for size in sizes:
                f = await bench_size(postgres, size, sample)
                growth = consume_growth = ""
                if previous is not None:
                    growth = f"{f['evaluate_rate'] / previous['evaluate_rate']:.2f}"
                    consume_growth = f"{f['consume_rate'] / previous['consume_rate']:.2f}"
                print(
                    f"{size:>10,} {f['facts']:>10,} {f['evaluate_rate']:>11,.0f} {growth:>7} "
                    f"{f['evaluate_s']:>7.1f} {f['consume_rate']:>13,.0f} "
                    f"{consume_growth:>7} {f['consume_statements_per_event']:>7.3f} "
                    f"{f['idle_ms']:>11.1f} ({f['idle_first_ms']:>6.0f})",
                    flush=True,
                )
                print(json.dumps(f), flush=True)
                previous = f


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="matching: verdicts/s at growing populations")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--sample", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.sample))
