"""The one Kafka producer of a service: idempotent, acknowledged by all in-sync replicas.

`acks="all"` + `enable_idempotence=True`: a record the broker acknowledged survives a broker
loss, and the producer's own retries never duplicate or reorder it within a partition (aiokafka
keeps one batch in flight per partition). aiokafka never expires an idempotent batch, so during
a broker outage a send waits for the broker rather than failing. A short linger lets records
sent together share a request. Every send is a `send <topic>` PRODUCER span whose context
travels in `traceparent`, unless the record already carries one (an event from the outbox keeps
its handler's trace).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from canbao_contracts.envelope import KafkaRecord
from canbao_platform.telemetry import (
    extract_trace_context,
    has_trace_context,
    inject_trace_context,
)

tracer = trace.get_tracer("canbao.messaging")


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
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            request_timeout_ms=request_timeout_ms,
            **options,
        )
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self._producer.start()
            self._started = True

    async def stop(self) -> None:
        """Flush what is queued and close."""
        if self._started:
            self._started = False
            await self._producer.stop()

    def health(self) -> dict[str, Any]:
        return {"ready": self._started}

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def partitions_for(self, topic: str) -> set[int]:
        """The partition numbers of `topic` (waits for its metadata)."""
        partitions: set[int] = await self._producer.partitions_for(topic)
        return partitions

    async def send(self, record: KafkaRecord) -> RecordMetadata:
        """Send one record and wait until the broker acknowledged it."""
        delivered = await self._enqueue(record)
        return await delivered

    async def send_many(self, records: Iterable[KafkaRecord]) -> list[RecordMetadata]:
        """Send records in order (kept per partition) and wait until all are acknowledged;
        raises the first failure (some others may have been delivered: callers retry the
        whole lot, and consumers are idempotent)."""
        pending = [await self._enqueue(record) for record in records]
        return list(await asyncio.gather(*pending))

    async def _enqueue(self, record: KafkaRecord) -> asyncio.Future[RecordMetadata]:
        headers = list(record.headers)
        traced = has_trace_context(headers)
        parent = extract_trace_context(headers) if traced else None
        with tracer.start_as_current_span(
            f"send {record.topic}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": record.topic,
            },
        ):
            if not traced:
                inject_trace_context(headers)
            future: asyncio.Future[RecordMetadata] = await self._producer.send(
                record.topic, value=record.value, key=record.key, headers=headers
            )
            return future
