"""Source-to-verdict delay on the running local stack: a change committed in a business system's
table → the person's new verdict on `registry.statuses`.

    make run                      # in another terminal; wait until the demo data has flowed
    uv run --frozen python -m bench.delay [--changes 200] [--rate 5]

Suspends (AAC008 1 → 2) `--changes` paying enrolments of employee pension in `si_core.ac02`,
one transaction each at a steady `--rate` per second, as a clerk's system would, and reads
`registry.statuses` meanwhile. The delay of a verdict is its record's Kafka timestamp (when the
matching service published it) minus its `source_observed_at` (the source commit time that
Debezium reports as `source.ts_ms`, carried by identity's facts): every hop — Debezium, the CDC
topic, identity (staging, resolution, golden record, outbox), matching (consumer, evaluator,
outbox) — is inside it. Verdicts caused by earlier changes are ignored. The enrolments are set
back to paying at the end (those changes are not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from datetime import datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

from canbao_contracts.topics import STATUSES

SOURCES = "postgresql://canbao@127.0.0.1:54320/sources"
PICK = (
    "SELECT aac001, aae140, aab301 FROM si_core.ac02 WHERE aae140 = '110' AND aac008 = '1' "
    "ORDER BY md5(aac001) LIMIT $1"
)
SET_STATE = (
    "UPDATE si_core.ac02 SET aac008 = $4, updated_at = now() "
    "WHERE (aac001, aae140, aab301) = ($1, $2, $3)"
)


async def main(changes: int, rate: float, state_dir: Path, wait_s: float) -> None:
    bootstrap = (state_dir / "kafka-bootstrap").read_text().strip()
    consumer = AIOKafkaConsumer(
        STATUSES.name,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    connection = await asyncpg.connect(SOURCES)
    delays: list[float] = []
    all_arrived = asyncio.Event()
    try:
        await consumer.getmany(timeout_ms=1000)  # joins: the partitions are assigned
        await consumer.seek_to_end()
        rows = await connection.fetch(PICK, changes)
        started_ms = time.time() * 1000

        async def collect() -> None:
            async for record in consumer:
                event = json.loads(record.value)
                if "verdict" not in event:  # a StatusesWithdrawn, not a verdict
                    continue
                observed = event.get("source_observed_at")
                if observed is None:
                    continue
                observed_ms = datetime.fromisoformat(observed).timestamp() * 1000
                if observed_ms >= started_ms:
                    delays.append(record.timestamp - observed_ms)
                    if len(delays) >= len(rows):
                        all_arrived.set()

        collector = asyncio.create_task(collect())
        for row in rows:
            await connection.execute(SET_STATE, *row, "2")
            await asyncio.sleep(1 / rate)
        with contextlib.suppress(TimeoutError):  # reported: fewer verdicts than changes
            await asyncio.wait_for(all_arrived.wait(), wait_s)
        collector.cancel()
        for row in rows:
            await connection.execute(SET_STATE, *row, "1")
    finally:
        await connection.close()
        await consumer.stop()
    report(len(rows), rate, delays)


def report(changes: int, rate: float, delays: list[float]) -> None:
    print(f"{changes} source changes at {rate:g}/s; {len(delays)} verdicts arrived")
    if len(delays) < 2:
        return
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    print(
        f"source commit → verdict on registry.statuses: p50 {cuts[49]:,.0f} ms, "
        f"p90 {cuts[89]:,.0f} ms, p99 {cuts[98]:,.0f} ms, max {max(delays):,.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="source-to-verdict delay on the local stack")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=5.0, help="source changes per second")
    parser.add_argument("--state-dir", type=Path, default=Path(".state"))
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait at the end")
    args = parser.parse_args()
    asyncio.run(main(args.changes, args.rate, args.state_dir, args.wait))
