"""Matching's fixtures: a migrated matching database per test, and the service's components
(consumer, re-check, outbox relay) running against the real broker on the test's own topics,
with a clock the test moves."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

import canbao_matching
from canbao_contracts.envelope import decode, encode
from canbao_contracts.events import Event, StatusesChanged, StatusesWithdrawn
from canbao_matching.app import MatchingSettings, components
from canbao_matching.evaluation import Evaluator
from canbao_matching.tables import persons
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import ConsumerRunner, Producer
from canbao_platform.messaging.tables import outbox
from canbao_platform.service import Component, Resources
from tests.conftest import MigratedDatabase
from tests.identity.conftest import harness, identity_db  # noqa: F401 (identity's fixtures)
from tests.platform.conftest import FAST

MIGRATIONS = Path(canbao_matching.__file__).parent / "migrations"


@dataclass
class Clock:
    """The only stand-in the tests use: time, moved by the test."""

    now: datetime = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in China

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def matching_db(migrated_database: MigratedDatabase) -> AsyncIterator[Database]:
    url = await migrated_database(MIGRATIONS)
    db = Database(url, pool_size=4)
    yield db
    await db.dispose()


@dataclass
class Service:
    """Matching's components on their own topics, a producer to feed them, a reader of what
    they publish."""

    kafka: MockKafkaCluster
    database: Database
    producer: Producer
    clock: Clock
    topics: dict[str, str]  # contract topic name → this test's topic
    components: list[Component] = field(default_factory=list)
    _reader: AIOKafkaConsumer | None = None
    received: list[StatusesChanged | StatusesWithdrawn] = field(default_factory=list)
    arrived: list[datetime] = field(default_factory=list)  # when each was read, wall clock
    sent: int = 0

    @property
    def evaluator(self) -> Evaluator:
        return next(c for c in self.components if isinstance(c, Evaluator))

    async def publish(self, events: Iterable[Event], *, ids: Iterable[str] | None = None) -> None:
        """Events as identity and survey publish them, onto this test's topics; `ids` to send
        the same event (same ce_id) again."""
        ids = list(ids) if ids is not None else None
        records = []
        for n, event in enumerate(events):
            record = encode(event, source="/tests", id=None if ids is None else ids[n])
            records.append(dataclasses.replace(record, topic=self.topics[record.topic]))
        await self.producer.send_many(records)
        self.sent += len(records)

    async def statuses(
        self, count: int, within: float = 30.0
    ) -> list[StatusesChanged | StatusesWithdrawn]:
        """Wait until `count` events have been published on registry.statuses in all; return
        them all."""
        if self._reader is None:
            self._reader = AIOKafkaConsumer(
                self.topics["registry.statuses"],
                bootstrap_servers=self.kafka.bootstrap_servers,
                auto_offset_reset="earliest",
            )
            await self._reader.start()
        async with asyncio.timeout(within):
            while len(self.received) < count:
                for batch in (await self._reader.getmany(timeout_ms=200)).values():
                    for record in batch:
                        _, event = decode(record.headers, record.value)
                        assert isinstance(event, StatusesChanged | StatusesWithdrawn)
                        self.received.append(event)
                        self.arrived.append(datetime.now(UTC))
        return list(self.received)

    async def quiet(
        self, seconds: float = 1.5, within: float = 60.0
    ) -> list[StatusesChanged | StatusesWithdrawn]:
        """Everything published once the consumer has handled every message sent, nobody is
        pending, the outbox is empty and nothing more comes for `seconds`."""
        runner = next(c for c in self.components if isinstance(c, ConsumerRunner))
        async with asyncio.timeout(within):
            while True:
                if runner.counts.handled >= self.sent and not await self._backlog():
                    break
                await asyncio.sleep(0.1)
        while True:
            before = len(self.received)
            try:
                await self.statuses(before + 1, within=seconds)
            except TimeoutError:
                return list(self.received)

    async def _backlog(self) -> int:
        """People not yet evaluated and statuses not yet relayed."""
        async with self.database.engine.connect() as connection:
            pending = sa.select(sa.func.count()).select_from(persons).where(persons.c.pending)
            relaying = sa.select(sa.func.count()).select_from(outbox)
            return (await connection.scalar(pending) or 0) + (
                await connection.scalar(relaying) or 0
            )

    def latest(self, person_id: UUID) -> StatusesChanged:
        """The person's newest verdict published (a withdrawal, if newer, is not one)."""
        mine = [e for e in self.received if e.person_id == person_id]
        return [e for e in mine if isinstance(e, StatusesChanged)][-1]

    async def close(self) -> None:
        for component in reversed(self.components):
            await component.stop()
        if self._reader is not None:
            await self._reader.stop()


@pytest.fixture
def matching_kafka() -> Iterator[MockKafkaCluster]:
    """A broker per test: on the session's, the consumer's group "matching" would let this
    test's member in only session_timeout - 1 s after the previous test's left (tests/platform
    FAST). The test broker is in-process and starts in milliseconds."""
    with MockKafkaCluster(brokers=3) as cluster:
        yield cluster


@pytest.fixture
async def service(
    matching_kafka: MockKafkaCluster, matching_db: Database
) -> AsyncIterator[Service]:
    kafka = matching_kafka
    topics = {
        name: f"{name}.test"
        for name in (
            "registry.persons",
            "registry.facts",
            "registry.collections",
            "registry.statuses",
        )
    }
    for topic in topics.values():
        kafka.create_topic(topic, 3)
    settings = MatchingSettings(
        database_url=matching_db.url, kafka_bootstrap_servers=kafka.bootstrap_servers
    )
    clock = Clock()
    async with Producer(kafka.bootstrap_servers) as producer:
        running = Service(kafka, matching_db, producer, clock, topics)
        running.components = components(
            Resources(settings=settings, database=matching_db),
            config=FAST,
            clock=clock,
            topics=(
                topics["registry.persons"],
                topics["registry.facts"],
                topics["registry.collections"],
            ),
            statuses_topic=topics["registry.statuses"],
            poll_interval_s=0.1,
        )
        try:
            for component in running.components:
                await component.start()
            yield running
        finally:
            await running.close()
