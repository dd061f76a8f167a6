"""Identity's resolution scale-out: a staged backlog resolved by 1 builder, then by 2 at once.

    uv run --frozen python -m bench.builders [--people 20000] [--builders 1 2]

A population is seeded with the generator and its rows staged as the consumers stage them (the
snapshot change events of bench.identity, through handlers.staged_change and staging.add_staged,
not timed), once, into a template database. For each builder count a copy of that database is
resolved by that many processes at once, each with its own connection, each running
`GoldenRecords.resolve_pending` in units of work until nothing is staged (store.take_staged: each
takes the shares no other holds). The clock runs from when every process is connected until the
last has finished. Resolution only: rebuilding the pending persons already shared the work (pending
rows taken with SKIP LOCKED), and its persons are left pending. The figure is the ratio of the
rates; on a machine shared with other work, run the counts back to back and read the load.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path

import sqlalchemy as sa

import canbao_identity
from bench.identity import snapshot_records
from bench.processes import children_of, cpu_seconds, cpu_since, machine_facts, postmaster
from canbao_contracts.debezium import parse_change_event
from canbao_contracts.envelope import KafkaRecord
from canbao_identity.adapters import adapter_for
from canbao_identity.app import protector_from
from canbao_identity.golden_records import golden_records_work
from canbao_identity.handlers import staged_change
from canbao_identity.settings import IdentitySettings
from canbao_identity.staging import add_staged
from canbao_identity.units import is_unit_feed
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_platform.messaging import unit_of_work
from canbao_stack.simulators.population import seed

STAGE_BATCH = 2_000  # change events per staging transaction (a consumed batch)
RESOLVE_BATCH = 2_000  # the builder's default (GoldenRecordBuilder.resolve_batch)
PROTECTOR = protector_from(IdentitySettings(CANBAO_ENV="test"))


async def stage_backlog(postgres: PostgresCluster, people: int) -> tuple[str, int]:
    """The template database: migrated, the population's change events staged. Its name and
    how many changes are staged."""
    sources = postgres.create_database(f"sources_{people}")
    await seed(sources, people, 1, loaders=2 if people >= 100_000 else 1)
    name = f"staged_{people}"
    url = postgres.create_database(name)
    await migrate_async(url, Path(canbao_identity.__file__).parent / "migrations")
    database = Database(url, pool_size=2)
    staged = 0
    try:
        batch = []
        async for record in snapshot_records(sources):
            if is_unit_feed(record.topic):
                continue
            batch.append(record)
            if len(batch) == STAGE_BATCH:
                staged += await _stage(database, batch)
                batch = []
        staged += await _stage(database, batch)
    finally:
        await database.dispose()
    return name, staged


async def _stage(database: Database, records: list[KafkaRecord]) -> int:
    staged = 0
    async with unit_of_work(database, service="identity") as uow:
        for record in records:
            event = parse_change_event(record.key, record.value, topic=record.topic)
            adapter = adapter_for(record.topic)
            assert adapter is not None
            if (change := staged_change(PROTECTOR, adapter, event)) is not None:
                add_staged(uow, change)
                staged += 1
    return staged


Result = tuple[int, float, float]  # changes resolved, when finished (epoch s), CPU s used


def resolver(url: str, barrier: Barrier, results: multiprocessing.Queue[Result]) -> None:
    """One builder process's resolution: connects, waits for the others, resolves until nothing
    is staged; reports how many changes it resolved, when it finished and the CPU it used, and
    keeps its connections (PostgreSQL's backends) until everyone's CPU has been read."""
    asyncio.run(_resolve_all(url, barrier, results))


async def _resolve_all(url: str, barrier: Barrier, results: multiprocessing.Queue[Result]) -> None:
    database = Database(url, pool_size=2)
    try:
        async with database.engine.connect() as connection:
            await connection.scalar(sa.text("SELECT 1"))
        barrier.wait()
        cpu = time.process_time()
        resolved = 0
        while True:
            async with golden_records_work(database, PROTECTOR, service="identity") as work:
                taken = await work.resolve_pending(limit=RESOLVE_BATCH)
            resolved += taken
            if taken:
                continue
            async with database.engine.connect() as connection:
                if not await connection.scalar(
                    sa.text("SELECT EXISTS (SELECT FROM staged_changes)")
                ):
                    results.put((resolved, time.time(), time.process_time() - cpu))
                    barrier.wait()  # until the CPU has been read
                    return
            await asyncio.sleep(0.01)  # what is left is in shares the others hold
    finally:
        await database.dispose()


@dataclass
class Run:
    seconds: float  # from when every process was connected until the last finished
    resolved: list[int]  # by each process
    builder_cpu_s: float  # the builder processes'
    postgres_cpu_s: float  # PostgreSQL's backends'


def resolve_with(postgres: PostgresCluster, template: str, builders: int, run: int) -> Run:
    """A copy of the staged backlog resolved by `builders` processes at once."""
    url = postgres.create_database(f"run_{run}_{builders}", template=template)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(builders + 1)  # all connected; then all measured
    results: multiprocessing.Queue[Result] = context.Queue()
    processes = [
        context.Process(target=resolver, args=(url, barrier, results)) for _ in range(builders)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.time()
    backends = cpu_seconds(children_of(postmaster(postgres)))
    finished = [results.get() for _ in processes]
    postgres_cpu = cpu_since(backends, children_of(postmaster(postgres)))
    barrier.wait()
    for process in processes:
        process.join()
    return Run(
        max(at for _, at, _ in finished) - started,
        [n for n, _, _ in finished],
        sum(cpu for _, _, cpu in finished),
        postgres_cpu,
    )


async def main(people: int, counts: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres:
            started = time.perf_counter()
            template, staged = await stage_backlog(postgres, people)
            print(
                f"{people:,} people: {staged:,} changes staged in "
                f"{time.perf_counter() - started:.0f} s (not timed)",
                flush=True,
            )
            print(machine_facts("the builder processes"), flush=True)
            print(
                f"{'builders':>8} {'seconds':>8} {'changes/s':>10} {'×1':>6} "
                f"{'CPU µs/change: builders postgres':>33}  load  resolved by each"
            )
            single: dict[int, float] = {}
            for run, builders in enumerate(counts):
                r = resolve_with(postgres, template, builders, run)
                assert sum(r.resolved) == staged, (r.resolved, staged)
                rate = staged / r.seconds
                base = single.setdefault(1, rate) if builders == 1 else single.get(1, rate)
                cpu = f"{1e6 * r.builder_cpu_s / staged:>24.0f}"
                cpu += f" {1e6 * r.postgres_cpu_s / staged:>8.0f}"
                print(
                    f"{builders:>8} {r.seconds:>8.1f} {rate:>10.0f} {rate / base:>6.2f} {cpu}"
                    f"  {os.getloadavg()[0]:4.1f}  {r.resolved}",
                    flush=True,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument(
        "--builders",
        type=int,
        nargs="+",
        default=[1, 2],
        help="builder counts, run one after another on copies of one backlog (repeat to average: "
        "1 2 1 2); ×1 compares with the first run of one builder",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.people, arguments.builders))
