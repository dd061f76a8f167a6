"""Fixtures for the messaging runtime's tests: a migrated database per test, a producer, a
runner factory with short timeouts, a recording handler, and the mock broker's fault injection.

Everything is real: PostgreSQL, the Kafka-protocol broker, aiokafka. Faults are injected where
they happen in production — in the broker (librdkafka's mock API: an error answer to a request,
a broker down) or in PostgreSQL (connections refused, backends terminated).
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from canbao_contracts.envelope import Envelope, KafkaRecord
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import (
    Backoff,
    ConsumerRunner,
    InboundMessage,
    Producer,
    RunnerConfig,
    UnitOfWork,
)
from tests.conftest import MigratedDatabase

_groups = itertools.count(1)

# Short enough for a fast suite, long enough for 2 busy cores. The session timeout matters
# beyond failure detection: when a group's last member leaves, the test broker waits
# session_timeout - 1 s before it lets the next member in (rdkafka_mock_cgrp.c).
FAST = RunnerConfig(
    max_batch=100,
    poll_timeout_ms=100,
    session_timeout_ms=3_000,
    heartbeat_interval_ms=500,
    message_retry_backoff=Backoff(0.01, 0.05),
    retry_backoff=Backoff(0.1, 0.5),
    restart_backoff=Backoff(0.1, 0.5),
    shutdown_timeout_s=10.0,
)


class EffectsBase(SQLModel, registry=registry(metadata=MetaData())):
    """The tests' own tables (a service's would be in its own registry too)."""


class Effect(EffectsBase, table=True):
    """What the test handler does to the database: one row per application of a message."""

    __tablename__ = "effects"

    id: int | None = Field(default=None, primary_key=True)
    message_key: str
    value: str


@pytest.fixture
async def database(migrated_database: MigratedDatabase) -> AsyncIterator[Database]:
    """A fresh database with the runtime's tables (the real migration) and the test tables."""
    url = await migrated_database(None)
    db = Database(url, pool_size=4)
    async with db.engine.begin() as connection:
        await connection.run_sync(EffectsBase.metadata.create_all)
    yield db
    await db.dispose()


@pytest.fixture
async def producer(kafka: MockKafkaCluster) -> AsyncIterator[Producer]:
    async with Producer(kafka.bootstrap_servers, request_timeout_ms=15_000) as p:
        yield p


@dataclass
class Recorder:
    """The test handler: records an Effect per message; `fail` decides to raise instead (after
    writing its effect, so a rollback is visible), `gate` holds it, `publish` publishes."""

    fail: Callable[[InboundMessage], BaseException | None] = lambda _: None
    gate: asyncio.Event | None = None
    delay: float = 0.0  # seconds per message, for a stream that lasts
    publish: Callable[[InboundMessage, UnitOfWork], None] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)  # set at the first message

    async def __call__(self, message: InboundMessage, uow: UnitOfWork) -> None:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        value = (message.value or b"").decode()
        uow.session.add(Effect(message_key=message.idempotency_key, value=value))
        if self.publish is not None:
            self.publish(message, uow)
        error = self.fail(message)
        if error is not None:
            await uow.session.flush()  # the effect reached the database before the failure
            raise error


@pytest.fixture
async def make_runner(
    kafka: MockKafkaCluster, database: Database, producer: Producer
) -> AsyncIterator[Callable[..., ConsumerRunner]]:
    """Build runners (stopped at the end of the test); each test's group names are unique."""
    runners: list[ConsumerRunner] = []

    def make(
        topics: list[str],
        handler: Any,
        *,
        dead_letter_topic: str = "deadletter.tests",
        name: str | None = None,
        config: RunnerConfig = FAST,
        cls: type[ConsumerRunner] = ConsumerRunner,
    ) -> ConsumerRunner:
        runner = cls(
            name=name or f"tests.{os.getpid()}.{next(_groups)}",
            topics=topics,
            handler=handler,
            database=database,
            producer=producer,
            bootstrap_servers=kafka.bootstrap_servers,
            service="tests",
            dead_letter_topic=dead_letter_topic,
            config=config,
        )
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.stop()


def event(topic: str, value: str, *, event_id: str | None = None, key: str = "k") -> KafkaRecord:
    """A CloudEvents-enveloped record as the contracts' encoder makes them."""
    envelope = Envelope(
        id=event_id or str(uuid.uuid4()),
        type="cn.canbao.test",
        source="/tests",
        time=datetime.now(UTC),
        subject=None,
        traceparent=None,
        tracestate=None,
    )
    return KafkaRecord(
        topic=topic, key=key.encode(), value=value.encode(), headers=envelope.to_headers()
    )


def change_event(topic: str, value: str, *, key: str = "k") -> KafkaRecord:
    """A record without CloudEvents headers, like Debezium's."""
    return KafkaRecord(topic=topic, key=key.encode(), value=value.encode(), headers=[])


async def wait_until(condition: Callable[[], Awaitable[bool] | bool], within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while True:
            result = condition()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.05)


EFFECT_ROWS = Effect.__table__  # type: ignore[attr-defined]


async def add_effect_row(message: InboundMessage, uow: UnitOfWork) -> None:
    """The test handler's effect as a row added with `uow.add_row` (written in bulk at commit)."""
    value = (message.value or b"").decode()
    uow.add_row(EFFECT_ROWS, {"message_key": message.idempotency_key, "value": value})


async def effects(database: Database) -> dict[str, int]:
    """How many times each message was applied."""
    async with database.sessions() as session:
        rows = await session.exec(  # type: ignore[call-overload]
            select(Effect.message_key, func.count()).group_by(Effect.message_key)
        )
        return {key: n for key, n in rows}


async def read_topic(
    bootstrap_servers: str, topic: str, count: int, within: float = 15.0
) -> list[ConsumerRecord]:
    """The first `count` records of `topic`, in partition then offset order."""
    # No group: aiokafka assigns every partition, read from the beginning.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        records: list[ConsumerRecord] = []
        async with asyncio.timeout(within):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap_servers: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (partitions without one left out)."""
    async with Producer(bootstrap_servers) as producer:
        partitions = [TopicPartition(topic, p) for p in await producer.partitions_for(topic)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        found = {tp.partition: await consumer.committed(tp) for tp in partitions}
        return {partition: offset for partition, offset in found.items() if offset is not None}
    finally:
        await consumer.stop()


# Kafka protocol numbers (kafka.apache.org/protocol): API keys and error codes.
SYNC_GROUP = 14
INVALID_REQUEST = 42


class BrokerFaults:
    """librdkafka's mock-cluster fault API, on the session's cluster.

    MockKafkaCluster (platform/local, not ours to change) exposes brokers up/down only; these
    three calls of the same C library make the faults deterministic. They reach into its
    ctypes handle: to be moved into MockKafkaCluster by its owner."""

    def __init__(self, kafka: MockKafkaCluster) -> None:
        self._lib, self._cluster = kafka._lib, kafka._cluster
        self._lib.rd_kafka_mock_push_request_errors_array.restype = None
        self._lib.rd_kafka_mock_push_request_errors_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int16,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_int),
        ]
        for name in ("rd_kafka_mock_coordinator_set", "rd_kafka_mock_partition_set_leader"):
            getattr(self._lib, name).restype = ctypes.c_int
        self._lib.rd_kafka_mock_coordinator_set.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_int32,
        ]
        self._lib.rd_kafka_mock_partition_set_leader.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.c_int32,
        ]

    def fail_next(self, api_key: int, *errors: int) -> None:
        """The next requests of `api_key` (any broker) are answered with `errors`, in order."""
        array = (ctypes.c_int * len(errors))(*errors)
        push = self._lib.rd_kafka_mock_push_request_errors_array
        push(self._cluster, api_key, len(errors), array)

    def set_group_coordinator(self, group: str, broker: int) -> None:
        set_coordinator = self._lib.rd_kafka_mock_coordinator_set
        err = set_coordinator(self._cluster, b"group", group.encode(), broker)
        assert err == 0, err

    def set_leader(self, topic: str, partition: int, broker: int) -> None:
        err = self._lib.rd_kafka_mock_partition_set_leader(
            self._cluster, topic.encode(), partition, broker
        )
        assert err == 0, err


@pytest.fixture
def broker_faults(kafka: MockKafkaCluster) -> BrokerFaults:
    return BrokerFaults(kafka)
