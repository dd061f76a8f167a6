"""The transactional outbox: an event is published if and only if its transaction committed,
in the order it was written, by one relay per database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import insert
from sqlmodel import select

from canbao_contracts.envelope import KafkaRecord
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import (
    ConsumerRunner,
    InboundMessage,
    OutboxRelay,
    PermanentError,
    Producer,
    UnitOfWork,
    unit_of_work,
)
from canbao_platform.messaging.tables import OutboxMessage, outbox
from tests.platform.conftest import (
    BrokerFaults,
    Effect,
    Recorder,
    event,
    read_topic,
    wait_until,
)


async def outbox_rows(database: Database) -> list[OutboxMessage]:
    async with database.sessions() as session:
        return list((await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all())


@pytest.fixture
async def relays(database: Database, producer: Producer) -> AsyncIterator[list[OutboxRelay]]:
    started: list[OutboxRelay] = []
    yield started
    for relay in started:
        await relay.stop()


async def test_a_handler_that_fails_after_publishing_leaves_no_outbox_row(
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic, downstream = make_topic(), make_topic("downstream")

    def announce(message: InboundMessage, uow: UnitOfWork) -> None:
        value = (message.value or b"") + b" announced"
        uow.publish(event(downstream, value.decode(), key="person-1"))

    def fail(message: InboundMessage) -> BaseException | None:
        return PermanentError("cannot apply") if message.value == b"bad" else None

    await producer.send_many([event(topic, "good", event_id="g"), event(topic, "bad")])
    runner = make_runner([topic], Recorder(fail=fail, publish=announce))
    await runner.start()
    await wait_until(lambda: runner.counts.processed == 1 and runner.counts.dead_lettered == 1)

    rows = await outbox_rows(database)
    assert [(row.topic, row.value) for row in rows] == [(downstream, b"good announced")]
    assert "ce_id" in rows[0].header_names  # the envelope travels with the row


async def test_headers_keys_and_values_reach_the_topic_byte_for_byte(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    relays: list[OutboxRelay],
) -> None:
    """Each record's headers are written as text (array literals, canbao_platform.bulk) with the
    others of its transaction in one statement: whatever their bytes, how many there are or
    whether there are none, each record gets its own back, in their order."""
    topic = make_topic(partitions=1)
    awkward = [
        ('quote"d', bytes(range(256))),
        ("back\\slash", b""),
        ("{brace,comma}", b'"\\x00"'),
        ("", b"NULL"),
        ("键 名", "值".encode()),
        ("same", b"1"),
        ("same", b"2"),
    ]
    sent = [
        KafkaRecord(topic=topic, key=None, value=None, headers=awkward),
        KafkaRecord(topic=topic, key=b"\x00k", value=bytes(range(255, -1, -1)), headers=[]),
        KafkaRecord(topic=topic, key=b"", value=b"", headers=awkward[:1]),
    ]
    async with unit_of_work(database, service="tests") as uow:
        for record in sent:
            uow.publish(record)
    relay = OutboxRelay(database, producer, poll_interval_s=0.1)
    relays.append(relay)
    await relay.start()
    await wait_until(lambda: relay.relayed == 3)

    records = await read_topic(kafka.bootstrap_servers, topic, 3)
    assert [(r.key, r.value) for r in records] == [(s.key, s.value) for s in sent]
    for record, original in zip(records, sent, strict=True):
        # The unit of work adds the trace context to every record it publishes.
        assert [h for h in record.headers if h[0] != "traceparent"] == original.headers


async def test_a_unit_of_work_that_raises_publishes_nothing(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(database, service="tests") as uow:
            uow.session.add(Effect(message_key="request-1", value="changed"))
            uow.publish(event("registry.persons", "x"))
            raise RuntimeError("the request failed after publishing")
    assert await outbox_rows(database) == []

    async with unit_of_work(database, service="tests") as uow:
        uow.session.add(Effect(message_key="request-2", value="changed"))
        uow.publish(event("registry.persons", "y"))
    assert [row.value for row in await outbox_rows(database)] == [b"y"]


async def test_the_relay_publishes_in_order_and_empties_the_outbox(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    relays: list[OutboxRelay],
) -> None:
    topic = make_topic()
    people = [f"person-{p}" for p in range(5)]
    for batch in range(4):  # four transactions, each writing 50 events for 5 people
        async with unit_of_work(database, service="tests") as uow:
            for n in range(50):
                sequence = batch * 50 + n
                uow.publish(event(topic, str(sequence), key=people[sequence % 5]))
    relay = OutboxRelay(database, producer, batch_size=64, poll_interval_s=0.2)
    relays.append(relay)
    await relay.start()
    await wait_until(lambda: relay.relayed == 200)

    records = await read_topic(kafka.bootstrap_servers, topic, 200)
    for person in people:
        sequence = [int(r.value) for r in records if r.key == person.encode()]
        assert sequence == sorted(sequence) and len(sequence) == 40
    assert await outbox_rows(database) == []
    # A new row wakes the relay through NOTIFY, without waiting for a poll.
    async with unit_of_work(database, service="tests") as uow:
        uow.publish(event(topic, "200", key=people[0]))
    await wait_until(lambda: relay.relayed == 201, within=5)


async def test_an_event_written_first_is_published_first_even_if_committed_last(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    relays: list[OutboxRelay],
) -> None:
    """Two transactions write events for the same person: the first gets the lower id but
    commits last. The relay must not publish the second before the first."""
    topic = make_topic(partitions=1)
    relay = OutboxRelay(database, producer, poll_interval_s=0.1)
    relays.append(relay)
    await relay.start()
    async with database.sessions() as session, session.begin():
        # The first transaction's row is written (its id allocated), not committed: a unit of
        # work writes its rows just before it commits, which narrows this window, not closes it.
        first = {
            "topic": topic,
            "key": b"p1",
            "value": b"first",
            "header_names": [],
            "header_values": [],
        }
        await (await session.connection()).execute(insert(outbox).values(first))
        async with unit_of_work(database, service="tests") as later:
            later.publish(event(topic, "second", key="p1"))
        await asyncio.sleep(1.0)  # the relay polls ten times meanwhile
        assert relay.relayed == 0  # "second" is committed, but waits for "first"
    await wait_until(lambda: relay.relayed == 2)
    records = await read_topic(kafka.bootstrap_servers, topic, 2)
    assert [r.value for r in records] == [b"first", b"second"]


async def test_one_relay_per_database_is_active_and_a_standby_takes_over(
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    relays: list[OutboxRelay],
) -> None:
    topic = make_topic()
    first = OutboxRelay(database, producer, poll_interval_s=0.2)
    second = OutboxRelay(database, producer, poll_interval_s=0.2)
    relays.extend([first, second])
    await first.start()
    await wait_until(lambda: first.role == "active")
    await second.start()
    await asyncio.sleep(0.5)
    assert second.role == "standby"

    await first.stop()
    await wait_until(lambda: second.role == "active", within=5)
    async with unit_of_work(database, service="tests") as uow:
        uow.publish(event(topic, "after the takeover"))
    await wait_until(lambda: second.relayed == 1)


async def test_the_relay_survives_a_broker_outage(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    broker_faults: BrokerFaults,
    relays: list[OutboxRelay],
) -> None:
    topic, leader = make_topic(partitions=1), 1
    broker_faults.set_leader(topic, 0, leader)
    relay = OutboxRelay(database, producer, poll_interval_s=0.2)
    relays.append(relay)
    await relay.start()
    await wait_until(lambda: relay.role == "active")

    kafka.set_broker_down(leader)
    try:
        async with unit_of_work(database, service="tests") as uow:
            for n in range(10):
                uow.publish(event(topic, str(n)))
        await asyncio.sleep(1.5)  # the idempotent producer keeps retrying: nothing acknowledged
        assert relay.relayed == 0
        assert len(await outbox_rows(database)) == 10  # so nothing deleted
    finally:
        kafka.set_broker_up(leader)

    await wait_until(lambda: relay.relayed == 10, within=30)
    assert await outbox_rows(database) == []
    values = [int(r.value) for r in await read_topic(kafka.bootstrap_servers, topic, 10)]
    assert values == list(range(10))
