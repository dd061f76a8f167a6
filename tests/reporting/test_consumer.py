"""Reporting's consumer as it runs: its components on the real broker and database, fed with
registry.statuses events as matching publishes them; a redelivered event is applied once."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable

import sqlalchemy as sa

from canbao_contracts.envelope import encode
from canbao_contracts.events import StatusesChanged
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import ConsumerRunner, Producer
from canbao_platform.service import Resources
from canbao_reporting.app import ReportingSettings, components
from canbao_reporting.tables import person_states
from tests.platform.conftest import FAST
from tests.reporting.conftest import Reporting
from tests.reporting.people import needing_survey
from tests.reporting.test_projection import EVALUATED


async def test_the_consumer_applies_each_event_once(
    kafka: MockKafkaCluster, make_topic: Callable[..., str], reporting: Reporting
) -> None:
    topic = make_topic("registry.statuses")
    settings = ReportingSettings(
        database_url=reporting.database.url, kafka_bootstrap_servers=kafka.bootstrap_servers
    )
    running = components(
        Resources(settings=settings, database=reporting.database),
        topics=(topic,),
        config=FAST,
        clock=reporting.clock,
    )
    runner = next(c for c in running if isinstance(c, ConsumerRunner))
    event = StatusesChanged(
        person_id=uuid.uuid4(), verdict=needing_survey(), previous=None, evaluated_at=EVALUATED
    )
    record = dataclasses.replace(encode(event, source="/tests"), topic=topic)
    try:
        for component in running:
            await component.start()
        async with Producer(kafka.bootstrap_servers) as producer:
            await producer.send_many([record, record])  # at least once: the same ce_id twice
        async with asyncio.timeout(30):
            while True:
                if runner.counts.handled >= 2:
                    break
                await asyncio.sleep(0.1)
    finally:
        for component in reversed(running):
            await component.stop()
    assert (runner.counts.processed, runner.counts.duplicates) == (1, 1)
    async with reporting.database.engine.connect() as connection:
        rows = (await connection.execute(sa.select(person_states))).all()
    assert [(r.person_id, r.valid_from) for r in rows] == [(event.person_id, reporting.clock.now)]
