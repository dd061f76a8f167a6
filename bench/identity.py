"""Identity throughput: CDC events/s resolved and published, at several population sizes.

    uv run --frozen python -m bench.identity [--sizes 10000 100000]

Everything real and on this machine: a throwaway PostgreSQL (fsync off), the test broker (3
brokers), the identity service's own components exactly as app.py wires them (ConsumerRunner as
group "identity" on the 13 cdc.* topics, the golden-record builder, the outbox relay). For each
size a population is seeded with the generator (not timed) and its rows turned into the change
events the Debezium snapshot would write (JSON converter, no embedded schema); the service is
started and the events produced onto the cdc.* topics with backpressure (as the CDC bridge does:
the test broker keeps only ~5 MiB per partition), and the clock runs until every change event
is applied, every pending person rebuilt and every resulting event relayed to registry.persons /
registry.facts. The persons column checks that nobody was lost (one per generated person);
rebuilds counts golden records built (at best one per person). CPU µs/event is this process's
CPU time over the same interval (the service's components and the feed, not PostgreSQL or the
broker): on a machine shared with other work it moves less than the wall-clock rate. Peak RSS is
this process's high-water mark so far (the change events are streamed from the source tables,
never all held).
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
import sqlalchemy as sa

import canbao_identity
from canbao_contracts.envelope import KafkaRecord
from canbao_contracts.topics import CDC_TOPICS, COLLECTIONS, FACTS, PERSONS, dead_letter_topic
from canbao_identity.app import components
from canbao_identity.settings import IdentitySettings
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
    "education.student": ("xh",),
    "card.card_holder": ("aaz500",),
}
EPOCH = date(1970, 1, 1)
CHUNK, IN_FLIGHT = 2_000, 10_000
# The consumer's own count says how far it has read (counting processed_messages, millions of
# rows at 10^6, would load PostgreSQL more than the service does).
BACKLOG = sa.text(
    "SELECT (SELECT count(*) FROM staged_changes) + (SELECT count(*) FROM pending_persons),"
    " (SELECT count(*) FROM outbox)"
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
    postgres: PostgresCluster, kafka: MockKafkaCluster, people: int
) -> dict[str, Any]:
    sources = postgres.create_database(f"sources_{people}")
    started = time.perf_counter()
    await seed(sources, people, 1, loaders=2 if people >= 100_000 else 1)
    seeded_s = time.perf_counter() - started
    events = await count_rows(sources)

    url = postgres.create_database(f"identity_{people}")
    await migrate_async(url, Path(canbao_identity.__file__).parent / "migrations")
    database = Database(url, pool_size=4)
    settings = IdentitySettings(
        CANBAO_ENV="test", database_url=url, kafka_bootstrap_servers=kafka.bootstrap_servers
    )
    parts = components(
        Resources(settings=settings, database=database),
        config=RunnerConfig(max_batch=500, poll_timeout_ms=100),
    )
    started, cpu_started = time.perf_counter(), _cpu_s()
    for part in parts:
        await part.start()
    runner = _part(parts, "identity")
    feeding = asyncio.create_task(feed(kafka, runner, snapshot_records(sources)))
    try:
        while True:
            await asyncio.sleep(1.0)
            unresolved, outbox = await _backlog(database)
            if runner.counts.handled >= events and unresolved == 0 and outbox == 0:
                break
        elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu_started
        await feeding
        relayed = _part(parts, "identity.outbox").relayed
        rebuilt = _part(parts, "identity.builder").rebuilt
        async with database.engine.connect() as connection:
            registered = await connection.scalar(sa.select(sa.func.count()).select_from(persons))
    finally:
        for part in reversed(parts):
            await part.stop()
        await database.dispose()
    return {
        "people": people,
        "events": events,
        "seconds": elapsed,
        "seed_s": seeded_s,
        "persons": registered,
        "published": relayed,
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


async def _backlog(database: Database) -> tuple[int, int]:
    """Staged or pending work not yet published; outbox rows not yet relayed."""
    async with database.engine.connect() as connection:
        row = (await connection.execute(BACKLOG)).one()
    return int(row[0]), int(row[1])


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with (
            PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres,
            MockKafkaCluster(brokers=3) as kafka,
        ):
            kafka.create_topics(
                [*CDC_TOPICS, PERSONS, FACTS, COLLECTIONS, dead_letter_topic("identity")]
            )
            previous = None
            print(
                f"{'people':>9} {'cdc events':>11} {'seconds':>8} {'events/s':>9} "
                f"{'persons':>8} {'rebuilds':>9} {'published':>10} {'µs/event':>9} "
                f"{'CPU µs/event':>13} {'peak RSS':>9}  growth"
            )
            for people in sizes:
                r = await run_size(postgres, kafka, people)
                per_event = 1e6 / r["rate"]
                growth = "" if previous is None else f"×{per_event / previous:.2f} cost per event"
                previous = per_event
                print(
                    f"{people:>9} {r['events']:>11} {r['seconds']:>8.1f} {r['rate']:>9.0f} "
                    f"{r['persons']:>8} {r['rebuilt']:>9} {r['published']:>10} "
                    f"{per_event:>9.0f} {1e6 * r['cpu_s'] / r['events']:>13.0f} "
                    f"{r['peak_rss_mib']:>5.0f} MiB  {growth}",
                    flush=True,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    asyncio.run(main(parser.parse_args().sizes))
