"""What the benchmarks that feed consumers share: an event as the consumer runner hands it to a
handler (to time a handler without the broker), and records put on the test broker with none
evicted (to time a consumer on exactly the events it was given)."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from canbao_contracts.envelope import Envelope, KafkaRecord, encode
from canbao_contracts.events import Event
from canbao_platform.messaging import InboundMessage, Producer


def inbound(event: Event, offset: int, *, source: str = "/canbao/identity") -> InboundMessage:
    record = encode(event, source=source)
    return InboundMessage(
        topic=record.topic,
        partition=0,
        offset=offset,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers),
        timestamp=0,
        envelope=Envelope.from_headers(record.headers),
    )


async def send_all(bootstrap: str, topic: str, records: list[KafkaRecord]) -> float:
    """Put `records` on `topic`, which held nothing before; the Producer's rate (records built
    beforehand), events/s. The test broker evicts the oldest messages beyond ~5 MiB per
    partition: raises if any was, so give the topic enough partitions."""
    started = time.monotonic()
    async with Producer(bootstrap, linger_ms=20, max_batch_size=256 * 1024) as p:
        for chunk in range(0, len(records), 10_000):
            await p.send_many(records[chunk : chunk + 10_000])
        rate = len(records) / (time.monotonic() - started)
        numbers = await p.partitions_for(topic)
    partitions = [TopicPartition(topic, number) for number in numbers]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        first = await consumer.beginning_offsets(partitions)
        last = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    if any(first.values()) or sum(last.values()) != len(records):
        raise RuntimeError(f"the broker evicted messages of {topic}: give it more partitions")
    return rate
