"""Reporting at 10^4 to 10^6 people: the quarterly table, the people behind a cell and coverage
through the internal API, and whether the projection keeps up with the registry's events.

    uv run --frozen python -m bench.reports [--sizes 10000 100000 1000000] [--runs 20]
        [--sample 20000] [--events 200000] [--matching-people 20000] [--baseline REV]

Everything real and on this machine: a throwaway PostgreSQL (fsync off) and the test broker per
size, and reporting as a service process (`uvicorn --factory canbao_reporting.app:create`, one
worker: its consumer of registry.statuses and its internal API), called as the gateway calls it
(a service token of a province's analyst). Per size N, a fresh database migrated by its owner and
reached as the service's own login (person_states append-only), as in production:

* **load**: N people's states as the projection holds them. Verdicts are built as
  tests/reporting/people.py builds them (confirmed by the local systems, some paying in another
  city, needing a survey, verified, insured elsewhere in the province or in another, deceased,
  household elsewhere, household data missing, duplicate insurance or benefits, owed by an
  employer), over the nine cities of Guizhou (5201…5227, weighted by population) and 4-7
  counties each, 0.5 % without a division; ~30 % of people have 2-3 successive states, the first
  over the last 15 months. All but the last min(N/5, --sample) people by COPY into
  person_states as of reporting_0005 (cells and lists computed with quarterly_table.cells_of and
  plan_lists.lists_of once per distinct verdict, rows appended in arrival order as the
  projection appends them; not timed); then the later migrations (timed: what upgrading a
  deployment holding that history takes); then the last people through the consumer's handler
  (store.apply_state), 500 states a transaction as the runner's batches are: **apply**, states/s.
* **projection**: M = min(N, --events) StatusesChanged, a new verdict each for M people already
  held, put on registry.statuses (enough partitions that the test broker evicts none) while the
  service idles, then applied by its ConsumerRunner: events/s from the first sent to the last
  applied (the runner's own count, /readyz); CPU ms per 1,000 events of the service process, of
  PostgreSQL's backends and of this process (the producer and the test broker). Compared with
  matching's evaluator (bench.matching's "evaluate", run here on --matching-people people first:
  the rate matching publishes verdicts at when it re-evaluates everyone) and with the CDC
  ceiling of architecture.md (~15,600 events/s, ~5-6 source rows a person: ~2,800 people/s).
* **API**: each request `--runs` times one after another after one unmeasured call (fewer runs,
  at least 3, once a request has taken a minute in all): the current quarter's table of the
  province, a city (5201) and a county (520102); the past quarter's of the province; the people
  behind the total of column 1 (the biggest cell) and behind a small cell (5204, column 11),
  their first page and a deep one (the cursor at 9/10 of the person_id space, random UUIDs:
  ~90 % of the cell before it), and the first page behind column 1's total in the past
  quarter; coverage of the province and of a city. p50 and p99 in ms (with
  fewer than 100 runs p99 is near the slowest). Each people page's count is checked against
  the table's number.
* EXPLAIN (ANALYZE, BUFFERS) of the current quarter's province table at the largest size, the
  statement the service runs, in short: each plan node with its rows and time.
* The service process's peak RSS (VmHWM) and the database's size.

`--baseline REV`: before each size, the same measurement (same people, same events) with
services/reporting as of the git revision REV (a child process of this bench with that package
first on PYTHONPATH, and so its service process), to compare a change before and after in one
run on one machine.

Every figure is printed with its ratio to the previous size's. The machine has two cores, shared
by this process, the service, PostgreSQL and whoever else runs tests: the load average before
each size is printed with it. The last lines, one per size: `reports <N> people: table <ms> ms,
people page <ms> ms, coverage <ms> ms, projection <E> events/s` (p50 of the province's current
table, of the first page behind column 1's total, of the province's coverage; the consumer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]
import httpx
import sqlalchemy as sa
from alembic import command

from bench.events import inbound, send_all
from bench.processes import (
    children_of,
    cpu_seconds,
    cpu_since,
    machine_facts,
    memory_kib,
    percentiles,
    postmaster,
    service_token,
    start,
    wait_up,
)
from canbao_contracts.codes import FlagType, Insurance, StatusCode
from canbao_contracts.envelope import encode
from canbao_contracts.events import StatusesChanged, Verdict
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_contracts.topics import ALL_TOPICS, STATUSES
from canbao_platform.db import Database, alembic_config, migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, application_role, free_port
from canbao_platform.messaging import unit_of_work
from canbao_reporting import store
from canbao_reporting.app import SERVICE
from canbao_reporting.handlers import handler
from canbao_reporting.plan_lists import lists_of
from canbao_reporting.quarterly_table import cell_names, cells_of
from canbao_reporting.quarters import Quarter
from tests.reporting import people

# Guizhou's nine cities (GB/T 2260), weighted by their millions of residents, and some counties.
CITIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "5201": (6.0, ("520102", "520103", "520111", "520112", "520113", "520115", "520181")),
    "5202": (3.0, ("520201", "520203", "520221", "520281")),
    "5203": (6.6, ("520302", "520303", "520304", "520322", "520323", "520381")),
    "5204": (2.5, ("520402", "520403", "520422", "520423")),
    "5205": (6.9, ("520502", "520521", "520523", "520524", "520525")),
    "5206": (3.3, ("520602", "520603", "520621", "520622", "520624")),
    "5223": (3.0, ("522301", "522302", "522323", "522324")),
    "5226": (3.8, ("522601", "522622", "522623", "522624", "522625")),
    "5227": (3.5, ("522701", "522702", "522722", "522723", "522725")),
}
COUNTIES = [(county, weight / len(counties)) for weight, counties in CITIES.values()
            for county in counties]  # fmt: skip
S, F = StatusCode, FlagType
BY_EMPLOYER = people.INSURED.model_copy(
    update={
        "pension": S.UNINSURED_BY_EMPLOYER,
        "medical": S.UNINSURED_BY_EMPLOYER,
        "injury": S.UNINSURED_BY_EMPLOYER,
        "unemployment": S.UNINSURED_BY_EMPLOYER,
        "maternity": S.UNINSURED_BY_EMPLOYER,
    }
)


def local(**fields: Any) -> Verdict:
    """Confirmed by the local systems, enrolled in their own city (people.verdict)."""
    code = fields.get("region_code")
    return people.verdict(enrolment_cities=(code[:4],) if code else (), **fields)


def enrolled_in_another_city(**fields: Any) -> Verdict:
    """Household here, paying in another city of the province (§6 column 5 here, 3-4 there)."""
    code = fields.get("region_code") or "520102"
    other = "5201" if code[:4] != "5201" else "5203"
    return people.verdict(enrolment_cities=(other,), **fields)


def owed_by_employer(**fields: Any) -> Verdict:
    """An employee the unit has not enrolled (92), naming the unit (labour inspection)."""
    return people.needing_survey(
        statuses=BY_EMPLOYER, employers=(f"U{fields['birth_year']}",), **fields
    )


# What a verdict says, by share of the people (each a builder of tests/reporting/people.py).
KINDS: tuple[tuple[float, Callable[..., Verdict]], ...] = (
    (0.47, local),
    (0.03, enrolled_in_another_city),
    (0.10, people.needing_survey),
    (0.05, people.verified),
    (0.06, lambda **f: people.insured_elsewhere(ComparisonScope.PROVINCE, **f)),
    (0.07, lambda **f: people.insured_elsewhere(ComparisonScope.NATIONAL, **f)),
    (0.03, people.deceased),
    (0.08, lambda **f: local(household_registered_locally=False, **f)),
    (0.03, lambda **f: people.needing_survey(household_data_obtained=False, **f)),
    (0.03, lambda **f: people.flagged((F.DUPLICATE_INSURANCE, Insurance.PENSION), **f)),
    (0.02, lambda **f: people.flagged((F.DUPLICATE_INSURANCE, Insurance.MEDICAL), **f)),
    (0.01, lambda **f: people.flagged((F.DUPLICATE_BENEFITS, Insurance.PENSION),
                                      (F.DUPLICATE_BENEFITS, Insurance.MEDICAL), **f)),
    (0.02, owed_by_employer),
)  # fmt: skip
GENDERS = ("1", "2")
BIRTH_YEARS = tuple(range(1945, 2025, 10))
HISTORY = 15 * 30 * 86_400  # seconds: the first states arrived over the last 15 months
BATCH = 500  # states a transaction, as the consumer runner's batches
COPY_BATCH = 50_000
LOADED_SCHEMA = "reporting_0005"  # the person_states the bulk load writes (cells, lists)
BUDGET_S = 60.0  # a request's runs stop once they have taken this long (at least 3 runs)
Key = tuple[int, str | None, str, int]  # kind, county, gender, birth year
States = list[tuple[float, int]]  # a person's states: (arrival, verdict number), oldest first


@dataclass
class Verdicts:
    """The distinct verdicts the population is drawn from, numbered as they are first used."""

    verdicts: list[Verdict] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    numbers: dict[Key, int] = field(default_factory=dict)

    def number(self, key: Key) -> int:
        if key not in self.numbers:
            kind, county, gender, year = key
            self.verdicts.append(KINDS[kind][1](region_code=county, gender=gender, birth_year=year))
            self.keys.append(key)
            self.numbers[key] = len(self.keys) - 1
        return self.numbers[key]

    def rows(self) -> list[tuple[int, str, str | None, list[str], list[str]]]:
        """(number, verdict JSON, region_code, cells, lists) as store.apply_state writes them."""
        return [
            (
                n,
                json.dumps(v.model_dump(mode="json")),
                v.region_code,
                cell_names(cells_of(v)),
                sorted(lists_of(v)),
            )
            for n, v in enumerate(self.verdicts)
        ]


@dataclass
class Population:
    size: int
    now: float  # epoch seconds: the states of the bulk load arrived before it
    verdicts: Verdicts = field(default_factory=Verdicts)
    person_ids: list[UUID] = field(default_factory=list)
    newest: array[int] = field(default_factory=lambda: array("i"))
    states: int = 0
    with_history: int = 0

    def people(self, rng: random.Random) -> Iterator[tuple[UUID, States]]:
        """Each person's states: (arrival, verdict number), oldest first."""
        kind_weights = [w for w, _ in KINDS]
        counties = [c for c, _ in COUNTIES]
        county_weights = [w for _, w in COUNTIES]
        for _ in range(self.size):
            person = UUID(int=rng.getrandbits(128), version=4)
            county = None if rng.random() < 0.005 else rng.choices(counties, county_weights)[0]
            gender, year = rng.choice(GENDERS), rng.choice(BIRTH_YEARS)
            count = 1 if rng.random() < 0.7 else rng.choice((2, 3))
            arrived = self.now - 60 - rng.random() * HISTORY
            states: States = []
            previous = -1
            for n, kind in enumerate(rng.choices(range(len(KINDS)), kind_weights, k=count)):
                if n:  # a later state: another verdict, arrived since
                    arrived += rng.random() * (self.now - 60 - arrived)
                kind = (kind + 1) % len(KINDS) if kind == previous else kind
                states.append((arrived, self.verdicts.number((kind, county, gender, year))))
                previous = kind
            self.person_ids.append(person)
            self.newest.append(states[-1][1])
            self.states += count
            self.with_history += count > 1
            yield person, states

    def changed(self, index: int, rng: random.Random) -> tuple[int, int]:
        """(newest, another) verdict numbers of person `index`: their next verdict."""
        newest = self.newest[index]
        kind, county, gender, year = self.verdicts.keys[newest]
        other = (kind + rng.randrange(1, len(KINDS))) % len(KINDS)
        return newest, self.verdicts.number((other, county, gender, year))


async def bulk_load(
    owner_dsn: str, population: Population, sample: int, rng: random.Random
) -> list[tuple[UUID, States]]:
    """All people but the last `sample` into person_states by COPY, as the projection would
    hold them; returns the sample's states, to be applied through the handler."""
    connection = await asyncpg.connect(owner_dsn)
    handled: list[tuple[UUID, States]] = []
    try:
        await connection.execute("""
            CREATE UNLOGGED TABLE bench_states (person_id uuid, valid_from timestamptz,
                                                evaluated_at timestamptz, verdict int);
            CREATE UNLOGGED TABLE bench_verdicts (verdict int, body jsonb, region_code text,
                                                  cells text[], lists text[])""")
        rows: list[tuple[Any, ...]] = []
        for n, (person, states) in enumerate(population.people(rng)):
            if n >= population.size - sample:
                handled.append((person, states))
                continue
            for arrived, verdict in states:
                at = datetime.fromtimestamp(arrived, UTC)
                rows.append((person, at, at - timedelta(minutes=5), verdict))
            if len(rows) >= COPY_BATCH:
                await connection.copy_records_to_table("bench_states", records=rows)
                rows.clear()
        await connection.copy_records_to_table("bench_states", records=rows)
        await connection.copy_records_to_table("bench_verdicts", records=population.verdicts.rows())
        # In arrival order, as the consumer appends them: the history interleaves people.
        await connection.execute("""
            INSERT INTO person_states (person_id, valid_from, evaluated_at, verdict, region_code,
                                       cells, lists)
            SELECT s.person_id, s.valid_from, s.evaluated_at, v.body, v.region_code, v.cells,
                   v.lists
            FROM bench_states s JOIN bench_verdicts v USING (verdict) ORDER BY s.valid_from;
            DROP TABLE bench_states, bench_verdicts""")
        await connection.execute("VACUUM ANALYZE person_states")  # as autovacuum would have
    finally:
        await connection.close()
    return handled


async def apply_sample(
    database: Database, population: Population, sample: list[tuple[UUID, States]]
) -> tuple[float, int]:
    """The sample's states through the consumer's handler, BATCH a transaction: states/s."""
    verdicts = population.verdicts.verdicts
    evaluated = datetime.now(UTC)
    events = []
    for person, states in sample:
        previous = None
        for _, number in states:
            evaluated += timedelta(microseconds=1)
            events.append(
                StatusesChanged(
                    person_id=person,
                    verdict=verdicts[number],
                    previous=previous,
                    evaluated_at=evaluated,
                )
            )
            previous = verdicts[number]
    messages = [inbound(e, offset, source="/canbao/matching") for offset, e in enumerate(events)]
    handle = handler()
    started = time.perf_counter()
    for first in range(0, len(messages), BATCH):
        async with unit_of_work(database, service="reporting") as uow:
            for message in messages[first : first + BATCH]:
                await handle(message, uow)
    return len(messages) / max(time.perf_counter() - started, 1e-9), len(messages)


def statuses_changed(population: Population, count: int, rng: random.Random) -> list[Any]:
    """`count` records of registry.statuses: a new verdict for as many people already held."""
    verdicts = population.verdicts
    evaluated = datetime.now(UTC)
    records = []
    for index in rng.sample(range(population.size), count):
        newest, other = population.changed(index, rng)
        event = StatusesChanged(
            person_id=population.person_ids[index],
            verdict=verdicts.verdicts[other],
            previous=verdicts.verdicts[newest],
            evaluated_at=evaluated,
        )
        records.append(encode(event, source="/canbao/matching"))
    return records


@dataclass
class Projection:
    events: int
    partitions: int
    sent_per_s: float
    seconds: float
    cpu_ms: dict[str, float]  # per 1,000 events: service, PostgreSQL, this process

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def project(
    kafka: MockKafkaCluster,
    postgres: PostgresCluster,
    service: int,
    url: str,
    records: list[Any],
    partitions: int,
) -> Projection:
    """Put `records` on registry.statuses while the service idles; time its consumer."""
    headers = {"Authorization": f"Bearer {service_token('reporting')}"}
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as http:
        # Joined and fetching every partition (their lag known) before the first event is sent.
        waited = time.perf_counter() + 30
        while len((health := await runner_health(http))["lag"]) < partitions:
            if time.perf_counter() > waited:
                break
            await asyncio.sleep(0.2)
        before = health["processed"]
        backends = children_of(postmaster(postgres))
        cpu_before = cpu_seconds([service]), cpu_seconds(backends), cpu_seconds([os.getpid()])
        started = time.perf_counter()
        sent = await send_all(kafka.bootstrap_servers, STATUSES.name, records)
        deadline = started + 600 + len(records) / 50
        while (done := (await runner_health(http))["processed"]) < before + len(records):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the consumer applied {done - before} of {len(records)}")
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - started
    backends = children_of(postmaster(postgres))
    per_1000 = 1e6 / len(records)
    cpu_ms = {
        "service": cpu_since(cpu_before[0], [service]) * per_1000,
        "PostgreSQL": cpu_since(cpu_before[1], backends) * per_1000,
        "this process": cpu_since(cpu_before[2], [os.getpid()]) * per_1000,
    }
    return Projection(len(records), partitions, sent, seconds, cpu_ms)


async def runner_health(http: httpx.AsyncClient) -> dict[str, Any]:
    """The service's consumer as its /readyz shows it (`processed`: messages applied), once
    it is consuming."""
    while True:
        response = await http.get("/readyz")
        checks = response.json()["checks"]
        runner = next((c for c in checks.values() if "processed" in c), None)
        if response.status_code == 200 and runner is not None:
            return dict(runner)
        await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Request:
    name: str
    path: str
    params: dict[str, str]


def requests(current: Quarter, past: Quarter) -> list[Request]:
    table = f"/internal/v1/reports/quarterly/{current}"
    deep = "e6666666-6666-4666-a666-666666666666"  # 9/10 of the person_id space
    big = {"city": "total", "column": "1", "region": "52"}
    small = {"city": "5204", "column": "11", "region": "52"}
    return [
        Request("table current province", table, {"region": "52"}),
        Request("table current city 5201", table, {"region": "5201"}),
        Request("table current county 520102", table, {"region": "520102"}),
        Request("table past province", f"/internal/v1/reports/quarterly/{past}", {"region": "52"}),
        Request("people total:1 first page", f"{table}/people", big),
        Request("people total:1 deep page", f"{table}/people", big | {"cursor": f"{deep}/5201"}),
        Request("people 5204:11 first page", f"{table}/people", small),
        Request("people 5204:11 deep page", f"{table}/people", small | {"cursor": f"{deep}/5204"}),
        Request(
            "people total:1 first page, past", f"/internal/v1/reports/quarterly/{past}/people", big
        ),
        Request("coverage province", "/internal/v1/reports/coverage", {"region": "52"}),
        Request("coverage city 5201", "/internal/v1/reports/coverage", {"region": "5201"}),
    ]


Timed = dict[str, tuple[int, float, float]]  # request → runs, p50 ms, p99 ms


async def time_requests(url: str, asked: list[Request], runs: int) -> Timed:
    """Each request `runs` times (after one unmeasured): name → (runs, p50 ms, p99 ms)."""
    found: Timed = {}
    answers: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        for request in asked:
            latencies: list[float] = []
            for n in range(runs + 1):
                headers = {"Authorization": f"Bearer {service_token('reporting', role='analyst')}"}
                started = time.perf_counter()
                response = await http.get(request.path, params=request.params, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{request.name}: {response.status_code} {response.text}")
                if n == 0:
                    answers[request.name] = response.json()
                    continue
                latencies.append(elapsed)
                if n >= 3 and sum(latencies) > BUDGET_S * 1000:
                    break
            p50, _, p99 = percentiles(latencies) if len(latencies) > 1 else (latencies[0],) * 3
            found[request.name] = (len(latencies), p50, p99)
    check_counts(asked, answers)
    return found


def check_counts(asked: list[Request], answers: dict[str, Any]) -> None:
    """The people behind a cell are as many as the province's table of that quarter says (the
    first page's `count`)."""
    tables = {
        answers[name]["quarter"]: answers[name]
        for name in ("table current province", "table past province")
    }
    for request in asked:
        if not request.path.endswith("/people") or "cursor" in request.params:
            continue
        page = answers[request.name]
        city, column = request.params["city"], request.params["column"]
        row = next(r for r in tables[page["quarter"]]["rows"] if r["city"] == city)
        assert page["count"] == row["columns"][column], (request.name, page["count"], row)


async def explain_table(url: str) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement store.cell_counts runs for the province's
    current table, in short."""
    database = Database(url, pool_size=1)
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _k: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    try:
        sa.event.listen(database.engine.sync_engine, "before_cursor_execute", capture)
        async with database.sessions() as session:
            await store.cell_counts(session, None, region="")
        sa.event.remove(database.engine.sync_engine, "before_cursor_execute", capture)
        statement, parameters = next(c for c in reversed(captured) if "GROUP BY" in c[0])
        async with database.engine.connect() as connection:
            plan = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters
            )
            found = plan.scalar()
    finally:
        await database.dispose()
    top = (json.loads(found) if isinstance(found, str) else found)[0]
    lines = [f"planning {top['Planning Time']:.0f} ms, execution {top['Execution Time']:.0f} ms"]
    lines += plan_lines(top["Plan"], 0)
    return lines


def plan_lines(node: dict[str, Any], depth: int) -> list[str]:
    what = node["Node Type"]
    if "Strategy" in node and node["Strategy"] != "Plain":
        what = f"{node['Strategy']} {what}"
    if "Relation Name" in node:
        what += f" on {node['Relation Name']}"
    if "Index Name" in node:
        what += f" using {node['Index Name']}"
    extra = []
    if "Sort Method" in node:
        extra.append(
            f"{node['Sort Method']} {node.get('Sort Space Used', 0):,} kB "
            f"{node.get('Sort Space Type', '')}"
        )
    if node.get("Workers Launched"):
        extra.append(f"{node['Workers Launched']} workers")
    if node.get("Shared Read Blocks") or node.get("Shared Hit Blocks"):
        extra.append(
            f"buffers hit {node.get('Shared Hit Blocks', 0):,} "
            f"read {node.get('Shared Read Blocks', 0):,}"
        )
    if node.get("Temp Written Blocks"):
        extra.append(f"temp written {node['Temp Written Blocks']:,}")
    loops = node.get("Actual Loops", 1)
    line = (
        f"{'  ' * depth}{what}: rows {node.get('Actual Rows', 0) * loops:,.0f}, "
        f"{node.get('Actual Total Time', 0):,.0f} ms"
    )
    lines = [line + (f" ({'; '.join(extra)})" if extra else "")]
    for child in node.get("Plans", []):
        lines += plan_lines(child, depth + 1)
    return lines


async def sizes_of(dsn: str) -> tuple[float, list[tuple[str, float, float]]]:
    """The database's MiB, and its three biggest tables' (name, table MiB, indexes MiB)."""
    connection = await asyncpg.connect(dsn)
    try:
        total = await connection.fetchval("SELECT pg_database_size(current_database())")
        tables = await connection.fetch("""
            SELECT relname, pg_table_size(oid) AS heap, pg_indexes_size(oid) AS indexes
            FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace
            ORDER BY pg_total_relation_size(oid) DESC LIMIT 3""")
    finally:
        await connection.close()
    mib = 1024 * 1024
    return total / mib, [(t["relname"], t["heap"] / mib, t["indexes"] / mib) for t in tables]


def past_quarter(quarter: Quarter) -> Quarter:
    return (
        Quarter(quarter.year - 1, 4)
        if quarter.number == 1
        else Quarter(quarter.year, quarter.number - 1)
    )


async def one_size(
    size: int, args: argparse.Namespace, explain: bool, tmp: Path
) -> dict[str, float]:
    """Load, project, ask; print as it goes; the figures compared across sizes."""
    rng = random.Random(size)
    print(f"\n== {size:,} people (load average {os.getloadavg()[0]:.1f}) ==", flush=True)
    with (
        PostgresCluster(tmp / f"pg{size}", port=free_port(), durable=False) as postgres,
        MockKafkaCluster(brokers=1) as kafka,
    ):
        role = application_role(SERVICE.name)
        postgres.create_role(role)
        owner_url = postgres.create_database("reporting")
        # The schema the COPY writes; the later migrations derive what they keep from it, as
        # they do when a deployment holding a history is upgraded.
        config = alembic_config(owner_url, SERVICE.migrations)
        await asyncio.to_thread(command.upgrade, config, LOADED_SCHEMA)
        population = Population(size, time.time())
        sample = min(size // 5, args.sample)
        started = time.perf_counter()
        handled = await bulk_load(postgres.dsn("reporting"), population, sample, rng)
        loaded_s = time.perf_counter() - started
        started = time.perf_counter()
        await migrate_async(
            owner_url, SERVICE.migrations, application_role=role, append_only=SERVICE.append_only
        )
        migrated_s = time.perf_counter() - started
        url = postgres.url("reporting", user=role)
        database = Database(url, pool_size=2)
        try:
            apply_rate, applied = await apply_sample(database, population, handled)
        finally:
            await database.dispose()
        print(
            f"load: {population.states:,} states of {size:,} people "
            f"({population.with_history / size:.0%} with 2-3 states, "
            f"{len(population.verdicts.verdicts):,} distinct verdicts); "
            f"{population.states - applied:,} by COPY in {loaded_s:.1f} s (not timed), "
            f"then the migrations from {LOADED_SCHEMA} to the head in {migrated_s:.1f} s; "
            f"{applied:,} states of {sample:,} people through the handler: "
            f"{apply_rate:,.0f} states/s",
            flush=True,
        )
        count = min(size, args.events)
        records = statuses_changed(population, count, rng)
        volume = sum(len(r.value or b"") + len(r.key or b"") + 400 for r in records)
        partitions = max(STATUSES.partitions, math.ceil(volume / (3 * 1024 * 1024)))
        kafka.create_topics(t for t in ALL_TOPICS if t is not STATUSES)
        kafka.create_topic(STATUSES.name, partitions)
        env = {
            "CANBAO_ENV": "test",
            "REPORTING_DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        }
        process, base = start(f"reporting-{size}", "canbao_reporting.app:create", env, tmp)
        try:
            await wait_up(base)
            projection = await project(kafka, postgres, process.pid, base, records, partitions)
            del records
            cpu = ", ".join(f"{k} {v:,.0f}" for k, v in projection.cpu_ms.items())
            print(
                f"projection: {count:,} StatusesChanged on {partitions} partitions (sent at "
                f"{projection.sent_per_s:,.0f}/s), applied by the service's consumer in "
                f"{projection.seconds:.1f} s: {projection.rate:,.0f} events/s; CPU ms per "
                f"1,000 events: {cpu}",
                flush=True,
            )
            current = Quarter.of(datetime.now(UTC))
            asked = requests(current, past_quarter(current))
            timed = await time_requests(base, asked, args.runs)
            print(
                f"internal API (current quarter {current}, past {past_quarter(current)}; "
                "one request at a time):"
            )
            print(f"{'request':<34} {'runs':>5} {'p50 ms':>9} {'p99 ms':>9}")
            for name, (runs, p50, p99) in timed.items():
                print(f"{name:<34} {runs:>5} {p50:>9,.1f} {p99:>9,.1f}", flush=True)
            rss = memory_kib(process.pid)["VmHWM"] / 1024
            total, tables = await sizes_of(postgres.dsn("reporting"))
            shown = "; ".join(f"{n} {h:,.0f} + indexes {i:,.0f}" for n, h, i in tables)
            print(f"service peak RSS {rss:,.0f} MiB; database {total:,.0f} MiB ({shown})")
            if explain:
                print(f"EXPLAIN ANALYZE of the table {current} province (store.cell_counts):")
                for line in await explain_table(url):
                    print(f"  {line}")
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # its consumer still retrying: not worth waiting
                process.kill()
                process.wait()
    figures = {
        "apply states/s": apply_rate,
        "projection events/s": projection.rate,
        "projection CPU ms/1k service": projection.cpu_ms["service"],
        "projection CPU ms/1k PostgreSQL": projection.cpu_ms["PostgreSQL"],
    }
    for name, (_, p50, p99) in timed.items():
        figures[f"{name} p50 ms"], figures[f"{name} p99 ms"] = p50, p99
    figures["service peak RSS MiB"], figures["database MiB"] = rss, total
    return figures


async def matching_rate(people_count: int, tmp: Path) -> float:
    """Matching's evaluator over `people_count` people pending (bench.matching): verdicts/s."""
    from bench.matching import bench_size

    with PostgresCluster(tmp / "matching", port=free_port(), durable=False) as postgres:
        figures = await bench_size(postgres, people_count, 1_000)
    return figures["evaluate_rate"]


def growth_table(sizes: list[int], figures: list[dict[str, float]]) -> None:
    print(f"\n{'figure':<44}" + "".join(f"{s:>20,}" for s in sizes))
    for name in figures[0]:
        cells = []
        for n, found in enumerate(figures):
            ratio = f" (×{found[name] / figures[n - 1][name]:.2f})" if n else ""
            cells.append(f"{found[name]:,.1f}{ratio}")
        print(f"{name:<44}" + "".join(f"{c:>20}" for c in cells))


def baseline_package(revision: str, tmp: Path) -> Path:
    """services/reporting as of `revision`, extracted: the directory to put first on PYTHONPATH."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "archive", revision, "services/reporting"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    return tmp / "services" / "reporting"


def measure_baseline(
    size: int, args: argparse.Namespace, package: Path, explain: bool, tmp: Path
) -> dict[str, float]:
    """One size with the baseline's package, in a child process; its figures."""
    out = tmp / f"baseline-{size}.json"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(package), os.environ.get("PYTHONPATH", "")) if p
        )
    }
    command_ = [
        sys.executable,
        "-m",
        "bench.reports",
        "--sizes",
        str(size),
        "--runs",
        str(args.runs),
        "--sample",
        str(args.sample),
        "--events",
        str(args.events),
        "--matching-people",
        "0",
        "--figures-out",
        str(out),
    ]
    if not explain:
        command_.append("--no-explain")
    print(f"\n-- before: services/reporting as of {args.baseline} --", flush=True)
    subprocess.run(command_, env=env, check=True, cwd=Path(__file__).resolve().parent.parent)
    figures: dict[str, float] = json.loads(out.read_text())
    return figures


def compared(
    sizes: list[int], before: list[dict[str, float]], after: list[dict[str, float]]
) -> None:
    print(f"\n{'before → after':<44}" + "".join(f"{s:>28,}" for s in sizes))
    for name in after[0]:
        cells = [
            f"{b[name]:,.1f} → {a[name]:,.1f} (×{a[name] / b[name]:.2f})" if b[name] else ""
            for b, a in zip(before, after, strict=True)
        ]
        print(f"{name:<44}" + "".join(f"{c:>28}" for c in cells))


def headline(size: int, found: dict[str, float]) -> str:
    return (
        f"reports {size} people: table {found['table current province p50 ms']:.0f} ms, "
        f"people page {found['people total:1 first page p50 ms']:.0f} ms, coverage "
        f"{found['coverage province p50 ms']:.0f} ms, projection "
        f"{found['projection events/s']:.0f} events/s"
    )


async def main(args: argparse.Namespace) -> None:
    print(
        machine_facts(
            "this process (loader, producer, test broker, caller), the reporting service"
        ),
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="canbao-bench-reports-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        matching = 0.0
        if args.matching_people:
            matching = await matching_rate(args.matching_people, Path(tmp))
            print(
                f"matching's evaluator (bench.matching 'evaluate', {args.matching_people:,} "
                f"people): {matching:,.0f} verdicts/s; CDC ceiling (architecture.md): "
                "~15,600 events/s at ~5-6 source rows a person, ~2,800 people/s",
                flush=True,
            )
        package = baseline_package(args.baseline, Path(tmp)) if args.baseline else None
        before, after = [], []
        for size in args.sizes:
            explain = args.explain and size == max(args.sizes)
            if package is not None:
                before.append(
                    await asyncio.to_thread(
                        measure_baseline, size, args, package, explain, Path(tmp)
                    )
                )
                print("\n-- after: services/reporting of this tree --", flush=True)
            after.append(await one_size(size, args, explain, Path(tmp)))
    if args.figures_out:  # a baseline child: its parent prints the rest
        await asyncio.to_thread(Path(args.figures_out).write_text, json.dumps(after[0]))
        return
    growth_table(args.sizes, after)
    if before:
        compared(args.sizes, before, after)
        print()
        for size, found in zip(args.sizes, before, strict=True):
            print(f"before ({args.baseline}): {headline(size, found)}")
    print()
    for size, found in zip(args.sizes, after, strict=True):
        print(headline(size, found))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--matching-people", type=int, default=20_000)
    parser.add_argument("--baseline", help="a git revision: measure its services/reporting too")
    parser.add_argument(
        "--no-explain", dest="explain", action="store_false", help=argparse.SUPPRESS
    )
    parser.add_argument("--figures-out", help=argparse.SUPPRESS)  # the baseline child's figures
    asyncio.run(main(parser.parse_args()))
