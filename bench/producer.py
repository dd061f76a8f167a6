"""The producer's cost per record against aiokafka's per-record send, by partition count.

    uv run --frozen python -m bench.producer [--count 50000] [--partitions 12 1345] [--chunks 500]

For `count` records of ~200 B with CloudEvents headers (bench.messaging's records), sent in
chunks (500: the outbox relay's batch) to a fresh topic of each partition count:

* **aiokafka send**: `AIOKafkaProducer.send` per record, then waiting for all; what the platform's
  Producer did before it placed records itself. aiokafka rebuilds the set of the topic's
  partitions for every record, so its cost grows with the partition count;
* **Producer**: `canbao_platform.messaging.Producer.send_many`, which places each record by key
  (the default partitioner's murmur2) and queues whole batches per partition.

CPU is the event loop thread's own (`time.thread_time`): the in-process test broker runs on
threads of its own and is left out. Both send the same records with the same producer options.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from bench.messaging import record
from canbao_contracts.envelope import KafkaRecord
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import Producer

LINGER_MS = 5  # the Producer's default
OPTIONS = {"acks": "all", "enable_idempotence": True, "linger_ms": LINGER_MS}


async def aiokafka_send(
    bootstrap: str, records: list[KafkaRecord], chunk_size: int
) -> Callable[[], Awaitable[None]]:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, **OPTIONS)
    await client.start()

    async def send() -> None:
        for chunk in range(0, len(records), chunk_size):
            futures = [
                await client.send(r.topic, value=r.value, key=r.key, headers=list(r.headers))
                for r in records[chunk : chunk + chunk_size]
            ]
            await asyncio.gather(*futures)
        await client.stop()

    return send


async def producer_send(
    bootstrap: str, records: list[KafkaRecord], chunk_size: int
) -> Callable[[], Awaitable[None]]:
    producer = Producer(bootstrap, linger_ms=LINGER_MS)
    await producer.start()
    await producer.connected()

    async def send() -> None:
        for chunk in range(0, len(records), chunk_size):
            await producer.send_many(records[chunk : chunk + chunk_size])
        await producer.stop()

    return send


async def measure(
    kafka: MockKafkaCluster,
    topic: str,
    count: int,
    chunk_size: int,
    make: Callable[[str, list[KafkaRecord], int], Awaitable[Callable[[], Awaitable[None]]]],
) -> tuple[float, float]:
    """Events/s and CPU µs per event of sending `count` records to `topic`."""
    records = [record(topic, n, 200) for n in range(count)]
    send = await make(kafka.bootstrap_servers, records, chunk_size)
    wall, cpu = time.monotonic(), time.thread_time()
    await send()
    wall, cpu = time.monotonic() - wall, time.thread_time() - cpu
    return count / wall, cpu / count * 1e6


async def main(count: int, partition_counts: list[int], chunk_sizes: list[int]) -> None:
    with MockKafkaCluster(brokers=3) as kafka:
        print(f"{count:,} records of ~200 B; CPU of the loop thread; ratio to aiokafka send\n")
        print(
            f"{'partitions':>10} {'chunk':>6} {'sender':>14} {'events/s':>9} {'µs/event':>9} "
            f"{'ratio':>6}"
        )
        for partitions in partition_counts:
            for chunk_size in chunk_sizes:
                base = 0.0
                for label, make in (("aiokafka send", aiokafka_send), ("Producer", producer_send)):
                    topic = f"bench.{partitions}.{chunk_size}.{label.split()[0].lower()}"
                    kafka.create_topic(topic, partitions)
                    rate, cpu = await measure(kafka, topic, count, chunk_size, make)
                    base = base or cpu
                    print(
                        f"{partitions:>10,} {chunk_size:>6,} {label:>14} {rate:>9,.0f} "
                        f"{cpu:>9.1f} {base / cpu:>6.2f}",
                        flush=True,
                    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, nargs="+", default=[12, 1345])
    parser.add_argument("--chunks", type=int, nargs="+", default=[500])
    arguments = parser.parse_args()
    asyncio.run(main(arguments.count, arguments.partitions, arguments.chunks))
