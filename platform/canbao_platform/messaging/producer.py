"""The one Kafka producer of a service: idempotent, acknowledged by all in-sync replicas.

`acks="all"` + `enable_idempotence=True`: a record the broker acknowledged survives a broker
loss, and the producer's own retries never duplicate or reorder it within a partition (aiokafka
keeps one batch in flight per partition). aiokafka never expires an idempotent batch, so during
a broker outage a send waits for the broker rather than failing. A short linger lets records
sent together share a request. Every send is a `send <topic>` PRODUCER span whose context
travels in `traceparent`, unless the record already carries one (an event from the outbox keeps
its handler's trace).

A service must start while its broker is down (and say it is not ready) rather than crash at
start-up: `start()` connects in the background, retrying with backoff, and sends wait for it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from canbao_contracts.envelope import KafkaRecord
from canbao_platform.messaging.failures import RESTART, Backoff, describe
from canbao_platform.telemetry import (
    extract_trace_context,
    has_trace_context,
    inject_trace_context,
)

log = logging.getLogger(__name__)
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

    async def _client(self) -> AIOKafkaProducer:
        """The connected producer, once there is one."""
        if self._connecting is None:
            raise RuntimeError("the producer is not started")
        await self._connected.wait()
        assert self._producer is not None
        return self._producer

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
            client = await self._client()
            future: asyncio.Future[RecordMetadata] = await client.send(
                record.topic, value=record.value, key=record.key, headers=headers
            )
            return future
