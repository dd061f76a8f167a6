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
this process's high-water mark so far (it holds every size's change events to produce them).
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
from canbao_platform.messaging import Producer, RunnerConfig
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
PROGRESS = sa.text(
    "SELECT (SELECT count(*) FROM processed_messages WHERE consumer = 'identity'),"
    " (SELECT count(*) FROM staged_changes) + (SELECT count(*) FROM pending_persons),"
    " (SELECT count(*) FROM outbox)"
)


def _debezium(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return (value - EPOCH).days  # io.debezium.time.Date
    return value


async def snapshot_records(dsn: str) -> list[KafkaRecord]:
    """Every source row as a snapshot change event (op "r") on its cdc.* topic."""
    connection = await asyncpg.connect(dsn.replace("postgresql+asyncpg://", "postgresql://"))
    records, lsn = [], 10_000
    try:
        for schema, table in TABLES:
            name = f"{schema}.{table}"
            for row in await connection.fetch(f"SELECT * FROM {name}"):
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
                records.append(
                    KafkaRecord(
                        f"cdc.{name}", json.dumps(key).encode(), json.dumps(envelope).encode(), []
                    )
                )
    finally:
        await connection.close()
    return records


async def run_size(
    postgres: PostgresCluster, kafka: MockKafkaCluster, people: int
) -> dict[str, Any]:
    sources = postgres.create_database(f"sources_{people}")
    started = time.perf_counter()
    await seed(sources, people, 1, loaders=2 if people >= 100_000 else 1)
    seeded_s = time.perf_counter() - started
    records = await snapshot_records(sources)

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
    feeding = asyncio.create_task(feed(kafka, database, records))
    try:
        while True:
            await asyncio.sleep(1.0)
            applied, unresolved, outbox = await _progress(database)
            if applied >= len(records) and unresolved == 0 and outbox == 0:
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
        "events": len(records),
        "seconds": elapsed,
        "seed_s": seeded_s,
        "persons": registered,
        "published": relayed,
        "rebuilt": rebuilt,
        "rate": len(records) / elapsed,
        "cpu_s": cpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _cpu_s() -> float:
    """This process's CPU seconds (user + system): the service's components and the feed."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _part(parts: list[Any], name: str) -> Any:
    return next(p for p in parts if getattr(p, "name", "") == name)


async def feed(kafka: MockKafkaCluster, database: Database, records: list[KafkaRecord]) -> None:
    """Produce the change events with backpressure, as the CDC bridge does: never more than
    IN_FLIGHT events ahead of the service, or the test broker's bounded partition logs (~5 MiB)
    would evict events before they are read."""
    async with Producer(kafka.bootstrap_servers, linger_ms=20, max_batch_size=256 * 1024) as p:
        for start in range(0, len(records), CHUNK):
            await _applied_at_least(database, start - (IN_FLIGHT - CHUNK))
            await p.send_many(records[start : start + CHUNK])


async def _applied_at_least(database: Database, count: int) -> None:
    applied = (await _progress(database))[0]
    while applied < count:  # polled: the count lives in the service's database
        await asyncio.sleep(0.1)
        applied = (await _progress(database))[0]


async def _progress(database: Database) -> tuple[int, int, int]:
    """Change events consumed; staged or pending work not yet published; outbox rows unsent."""
    async with database.engine.connect() as connection:
        row = (await connection.execute(PROGRESS)).one()
    return int(row[0]), int(row[1]), int(row[2])


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
