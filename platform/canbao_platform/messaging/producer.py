"""The one Kafka producer of a service: idempotent, acknowledged by all in-sync replicas.

`acks="all"` + `enable_idempotence=True`: a record the broker acknowledged survives a broker
loss, and the producer's own retries never duplicate or reorder it within a partition (aiokafka
keeps one batch in flight per partition). aiokafka never expires an idempotent batch, so during
a broker outage a send waits for the broker rather than failing. A short linger lets records
sent together share a request.

Records sent together are placed by their key as Kafka's default partitioner places them
(murmur2 of the key modulo the partition count; a record without a key anywhere) and go to each
partition as whole batches: aiokafka's per-record `send` rebuilds the set of the topic's
partitions for every record, which costs more than the rest of sending once topics have
thousands of partitions. Each call is one `send <topic>` PRODUCER span per topic, whose context
travels in `traceparent` of the records that have none; a record that already carries one (an
event from the outbox keeps its handler's trace) is linked from the span instead.

A service must start while its broker is down (and say it is not ready) rather than crash at
start-up: `start()` connects in the background, retrying with backoff, and sends wait for it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import random
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from canbao_contracts.envelope import KafkaRecord
from canbao_platform.messaging.failures import RESTART, Backoff, describe
from canbao_platform.telemetry import (
    extract_trace_context,
    has_trace_context,
    inject_trace_context,
)

log = logging.getLogger(__name__)
tracer = trace.get_tracer("canbao.messaging")
# The SDK keeps the first 128 links of a span (OTEL_SPAN_LINK_COUNT_LIMIT): no more are made.
MAX_LINKS = 128


class Producer:
    """Also a Component of the service shell: started before the consumers, stopped after."""

    name = "producer"

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "canbao",
        linger_ms: int = 5,
        request_timeout_ms: int = 30_000,
        **options: Any,
    ) -> None:
        """`options` go to AIOKafkaProducer as they are (e.g. `max_batch_size`)."""
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "request_timeout_ms": request_timeout_ms,
            **options,
        }
        self._producer: AIOKafkaProducer | None = None
        self._connected = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    async def start(self, *, backoff: Backoff = RESTART) -> None:
        """Begin connecting, in the background until the broker answers."""
        if self._connecting is None:
            self._connecting = asyncio.create_task(self._connect(backoff), name="producer")

    async def connected(self) -> None:
        """Wait until the producer is connected (`start()` first)."""
        await self._connected.wait()

    async def _connect(self, backoff: Backoff) -> None:
        for attempt in itertools.count():
            producer = AIOKafkaProducer(**self._options)
            try:
                await producer.start()
            except KafkaError as error:
                await producer.stop()  # a failed start leaves a client behind: close it
                self.last_error = describe(error)
                delay = backoff.delay(attempt)
                log.warning(
                    "producer: broker unreachable (%s); retry in %.1f s", self.last_error, delay
                )
                await asyncio.sleep(delay)
            else:
                self._producer, self.last_error = producer, None
                self._connected.set()
                return

    async def stop(self) -> None:
        """Flush what is queued and close."""
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        producer, self._producer = self._producer, None
        self._connected.clear()
        if producer is not None:
            await producer.stop()

    def health(self) -> dict[str, Any]:
        return {"ready": self._connected.is_set(), "last_error": self.last_error}

    async def __aenter__(self) -> Producer:
        await self.start()
        await self.connected()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of `topic` (waits for its metadata)."""
        partitions: set[int] = await (await self._client()).partitions_for(topic)
        return partitions

    async def send(self, record: KafkaRecord) -> None:
        """Send one record and wait until the broker acknowledged it."""
        await self.send_many([record])

    async def send_many(self, records: Iterable[KafkaRecord]) -> None:
        """Send records in order (kept per partition) and wait until all are acknowledged;
        raises the first failure (some others may have been delivered: callers retry the
        whole lot, and consumers are idempotent)."""
        by_topic: dict[str, list[KafkaRecord]] = {}
        for record in records:
            by_topic.setdefault(record.topic, []).append(record)
        if not by_topic:
            return  # nothing to send: no need to wait for a broker that may be away
        client = await self._client()
        delivered: list[asyncio.Future[Any]] = []
        for topic, group in by_topic.items():
            partitions = sorted(await client.partitions_for(topic))
            with _send_span(topic, group) as span:
                by_partition: dict[int, list[KafkaRecord]] = {}
                for record in group:
                    by_partition.setdefault(_partition(record.key, partitions), []).append(record)
                context = trace.set_span_in_context(span)
                for partition, placed in by_partition.items():
                    delivered += await self._send_batches(client, topic, partition, placed, context)
        await asyncio.gather(*delivered)

    async def _send_batches(
        self,
        client: AIOKafkaProducer,
        topic: str,
        partition: int,
        records: list[KafkaRecord],
        context: Any,
    ) -> list[asyncio.Future[Any]]:
        """Queue `records` for one partition as few batches as fit, in order."""
        delivered: list[asyncio.Future[Any]] = []
        batch = client.create_batch()
        for record in records:
            headers = list(record.headers)
            if not has_trace_context(headers):
                inject_trace_context(headers, context)
            if batch.append(key=record.key, value=record.value, timestamp=None, headers=headers):
                continue
            delivered.append(await client.send_batch(batch, topic, partition=partition))
            batch = client.create_batch()  # a fresh batch takes any one record, however large
            batch.append(key=record.key, value=record.value, timestamp=None, headers=headers)
        delivered.append(await client.send_batch(batch, topic, partition=partition))
        return delivered

    async def _client(self) -> AIOKafkaProducer:
        """The connected producer, once there is one."""
        if self._connecting is None:
            raise RuntimeError("the producer is not started")
        await self._connected.wait()
        assert self._producer is not None
        return self._producer


def _partition(key: bytes | None, partitions: list[int]) -> int:
    """Where Kafka's default partitioner puts `key` among the topic's sorted `partitions`."""
    if key is None:
        return random.choice(partitions)
    return partitions[_key_hash(key) % len(partitions)]


@functools.lru_cache(maxsize=8192)
def _key_hash(key: bytes) -> int:
    """murmur2 of `key`, positive, as the default partitioner computes it: in pure Python
    (aiokafka's), ~5 µs a key. Remembered for the last keys, since a person's events are sent
    together (identity publishes ~5 per rebuild, all keyed by the person)."""
    return int(murmur2(key)) & 0x7FFFFFFF


def _send_span(topic: str, records: list[KafkaRecord]) -> Any:
    """The PRODUCER span of sending `records` to `topic`, linked to each record's own trace."""
    links: list[Link] = []
    for record in records:
        if len(links) == MAX_LINKS:
            break
        if has_trace_context(record.headers):
            origin = trace.get_current_span(extract_trace_context(record.headers))
            if origin.get_span_context().is_valid:
                links.append(Link(origin.get_span_context()))
    return tracer.start_as_current_span(
        f"send {topic}",
        kind=SpanKind.PRODUCER,
        links=links,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.batch.message_count": len(records),
        },
    )
