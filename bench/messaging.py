"""Messaging runtime throughput: the consumer runner against a bare aiokafka loop, same broker,
same run, at two sizes.

    uv run --frozen python -m bench.messaging [--sizes 50000 200000] [--partitions 32]

What is measured, for N messages of ~200 B value with CloudEvents headers (as the contracts'
encoder writes them), already on one topic:

* **bare**: an AIOKafkaConsumer in a group, `getmany(max_records=500)` then `commit()` of the
  batch's offsets: the ceiling of any consumer in Python on this broker;
* **runner**: `ConsumerRunner` with the same batch size: envelope parsing, one PostgreSQL
  transaction per batch holding the idempotency records (one INSERT for the batch) and a trivial
  effect (one row per message, added with `uow.add_row`: one multi-row INSERT for the batch),
  then the offset commit, the next batch polled and parsed meanwhile;
* **runner, ORM row**: the same effect written as a SQLModel object added to the session, to
  show what the ORM's unit of work costs per message;
* **runner, no effect**: the same with a handler that does nothing, to separate the runtime's
  own cost (parsing, idempotency records, transaction, span) from the effect's.

Each runs in its own child process, so its peak RSS is its own (the parent holds the broker's
in-memory log and PostgreSQL runs as its own processes). Events/s is counted from the first
batch received to the last batch committed, so group join time is excluded; latency is per batch,
from the poll returning it (bare) or its application starting (runner) to its offsets committed.
The test broker keeps ~5 MiB per partition, hence the many partitions; the run refuses to measure
if anything was evicted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from sqlalchemy import MetaData
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from bench.events import send_all
from canbao_contracts.envelope import Envelope, KafkaRecord
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_platform.messaging import (
    ConsumerRunner,
    Handler,
    InboundMessage,
    Producer,
    RunnerConfig,
    UnitOfWork,
)
from canbao_platform.messaging.consumer import Polled
from canbao_platform.messaging.group import GroupConsumer
from canbao_platform.service import freeze_startup_objects

BATCH = 500
ROOT = Path(__file__).resolve().parent.parent


class BenchBase(SQLModel, registry=registry(metadata=MetaData())):
    pass


class Applied(BenchBase, table=True):
    """The trivial effect: one row per message."""

    __tablename__ = "bench_applied"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str
    size: int


applied = Applied.__table__  # type: ignore[attr-defined]


async def apply_effect(message: InboundMessage, uow: UnitOfWork) -> None:
    uow.add_row(applied, {"event_id": message.idempotency_key, "size": len(message.value or b"")})


async def apply_orm_effect(message: InboundMessage, uow: UnitOfWork) -> None:
    uow.session.add(Applied(event_id=message.idempotency_key, size=len(message.value or b"")))


async def no_effect(message: InboundMessage, uow: UnitOfWork) -> None:
    pass


class TimedRunner(ConsumerRunner):
    """The runner, timing each batch from poll to committed offsets, done after `expected`."""

    def __init__(self, *, expected: int, **options: Any) -> None:
        super().__init__(**options)
        self.expected, self.done = expected, asyncio.Event()
        self.latencies: list[float] = []
        self.first_batch_at: float | None = None

    async def _process(self, group: GroupConsumer, polled: Polled) -> None:
        started = time.monotonic()
        self.first_batch_at = self.first_batch_at or started
        await super()._process(group, polled)
        self.latencies.append(time.monotonic() - started)
        if self.counts.handled >= self.expected:
            self.done.set()


async def bare(bootstrap: str, topic: str, count: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bare-{uuid.uuid4()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen, latencies, first = 0, [], None
    try:
        while seen < count:
            batches: dict[TopicPartition, list[ConsumerRecord]] = await consumer.getmany(
                timeout_ms=500, max_records=BATCH
            )
            if not batches:
                continue
            started = time.monotonic()
            first = first or started
            seen += sum(len(batch) for batch in batches.values())
            await consumer.commit({tp: batch[-1].offset + 1 for tp, batch in batches.items()})
            latencies.append(time.monotonic() - started)
        elapsed = time.monotonic() - first
    finally:
        await consumer.stop()
    return {"events": seen, "elapsed": elapsed, "latencies": latencies}


HANDLERS = {"runner": apply_effect, "orm-row": apply_orm_effect, "no-effect": no_effect}
LABELS = {"runner": "runner", "orm-row": "runner, ORM row", "no-effect": "runner, no effect"}


async def runner(
    bootstrap: str, topic: str, count: int, database_url: str, handler: Handler
) -> dict[str, Any]:
    database = Database(database_url, pool_size=2)
    async with Producer(bootstrap) as producer:
        timed = TimedRunner(
            expected=count,
            name=f"runner-{uuid.uuid4()}",
            topics=[topic],
            handler=handler,
            database=database,
            producer=producer,
            bootstrap_servers=bootstrap,
            service="bench",
            dead_letter_topic="deadletter.bench",
            config=RunnerConfig(max_batch=BATCH),
        )
        await timed.start()
        await timed.done.wait()
        finished = time.monotonic()  # the last batch's offsets are committed
        assert timed.first_batch_at is not None
        await timed.stop()
    await database.dispose()
    return {
        "events": timed.counts.processed,
        "elapsed": finished - timed.first_batch_at,
        "latencies": timed.latencies,
        "duplicates": timed.counts.duplicates,
    }


def child(args: argparse.Namespace) -> None:
    """One measurement in this (child) process; prints its figures as JSON."""
    if args.child == "bare":
        figures = asyncio.run(bare(args.bootstrap, args.topic, args.count))
    else:
        freeze_startup_objects()  # as the service shell does once its components started
        handler = HANDLERS[args.child]
        measured = runner(args.bootstrap, args.topic, args.count, args.database, handler)
        figures = asyncio.run(measured)
    latencies = sorted(figures.pop("latencies"))
    figures["p50_ms"] = 1000 * latencies[len(latencies) // 2]
    figures["p99_ms"] = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    figures["rss_mib"] = peak_rss_mib()
    print(json.dumps(figures))


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not getrusage's ru_maxrss: Linux carries that
    over exec from the forking parent, which holds the broker's log."""
    status = Path("/proc/self/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kib) / 1024


def measure(
    phase: str, topic: str, count: int, bootstrap: str, database: str = ""
) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.messaging",
            "--child",
            phase,
            "--topic",
            topic,
            "--count",
            str(count),
            "--bootstrap",
            bootstrap,
            "--database",
            database,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{phase} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["rate"] = figures["events"] / figures["elapsed"]
    return figures


async def produce(kafka: MockKafkaCluster, topic: str, count: int, value_bytes: int) -> float:
    """Put `count` events on `topic`; the rate of the Producer (records built beforehand)."""
    records = [record(topic, n, value_bytes) for n in range(count)]
    try:
        return await send_all(kafka.bootstrap_servers, topic, records)
    except RuntimeError as evicted:
        raise RuntimeError(f"{evicted}: use more --partitions") from None


def record(topic: str, n: int, value_bytes: int) -> KafkaRecord:
    """An event as the contracts' encoder writes it: person key, CloudEvents headers, JSON."""
    person = str(uuid.UUID(int=n))
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type="cn.canbao.registry.fact.asserted.v1",
        source="/canbao/identity",
        time=datetime.now(UTC),
        subject=person,
    )
    body = json.dumps({"person_id": person, "n": n, "pad": ""})
    value = body[:-2] + "x" * max(0, value_bytes - len(body)) + '"}'
    return KafkaRecord(topic, person.encode(), value.encode(), envelope.to_headers())


async def main(sizes: list[int], partitions: int, value_bytes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with (
            PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres,
            MockKafkaCluster(brokers=3) as kafka,
        ):
            print(
                f"{partitions} partitions, values of {value_bytes} B, batches of {BATCH}; "
                f"one child process per measurement\n"
            )
            print(
                f"{'events':>8} {'loop':>17} {'events/s':>9} {'ratio':>6} {'p50 ms':>7} "
                f"{'p99 ms':>7} {'peak RSS':>9}"
            )
            for count in sizes:
                topic = f"bench.{count}"
                kafka.create_topic(topic, partitions)
                produced = await produce(kafka, topic, count, value_bytes)
                base = measure("bare", topic, count, kafka.bootstrap_servers)
                rows = [("bare", base)]
                for phase in HANDLERS:  # each on a fresh database
                    name = f"bench_{count}_{phase.replace('-', '_')}"
                    url = await fresh_database(postgres, name)
                    figures = measure(phase, topic, count, kafka.bootstrap_servers, url)
                    rows.append((phase, figures))
                for phase, figures in rows[1:]:
                    if phase != "no-effect":
                        applied = postgres.psql(
                            f"bench_{count}_{phase.replace('-', '_')}",
                            "SELECT count(*) FROM bench_applied",
                        )
                        assert int(applied) == count == figures["events"], (phase, applied)
                for phase, figures in rows:
                    ratio = figures["rate"] / base["rate"]
                    label = LABELS.get(phase, phase)
                    print(
                        f"{count:>8,} {label:>17} {figures['rate']:>9,.0f} {ratio:>6.3f} "
                        f"{figures['p50_ms']:>7.1f} {figures['p99_ms']:>7.1f} "
                        f"{figures['rss_mib']:>6.0f} MiB",
                        flush=True,
                    )
                print(
                    f"{'':>8} (Producer: {produced:,.0f} events/s; {count:,} rows applied, "
                    f"{rows[1][1]['duplicates']} duplicates)",
                    flush=True,
                )


async def fresh_database(postgres: PostgresCluster, name: str) -> str:
    """A new database with the runtime's tables (the real migration) and the effect's table."""
    url = postgres.create_database(name)
    await migrate_async(url, None)
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.run_sync(BenchBase.metadata.create_all)
    await database.dispose()
    return url


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="consumer runner vs bare aiokafka loop")
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--partitions", type=int, default=32)
    parser.add_argument("--value-bytes", type=int, default=200)
    parser.add_argument("--child", choices=["bare", *HANDLERS], help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments)
    else:
        asyncio.run(main(arguments.sizes, arguments.partitions, arguments.value_bytes))
