"""Publishes Debezium's events to Kafka, unchanged, and the source offset after them.

Runs on the bridge's asyncio thread. `publish()` returns only when the broker acknowledged every
event of the batch (acks=all, idempotent producer) and then the batch's source offset: the
Debezium batch counts as processed when the handler returns, so nothing may be pending then.

The messaging runtime of canbao_platform was not there when this was written; the bridge is a
plain pipe of bytes (no CloudEvents headers: the value *is* the Debezium envelope), so it uses
AIOKafkaProducer directly, here and nowhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata, TopicPartition

from canbao_stack.cdc.backpressure import BacklogGuard
from canbao_stack.cdc.limits import MAX_CHUNK_BYTES, RECORD_OVERHEAD_BYTES
from canbao_stack.cdc.offsets import SourceOffset


@dataclass(frozen=True, slots=True)
class DebeziumRecord:
    """One Debezium record as bytes: key and value exactly as the JSON converter made them."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: the tombstone Debezium emits after a delete

    @property
    def size(self) -> int:
        return len(self.key or b"") + len(self.value or b"") + RECORD_OVERHEAD_BYTES


@dataclass
class PublishCounters:
    events: int = 0
    snapshot_events: int = 0
    tombstones: int = 0
    bytes: int = 0
    batches: int = 0
    snapshot_running: bool = False
    first_event_at: float | None = None  # time.monotonic()
    snapshot_done_at: float | None = None
    bytes_by_partition: dict[str, int] = field(default_factory=dict)  # "topic[partition]"


class Publisher:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        offsets_topic: str,
        guard: BacklogGuard | None,
        chunk_bytes: int = MAX_CHUNK_BYTES,
        chunk_messages: int = 2_048,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._offsets_topic = offsets_topic
        self._guard = guard
        self._chunk_bytes = chunk_bytes
        self._chunk_messages = chunk_messages
        self._producer: AIOKafkaProducer | None = None
        self.counters = PublishCounters()

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            request_timeout_ms=30_000,
        )
        await self._producer.start()
        if self._guard is not None:
            await self._guard.start()

    async def close(self) -> None:
        if self._guard is not None:
            await self._guard.close()
        if self._producer is not None:
            await self._producer.stop()  # flushes whatever is still buffered

    async def publish(self, events: list[DebeziumRecord], offset: SourceOffset | None) -> None:
        assert self._producer is not None
        if self.counters.first_event_at is None:
            self.counters.first_event_at = time.monotonic()
        for chunk in _chunks(events, self._chunk_bytes, self._chunk_messages):
            size = sum(event.size for event in chunk)
            if self._guard is not None:
                await self._guard.admit(size, len(chunk))
            sent = [await self._producer.send(e.topic, e.value, key=e.key) for e in chunk]
            acknowledged: list[RecordMetadata] = await asyncio.gather(*sent)
            self._account(chunk, acknowledged, snapshot=offset is not None and offset.snapshot)
        if offset is not None:
            # After the events, never before: a stored offset promises they are in Kafka.
            await (await self._producer.send(self._offsets_topic, offset.value, key=offset.key))
            self._phase(offset)
        self.counters.batches += 1

    def _phase(self, offset: SourceOffset) -> None:
        counters = self.counters
        counters.snapshot_running = not offset.snapshot_completed
        if offset.snapshot and offset.snapshot_completed:
            counters.snapshot_done_at = time.monotonic()

    def _account(
        self, chunk: list[DebeziumRecord], acks: list[RecordMetadata], *, snapshot: bool
    ) -> None:
        per_partition: dict[TopicPartition, list[int]] = defaultdict(lambda: [2**63, -1, 0])
        for event, ack in zip(chunk, acks, strict=True):
            span = per_partition[TopicPartition(ack.topic, ack.partition)]
            span[0], span[1] = min(span[0], ack.offset), max(span[1], ack.offset)
            span[2] += event.size
        counters = self.counters
        for tp, (first, last, nbytes) in per_partition.items():
            if self._guard is not None:
                self._guard.published(tp, first, last + 1, nbytes)
            name = f"{tp.topic}[{tp.partition}]"
            counters.bytes_by_partition[name] = counters.bytes_by_partition.get(name, 0) + nbytes
        counters.events += len(chunk)
        counters.tombstones += sum(1 for event in chunk if event.value is None)
        counters.bytes += sum(event.size for event in chunk)
        if snapshot:
            counters.snapshot_events += len(chunk)


def _chunks(
    events: list[DebeziumRecord], max_bytes: int, max_messages: int
) -> Iterator[list[DebeziumRecord]]:
    chunk: list[DebeziumRecord] = []
    size = 0
    for event in events:
        if chunk and (size + event.size > max_bytes or len(chunk) >= max_messages):
            yield chunk
            chunk, size = [], 0
        chunk.append(event)
        size += event.size
    if chunk:
        yield chunk
