"""Identity throughput: CDC events/s resolved and published, at several population sizes.

    uv run --frozen python -m bench.identity [--sizes 10000 100000] [--builder separate]

Everything real and on this machine: a throwaway PostgreSQL (fsync off), the test broker (3
brokers), the identity service's own components exactly as app.py wires them: by default as a
province deploys them, this process with IDENTITY_ROLES=consume (ConsumerRunner as group
"identity" on the 13 cdc.* topics, the outbox relay) and the golden-record builder as a service
process of its own (`uvicorn canbao_identity.app:create`, IDENTITY_ROLES=build); with
`--builder embedded` all in this process, as `make run` runs them. For each size a population is
seeded with the generator (not timed) and its rows turned into the change events the Debezium
snapshot would write (JSON converter, no embedded schema); the service is started and the events
produced onto the cdc.* topics with backpressure (as the CDC bridge does: the test broker keeps
only ~5 MiB per partition), and the clock runs until every change event is applied, every
pending person rebuilt and every resulting event relayed to registry.persons / registry.facts.
The persons column checks that nobody was lost (one per generated person); rebuilds counts
golden records built (at best one per person: a person rebuilt after each of its source tables
went through is published more than once). CPU µs/event is CPU time over the same interval, per
event, of this process (consumers, relay, the feed), of the builder's process and of
PostgreSQL's backends (not the broker): on a machine shared with other work it moves less than
the wall-clock rate. Peak RSS is this process's high-water mark so far (the change events are
streamed from the source tables, never all held). A long run prints its progress every minute.
What is *not* measured: Debezium itself (bench/cdc.py: ~13-16k events/s here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import sqlalchemy as sa

import canbao_identity
from bench.processes import (
    children_of,
    cpu_seconds,
    cpu_since,
    machine_facts,
    postmaster,
    start,
    wait_up,
)
from canbao_contracts.envelope import KafkaRecord
from canbao_contracts.topics import CDC_TOPICS, COLLECTIONS, FACTS, PERSONS, dead_letter_topic
from canbao_identity.app import components
from canbao_identity.settings import IdentitySettings, Role
from canbao_identity.tables import persons
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_platform.messaging import ConsumerRunner, Producer, RunnerConfig
from canbao_platform.service import Resources
from canbao_stack.simulators import TABLES
from canbao_stack.simulators.population import seed

KEYS = {  # primary key columns per source table (sources.md)
    "si_core.ab01": ("aab001",),
    "si_core.ac01": ("aac001",),
    "si_core.ac02": ("aac001", "aae140", "aab301"),
    "medical.insured": ("psn_no", "insutype"),
    "hukou.person": ("sfzh",),
    "hukou.resident_permit": ("jzzh",),
    "education.student": ("xh",),
    "card.card_holder": ("aaz500",),
}
EPOCH = date(1970, 1, 1)
CHUNK, IN_FLIGHT = 2_000, 10_000
PROGRESS_EVERY_S = 60.0  # a line on a long run's progress
WORK_LEFT = sa.text(
    "SELECT EXISTS (SELECT FROM staged_changes) OR EXISTS (SELECT FROM pending_persons)"
    " OR EXISTS (SELECT FROM outbox)"
)


def _debezium(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return (value - EPOCH).days  # io.debezium.time.Date
    return value


async def count_rows(dsn: str) -> int:
    """How many change events the snapshot of every source table will be."""
    connection = await asyncpg.connect(dsn.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        counts = [await connection.fetchval(f"SELECT count(*) FROM {s}.{t}") for s, t in TABLES]
    finally:
        await connection.close()
    return sum(counts)


async def snapshot_records(dsn: str) -> AsyncIterator[KafkaRecord]:
    """Every source row as a snapshot change event (op "r") on its cdc.* topic, read through a
    cursor: streamed, never all in memory (10^6 people are ~5.4 million events)."""
    connection = await asyncpg.connect(dsn.replace("postgresql+asyncpg://", "postgresql://"))
    lsn = 10_000
    try:
        async with connection.transaction():
            for schema, table in TABLES:
                name = f"{schema}.{table}"
                async for row in connection.cursor(f"SELECT * FROM {name}", prefetch=CHUNK):
                    after = {k: _debezium(v) for k, v in dict(row).items() if k != "updated_at"}
                    key = {c: after[c] for c in KEYS.get(name, ("id",))}
                    envelope = {
                        "before": None,
                        "after": after,
                        "op": "r",
                        "ts_ms": 1_763_800_000_000,
                        "source": {
                            "lsn": lsn,
                            "txId": 1,
                            "ts_ms": 1_763_800_000_000,
                            "schema": schema,
                            "table": table,
                            "snapshot": "true",
                        },
                    }
                    yield KafkaRecord(
                        f"cdc.{name}", json.dumps(key).encode(), json.dumps(envelope).encode(), []
                    )
    finally:
        await connection.close()


async def run_size(
    postgres: PostgresCluster, kafka: MockKafkaCluster, people: int, builder: str, log_dir: Path
) -> dict[str, Any]:
    sources = postgres.create_database(f"sources_{people}")
    started = time.perf_counter()
    await seed(sources, people, 1, loaders=2 if people >= 100_000 else 1)
    seeded_s = time.perf_counter() - started
    events = await count_rows(sources)

    url = postgres.create_database(f"identity_{people}")
    await migrate_async(url, Path(canbao_identity.__file__).parent / "migrations")
    database = Database(url, pool_size=4)
    separate = builder == "separate"
    env = {
        "CANBAO_ENV": "test",
        "IDENTITY_DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
    }
    roles = Role.CONSUME.value if separate else ",".join(Role)
    settings = IdentitySettings(**env, roles=roles)  # type: ignore[arg-type]
    parts = components(
        Resources(settings=settings, database=database),
        config=RunnerConfig(max_batch=500, poll_timeout_ms=100),
    )
    builder_process, builder_url = None, ""
    if separate:  # as a province deploys it: the same service, IDENTITY_ROLES=build
        builder_process, builder_url = start(
            f"identity-builder-{people}",
            "canbao_identity.app:create",
            env | {"IDENTITY_ROLES": Role.BUILD.value},
            log_dir,
        )
        await wait_up(builder_url)
    backends = children_of(postmaster(postgres))
    builder_pids = [builder_process.pid] if builder_process else []
    cpu_before = {
        "service": _cpu_s(),
        "builder": cpu_seconds(builder_pids),
        "postgres": cpu_seconds(backends),
    }
    started, progressed = time.perf_counter(), 0.0
    for part in parts:
        await part.start()
    runner = _part(parts, "identity")
    feeding = asyncio.create_task(feed(kafka, runner, snapshot_records(sources)))
    try:
        while True:
            await asyncio.sleep(1.0)
            if runner.counts.handled >= events and not await _work_left(database):
                break
            if (waited := time.perf_counter() - started) // PROGRESS_EVERY_S > progressed:
                progressed = waited // PROGRESS_EVERY_S
                checks = await _checks(parts, builder_url)
                print(_progress(waited, runner.counts.handled, events, checks), flush=True)
        elapsed = time.perf_counter() - started
        cpu = {
            "service": _cpu_s() - cpu_before["service"],
            "builder": cpu_since(cpu_before["builder"], builder_pids),
            "postgres": cpu_since(cpu_before["postgres"], children_of(postmaster(postgres))),
        }
        await feeding
        # The builder's counts; the events relayed by this process's relay (a builder-only
        # process runs none).
        checks = await _checks(parts, builder_url)
        rebuilt = checks["identity.builder"]["rebuilt"]
        published = _part(parts, "identity.outbox").relayed
        async with database.engine.connect() as connection:
            registered = await connection.scalar(sa.select(sa.func.count()).select_from(persons))
    finally:
        for part in reversed(parts):
            await part.stop()
        if builder_process is not None:
            builder_process.terminate()
            builder_process.wait(timeout=30)
        await database.dispose()
    return {
        "people": people,
        "events": events,
        "seconds": elapsed,
        "seed_s": seeded_s,
        "persons": registered,
        "published": published,
        "rebuilt": rebuilt,
        "rate": events / elapsed,
        "cpu_s": cpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu_s() -> float:
    """This process's CPU seconds (user + system): the service's components and the feed."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _part(parts: list[Any], name: str) -> Any:
    return next(p for p in parts if getattr(p, "name", "") == name)


async def feed(
    kafka: MockKafkaCluster, runner: ConsumerRunner, records: AsyncIterator[KafkaRecord]
) -> None:
    """Produce the change events with backpressure, as the CDC bridge does: never more than
    IN_FLIGHT events ahead of the service, or the test broker's bounded partition logs (~5 MiB)
    would evict events before they are read."""
    sent = 0
    async with Producer(kafka.bootstrap_servers, linger_ms=20, max_batch_size=256 * 1024) as p:
        chunk: list[KafkaRecord] = []
        async for record in records:
            chunk.append(record)
            if len(chunk) == CHUNK:
                sent = await _send(p, runner, chunk, sent)
                chunk = []
        await _send(p, runner, chunk, sent)


async def _send(p: Producer, runner: ConsumerRunner, chunk: list[KafkaRecord], sent: int) -> int:
    # Polled: the runner's count has no event to wait on.
    while runner.counts.handled < sent - (IN_FLIGHT - CHUNK):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await p.send_many(chunk)
    return sent + len(chunk)


async def _work_left(database: Database) -> bool:
    """Staged or pending work not yet published, or outbox rows not yet relayed (EXISTS, not a
    count: at 10^6 people these tables hold millions of rows while the snapshot goes through)."""
    async with database.engine.connect() as connection:
        return bool(await connection.scalar(WORK_LEFT))


async def _checks(parts: list[Any], builder_url: str) -> dict[str, Any]:
    """The builder's health: from its /readyz when it runs apart."""
    if not builder_url:
        return {p.name: p.health() for p in parts if hasattr(p, "health")}
    async with httpx.AsyncClient(timeout=30) as http:
        checks: dict[str, Any] = (await http.get(f"{builder_url}/readyz")).json()["checks"]
    return checks


def _progress(waited: float, consumed: int, events: int, checks: dict[str, Any]) -> str:
    builder = checks["identity.builder"]
    return (
        f"  after {waited / 60:4.0f} min: {consumed:,} of {events:,} change events consumed; "
        f"builder: {builder['resolved']:,} resolved, {builder['rebuilt']:,} rebuilt, backlog "
        f"{builder['staged']} staged, {builder['pending_persons']} persons pending"
    )


async def main(sizes: list[int], builder: str) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with (
            PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres,
            MockKafkaCluster(brokers=3) as kafka,
        ):
            kafka.create_topics(
                [*CDC_TOPICS, PERSONS, FACTS, COLLECTIONS, dead_letter_topic("identity")]
            )
            sharing = "this process (consumers, relay, feed), the builder process, the broker"
            if builder == "embedded":
                sharing = "this process (consumers, builder, relay, feed), the broker"
            print(machine_facts(sharing), flush=True)
            previous = None
            print(
                f"{'people':>9} {'cdc events':>11} {'seconds':>8} {'events/s':>9} "
                f"{'persons':>8} {'rebuilds':>9} {'published':>10} {'µs/event':>9} "
                f"{'CPU µs/event: service builder postgres':>39} {'peak RSS':>9}  growth"
            )
            for people in sizes:
                r = await run_size(postgres, kafka, people, builder, Path(tmp))
                per_event = 1e6 / r["rate"]
                growth = "" if previous is None else f"×{per_event / previous:.2f} cost per event"
                previous = per_event
                cpu = "".join(
                    f"{1e6 * r['cpu_s'][part] / r['events']:>{width}.0f}"
                    for part, width in (("service", 22), ("builder", 8), ("postgres", 9))
                )
                print(
                    f"{people:>9} {r['events']:>11} {r['seconds']:>8.1f} {r['rate']:>9.0f} "
                    f"{r['persons']:>8} {r['rebuilt']:>9} {r['published']:>10} "
                    f"{per_event:>9.0f} {cpu} {r['peak_rss_mib']:>5.0f} MiB  {growth}",
                    flush=True,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--builder",
        choices=("separate", "embedded"),
        default="separate",
        help="the golden-record builder in a process of its own (IDENTITY_ROLES=build, as a "
        "province deploys it) or inside the consumers' process (development's default)",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.sizes, arguments.builder))
