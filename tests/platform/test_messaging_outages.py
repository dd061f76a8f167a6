"""Outages of the broker and of the database delay the consumer but lose nothing and apply
nothing twice. The faults are real: a broker of the test cluster refusing connections,
PostgreSQL refusing and terminating the database's connections."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import text

from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_platform.messaging import (
    Backoff,
    ConsumerRunner,
    InboundMessage,
    Producer,
    UnitOfWork,
)
from canbao_platform.service import ServiceDefinition, create_app
from canbao_platform.settings import ServiceSettings
from tests.platform.conftest import (
    FAST,
    BrokerFaults,
    Recorder,
    committed_offsets,
    effects,
    event,
    wait_until,
)


async def test_a_broker_outage_delays_but_loses_nothing(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    broker_faults: BrokerFaults,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic, group = make_topic(), f"tests.outage.{uuid.uuid4()}"
    down = 2  # every partition's leader and the group's coordinator: the worst broker to lose
    for partition in range(3):
        broker_faults.set_leader(topic, partition, down)
    broker_faults.set_group_coordinator(group, down)
    await producer.send_many([event(topic, f"a{i}", event_id=f"a{i}") for i in range(100)])
    config = dataclasses.replace(FAST, max_batch=10)
    # 10 ms per message, so the outage falls in the middle of the stream.
    runner = make_runner([topic], Recorder(delay=0.01), name=group, config=config)
    await runner.start()
    await wait_until(lambda: runner.counts.processed >= 20)

    kafka.set_broker_down(down)
    try:
        # Produced during the outage: the producer waits for the leader to come back.
        sending = asyncio.create_task(
            producer.send_many([event(topic, f"b{i}", event_id=f"b{i}") for i in range(100)])
        )
        await asyncio.sleep(2.0)
        assert not sending.done()
        assert runner.counts.processed < 200
    finally:
        kafka.set_broker_up(down)
    await sending
    await wait_until(lambda: runner.counts.processed == 200, within=60)

    applied = await effects(database)
    assert len(applied) == 200 and set(applied.values()) == {1}
    await runner.stop()
    committed = await committed_offsets(kafka.bootstrap_servers, group, topic)
    assert sum(committed.values()) == 200


async def test_a_database_that_refuses_connections_is_waited_for(
    postgres: PostgresCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic, name = make_topic(), database.engine.url.database
    runner = make_runner([topic], Recorder())
    await runner.start()
    await wait_until(lambda: runner.health()["ready"])

    # Only this test's database is affected; the shared cluster serves the others meanwhile.
    postgres.psql("postgres", f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        postgres.psql(
            "postgres",
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
        )
        await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}") for i in range(50)])
        await wait_until(lambda: runner.counts.retries >= 3)
        health = runner.health()
        assert health["state"] == "retrying" and not health["ready"]
        assert "not currently accepting connections" in health["last_error"]
        assert runner.counts.processed == 0
    finally:
        postgres.psql("postgres", f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    await wait_until(lambda: runner.counts.processed == 50)
    applied = await effects(database)
    assert len(applied) == 50 and set(applied.values()) == {1}
    assert runner.health()["ready"]


async def test_a_connection_lost_in_the_middle_of_a_batch_rolls_the_batch_back_and_retries_it(
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """The handler's 5th message terminates its own database backend (the server going away
    mid-transaction): the effects of messages 1-4 are rolled back with it, and all are applied
    once when the batch is retried on a new connection."""
    topic = make_topic(partitions=1)
    killed = False

    class KillsItsConnectionOnce(Recorder):
        async def __call__(self, message: InboundMessage, uow: UnitOfWork) -> None:
            nonlocal killed
            await super().__call__(message, uow)
            if message.value == b"e4" and not killed:
                killed = True
                await uow.session.flush()
                connection = await uow.session.connection()
                await connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}") for i in range(10)])
    runner = make_runner([topic], KillsItsConnectionOnce())
    await runner.start()
    await wait_until(lambda: runner.counts.processed == 10)

    assert killed and runner.counts.retries >= 1
    applied = await effects(database)
    assert len(applied) == 10 and set(applied.values()) == {1}


async def test_a_producer_started_without_a_broker_waits_for_it_instead_of_failing() -> None:
    """A service comes up (not ready) while Kafka is away, rather than crashing its start-up."""
    unreachable = f"127.0.0.1:{free_port()}"
    producer = Producer(unreachable, request_timeout_ms=1_000)
    await producer.start(backoff=Backoff(0.05, 0.2))
    await wait_until(lambda: producer.health()["last_error"] is not None, within=30)
    assert producer.health()["ready"] is False
    assert "bootstrap" in producer.health()["last_error"]
    await producer.stop()  # stops promptly, though it never connected


async def test_a_service_reports_not_ready_while_its_broker_is_away(
    make_database: Callable[[], str],
) -> None:
    definition = ServiceDefinition(
        name="outage",
        settings=ServiceSettings,
        migrations=Path("no-migrations"),
        components=lambda resources: [Producer(resources.settings.kafka_bootstrap_servers)],
    )
    settings = ServiceSettings(
        database_url=make_database(), KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}"
    )
    app = create_app(definition, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["ready"] is True
    assert response.json()["checks"]["producer"]["ready"] is False


async def test_a_connection_that_died_between_batches_is_replaced(
    postgres: PostgresCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """The consumer keeps its connection from batch to batch (no pre-ping per batch): when the
    server drops it while idle (a restart, a failover, an idle timeout), the next batch fails as
    a transient error, is retried on a new connection and applied once."""
    topic, name = make_topic(), database.engine.url.database
    runner = make_runner([topic], Recorder())
    await runner.start()
    await producer.send_many([event(topic, f"before-{i}") for i in range(5)])
    await wait_until(lambda: runner.counts.processed == 5)

    postgres.psql(
        "postgres",
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )
    await producer.send_many([event(topic, f"after-{i}", event_id=f"a{i}") for i in range(5)])
    await wait_until(lambda: runner.counts.processed == 10)

    applied = await effects(database)
    assert len(applied) == 10 and set(applied.values()) == {1}
    assert runner.health()["ready"]
