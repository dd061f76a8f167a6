"""CDC throughput: events/s through the Debezium bridge, snapshot and streaming, at two sizes.

    uv run --frozen python -m bench.cdc [--sizes 20000 100000]

Everything real and on this machine: a throwaway PostgreSQL (wal_level=logical), the test
broker, the bridge as a child process exactly as the local stack starts it (backpressure on,
watching the benchmark's consumer group), and one consumer that reads and commits like the
identity service. Rates are measured where the consumer sees the events, from the first event
to the last, so the JVM's start-up is not counted. Rows are hukou.person records of the size the
demo population has (~0.7 KiB per event, schemas not embedded), on topics of 3 partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_stack.simulators import SCHEMA_SQL, TABLES

ROWS_SQL = (
    "INSERT INTO hukou.person (sfzh, xm, xb, csrq, mz, hjdz_xzqh, hjdz, hh, yhzgx, ryzt) "
    "SELECT $1 || lpad(g::text, 9, '0'), '居民' || g, '1', date '1950-01-01' + g % 25000, '01', "
    "'520102', '贵州省贵阳市南明区花果园街道' || g || '号', 'H' || g / 3, '01', '0' "
    "FROM generate_series($2::int, $3::int) g"
)


class Counter:
    """Counts the events on the cdc topics, committing as the watched group."""

    def __init__(self, bootstrap: str, topics: list[str], group: str) -> None:
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.seen = 0
        self.times: dict[int, float] = {}  # events seen so far → when
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            if batches:
                self.seen += sum(len(records) for records in batches.values())
                self.times[self.seen] = time.monotonic()
                self._arrived.set()
                await self.consumer.commit()

    async def reached(self, count: int, within_s: float = 600) -> float:
        """When the batch holding the `count`-th event arrived."""
        async with asyncio.timeout(within_s):
            while self.seen < count:
                self._arrived.clear()
                await self._arrived.wait()
        return min(t for n, t in self.times.items() if n >= count)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.consumer.stop()


def start_bridge(
    postgres: PostgresCluster, kafka: MockKafkaCluster, name: str
) -> subprocess.Popen[bytes]:
    """The bridge as the local stack starts it; its log in the temporary directory."""
    with open(Path(tempfile.gettempdir()) / f"{name}-bridge.log", "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "canbao_stack.cdc",
                "--bootstrap-servers",
                kafka.bootstrap_servers,
                "--source-dsn",
                postgres.dsn(name),
                "--topic-prefix",
                name,
                "--offsets-topic",
                f"{name}.offsets",
                "--slot",
                name,
                "--publication",
                name,
                "--watch-groups",
                f"{name}-identity",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def measure(
    postgres: PostgresCluster, kafka: MockKafkaCluster, rows: int
) -> dict[str, float]:
    name = f"bench_{rows}"
    postgres.create_database(name)
    postgres.psql(name, SCHEMA_SQL.read_text())
    topics = [f"{name}.{schema}.{table}" for schema, table in TABLES]
    for topic in topics:
        kafka.create_topic(topic, 3)
    kafka.create_topic(f"{name}.offsets", 1)
    connection = await asyncpg.connect(postgres.dsn(name))
    await connection.execute(ROWS_SQL, "S", 1, rows)  # for the snapshot
    counter = Counter(kafka.bootstrap_servers, topics, f"{name}-identity")
    await counter.start()
    launched = time.monotonic()
    bridge = await asyncio.to_thread(start_bridge, postgres, kafka, name)
    try:
        first = await counter.reached(1)
        snapshot_done = await counter.reached(rows)
        # Streaming: as many new rows again, committed 1,000 at a time.
        for start in range(1, rows + 1, 1_000):
            await connection.execute(ROWS_SQL, "N", start, min(start + 999, rows))
        streaming_done = await counter.reached(2 * rows)
        streaming_from = min(t for n, t in counter.times.items() if n > rows)
    finally:
        bridge.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(bridge.wait, 60)
        await counter.stop()
        await connection.close()
        postgres.psql("postgres", f"SELECT pg_drop_replication_slot('{name}')")
    return {
        "rows": rows,
        "first_event_s": first - launched,
        "snapshot": rows / (snapshot_done - first),
        "streaming": rows / (streaming_done - streaming_from),
        "exit": code,
    }


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with (
            PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres,
            MockKafkaCluster(brokers=3) as kafka,
        ):
            print(f"{'rows':>9} {'first event':>12} {'snapshot ev/s':>14} {'streaming ev/s':>15}")
            for rows in sizes:
                r = await measure(postgres, kafka, rows)
                print(
                    f"{r['rows']:>9,} {r['first_event_s']:>10.1f} s {r['snapshot']:>14,.0f} "
                    f"{r['streaming']:>15,.0f}   (bridge exit code {r['exit']:.0f})",
                    flush=True,
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="events/s through the Debezium CDC bridge")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    asyncio.run(main(parser.parse_args().sizes))
