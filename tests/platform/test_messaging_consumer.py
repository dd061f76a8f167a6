"""The consumer runner's promises: each message applied once, poison dead-lettered, offsets
committed after the database, shutdown commits what was applied, fatal group errors restart."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from sqlmodel import select

from canbao_contracts.envelope import encode
from canbao_contracts.events import Event, PersonsMerged
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import (
    DLQ_CONSUMER,
    DLQ_FAILED_AT,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    Backoff,
    ConsumerRunner,
    Handler,
    InboundMessage,
    PermanentError,
    Producer,
    UnitOfWork,
    prune_processed_messages,
)
from canbao_platform.messaging.group import Batches, GroupConsumer
from canbao_platform.messaging.pruning import ProcessedMessagesPruner
from canbao_platform.messaging.tables import DeadLetter, processed_messages
from canbao_platform.service import ServiceDefinition, create_app
from canbao_platform.settings import ServiceSettings
from tests.platform.conftest import (
    FAST,
    INVALID_REQUEST,
    SYNC_GROUP,
    BrokerFaults,
    Effect,
    Recorder,
    add_effect_row,
    change_event,
    committed_offsets,
    effects,
    event,
    read_topic,
    wait_until,
)


async def test_an_event_published_twice_is_applied_once(
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic = make_topic()
    first, second = event(topic, "a", event_id="evt-1"), event(topic, "b", event_id="evt-2")
    await producer.send_many([first, first, second])  # same ce_id twice, in one batch
    runner = make_runner([topic], Recorder())
    await runner.start()
    await wait_until(lambda: runner.counts.handled == 3)

    await producer.send(first)  # and once more, in a later batch
    await wait_until(lambda: runner.counts.duplicates == 2)
    # Once more beside a new one: the batch's claim of both fails on the first, and the batch
    # is applied again claiming only the new one.
    await producer.send_many([first, event(topic, "c", event_id="evt-3")])
    await wait_until(lambda: runner.counts.handled == 6)

    assert await effects(database) == {"evt-1": 1, "evt-2": 1, "evt-3": 1}
    assert (runner.counts.processed, runner.counts.duplicates) == (3, 3)


async def test_a_poison_event_goes_to_the_dead_letter_topic_and_the_consumer_goes_on(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic, dead_letters = make_topic(partitions=1), make_topic("deadletter", partitions=1)

    def fail(message: InboundMessage) -> BaseException | None:
        if message.value == b"poison":
            return PermanentError("person 42 has no birth date")
        if message.value == b"bug":
            return RuntimeError("handler bug")
        return None

    handler = Recorder(fail=fail)
    malformed = change_event(topic, "no type")
    malformed.headers.extend([("ce_id", b"evt-m"), ("ce_specversion", b"1.0")])
    sent = [
        event(topic, "good-1", event_id="g1"),
        event(topic, "poison", event_id="p1"),
        malformed,
        event(topic, "bug", event_id="b1"),
        event(topic, "good-2", event_id="g2"),
    ]
    await producer.send_many(sent)
    runner = make_runner([topic], handler, dead_letter_topic=dead_letters)
    await runner.start()
    await wait_until(lambda: runner.counts.processed == 2 and runner.counts.dead_lettered == 3)

    # The good events around the poison are applied; the poison's own effect was rolled back.
    assert await effects(database) == {"g1": 1, "g2": 1}
    letters = await read_topic(kafka.bootstrap_servers, dead_letters, 3)
    assert [r.value for r in letters] == [b"poison", b"no type", b"bug"]
    for letter, original_offset in zip(letters, (1, 2, 3), strict=True):
        headers = dict(letter.headers)
        assert headers[DLQ_ORIGINAL_TOPIC] == topic.encode()
        assert headers[DLQ_ORIGINAL_PARTITION] == b"0"
        assert headers[DLQ_ORIGINAL_OFFSET] == str(original_offset).encode()
        assert headers[DLQ_CONSUMER] == runner.name.encode()
        assert DLQ_FAILED_AT in headers
        assert letter.key == b"k"
    reasons = [dict(r.headers)[DLQ_REASON].decode() for r in letters]
    assert reasons[0] == "PermanentError: person 42 has no birth date"
    assert reasons[1].startswith("MalformedEnvelope")
    assert reasons[2] == "RuntimeError: handler bug"
    assert dict(letters[0].headers)["ce_id"] == b"p1"  # the original headers travel along
    # The unknown error was tried max_attempts times (fast path + careful path), then given up.
    assert runner.counts.retries == runner.config.max_attempts - 1
    async with database.sessions() as session:
        recorded = (await session.exec(select(DeadLetter).order_by(DeadLetter.id))).all()
    assert [(d.offset, d.event_id) for d in recorded] == [(1, "p1"), (2, None), (3, "b1")]
    # Everything was consumed: the offsets are past the last message.
    assert await committed_offsets(kafka.bootstrap_servers, runner.name, topic) == {0: 5}
    # The logs say where and which class of error, never a key, a value or an error's text.
    logged = caplog.text
    assert f"{topic}:0:1 (PermanentError)" in logged
    assert not any(secret in logged for secret in ("person 42", "handler bug", "good-1", "k'"))


class SimulatedCrash(BaseException):
    """The process dying: not an Exception, so the runner's supervisor does not catch it."""


class CrashAfterDatabaseCommit(ConsumerRunner):
    """Dies at the worst moment: its batch is committed in the database, its offsets are not."""

    crashed = False

    async def _commit_offsets(self, group: GroupConsumer, batches: Batches) -> None:
        self.crashed = True
        raise SimulatedCrash


async def test_a_second_instance_joining_mid_stream_neither_loses_nor_doubles(
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """Scaling out on the test broker, which meets a real rebalance bug: it marks the group
    synced as soon as the leader's SyncGroup has assigned every member, so a follower's SyncGroup
    arriving after it is answered INVALID_REQUEST (rdkafka_mock_cgrp.c, sync_check counts
    assignments, not requests). In one process the follower loses that race every time: it
    restarts with backoff, each attempt costs the group a rebalance, and meanwhile commits fail
    with REBALANCE_IN_PROGRESS so batches come again. None of it may lose or double an effect."""
    topic = make_topic(partitions=6)
    people = [f"person-{n}" for n in range(12)]
    await producer.send_many(
        [event(topic, f"e{i}", event_id=f"e{i}", key=people[i % 12]) for i in range(300)]
    )
    config = dataclasses.replace(FAST, max_batch=10)
    first = make_runner([topic], Recorder(delay=0.01), config=config)
    await first.start()
    await wait_until(lambda: first.counts.processed >= 30)
    patient = dataclasses.replace(config, restart_backoff=Backoff(2.0, 4.0))
    second = make_runner([topic], Recorder(delay=0.01), name=first.name, config=patient)
    await second.start()

    async def all_applied() -> bool:
        return len(await effects(database)) == 300

    await wait_until(all_applied, within=60)
    assert set((await effects(database)).values()) == {1}
    assert first.counts.processed + second.counts.processed == 300
    assert first.health()["running"] and second.health()["running"]


# The effect written by the session (an ORM object) or added as a row for the bulk INSERT.
EFFECT_HANDLERS = pytest.mark.parametrize(
    "handler", [Recorder, lambda: add_effect_row], ids=["session", "add_row"]
)


@EFFECT_HANDLERS
async def test_a_crash_between_database_commit_and_offset_commit_has_no_second_effect(
    handler: Callable[[], Handler],
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic = make_topic()
    # CloudEvents (idempotency key = ce_id) and Debezium-like (key = a digest of the content).
    await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}") for i in range(10)])
    await producer.send_many([change_event(topic, f"c{i}", key=f"c{i}") for i in range(10)])
    crashing = make_runner([topic], handler(), cls=CrashAfterDatabaseCommit)
    await crashing.start()
    await wait_until(lambda: crashing.crashed and not crashing.health()["running"])
    applied_before_crash = await effects(database)
    assert applied_before_crash and set(applied_before_crash.values()) == {1}
    assert await committed_offsets(kafka.bootstrap_servers, crashing.name, topic) == {}

    restarted = make_runner([topic], handler(), name=crashing.name)  # same group, new process
    await restarted.start()
    await wait_until(lambda: restarted.counts.handled == 20)

    applied = await effects(database)
    assert len(applied) == 20 and set(applied.values()) == {1}
    assert restarted.counts.duplicates == len(applied_before_crash)


async def test_change_events_at_offsets_reused_by_a_new_broker_are_applied(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """A change feed's topic recreated (a new cluster, a failover, the local stack's test broker
    started empty again) numbers its messages from offset 0 again, while the service keeps its
    database: the new changes are applied, and a change delivered again — the same record, as a
    mirror copies it with its timestamp — is still skipped."""
    topic = make_topic(partitions=1)
    stamped = 1_733_450_000_000  # the records' own timestamps (ms), as their producer set them
    before = [(f"row-{i}", f"before-{i}", stamped + i) for i in range(5)]
    await _send_stamped(kafka.bootstrap_servers, topic, before)
    first = make_runner([topic], Recorder())
    await first.start()
    await wait_until(lambda: first.counts.processed == 5)
    await first.stop()

    with MockKafkaCluster(brokers=1) as recreated:
        recreated.create_topic(topic, 1)
        after = [(f"row-{i}", f"after-{i}", stamped + 100 + i) for i in range(5)]
        # Offsets 0-4 again, then the first record mirrored (its bytes and timestamp).
        await _send_stamped(recreated.bootstrap_servers, topic, [*after, before[0]])
        again = ConsumerRunner(
            name=first.name,
            topics=[topic],
            handler=Recorder(),
            database=database,
            producer=producer,
            bootstrap_servers=recreated.bootstrap_servers,
            service="tests",
            dead_letter_topic="deadletter.tests",
            config=FAST,
        )
        await again.start()
        try:
            await wait_until(lambda: again.counts.handled == 6)
        finally:
            await again.stop()

    assert (again.counts.processed, again.counts.duplicates) == (5, 1)
    async with database.sessions() as session:
        values = (await session.exec(select(Effect.value))).all()
    assert sorted(values) == sorted(
        [f"before-{i}" for i in range(5)] + [f"after-{i}" for i in range(5)]
    )


async def test_change_events_are_recorded_in_time_order(
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """A change event's idempotency record starts with its timestamp, written to a fixed width:
    the records of a feed sort as the feed was written, so each is added at the end of the
    idempotency index, like the time-ordered ids of events (envelope.new_event_id). The same
    content sent again as a new record is applied again: harmless, the consumers order changes
    by source position."""
    topic = make_topic(partitions=1)
    for i in range(3):
        await producer.send_many([change_event(topic, f"change-{i}", key="row")])
        await asyncio.sleep(0.005)  # each a few milliseconds later than the one before
    await producer.send_many([change_event(topic, "change-0", key="row")])  # a new record
    runner = make_runner([topic], Recorder())
    await runner.start()
    await wait_until(lambda: runner.counts.handled == 4)
    await runner.stop()

    async with database.sessions() as session:
        keys = (
            await session.exec(
                select(processed_messages.c.message_key).where(
                    processed_messages.c.consumer == runner.name
                )
            )
        ).all()
        applied = (
            await session.exec(select(Effect.message_key, Effect.value).order_by(Effect.id))
        ).all()
    assert [value for _, value in applied] == [f"change-{i}" for i in (0, 1, 2, 0)]
    in_feed_order = [key for key, _ in applied]
    assert in_feed_order == sorted(in_feed_order) and len(set(in_feed_order)) == 4
    assert sorted(keys) == in_feed_order
    assert all(key[13:21] == ":sha256:" and key[:13].isdigit() for key in keys)


async def _send_stamped(bootstrap: str, topic: str, records: list[tuple[str, str, int]]) -> None:
    """(key, value, timestamp in ms) records without CloudEvents headers, like Debezium's, each
    with the timestamp given (the platform's producer lets the client stamp them)."""
    sender = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await sender.start()
    try:
        for key, value, timestamp in records:
            await sender.send_and_wait(
                topic, value.encode(), key=key.encode(), timestamp_ms=timestamp
            )
    finally:
        await sender.stop()


async def test_shutdown_commits_what_was_applied(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic = make_topic()
    await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}") for i in range(30)])
    gate = asyncio.Event()
    handler = Recorder(gate=gate)
    first = make_runner([topic], handler)
    await first.start()
    await wait_until(handler.started.is_set)
    stopping = asyncio.create_task(first.stop())  # asked to stop in the middle of a batch…
    await asyncio.sleep(0.2)
    gate.set()  # …it finishes the batch before leaving
    await stopping

    applied = await effects(database)
    assert 0 < first.counts.processed == len(applied)
    committed = await committed_offsets(kafka.bootstrap_servers, first.name, topic)
    assert sum(committed.values()) == first.counts.processed

    second = make_runner([topic], Recorder(), name=first.name)
    await second.start()
    await wait_until(lambda: second.counts.processed == 30 - first.counts.processed)
    assert second.counts.duplicates == 0  # it started after the last applied message
    assert len(await effects(database)) == 30


async def test_a_fatal_group_error_restarts_the_consumer(
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    broker_faults: BrokerFaults,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """The test broker's coordinator sometimes answers SyncGroup with INVALID_REQUEST during a
    rebalance; aiokafka then raises KafkaError from the group's background task. We make the
    broker answer the next SyncGroup that way (librdkafka's mock error stack) — nothing in the
    runner or the handler is patched."""
    topic = make_topic()
    await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}") for i in range(10)])
    broker_faults.fail_next(SYNC_GROUP, INVALID_REQUEST)
    runner = make_runner([topic], Recorder())
    await runner.start()
    await wait_until(lambda: runner.counts.processed == 10)

    assert runner.counts.restarts == 1
    assert "InvalidRequest" in (runner.health()["last_error"] or "")
    assert len(await effects(database)) == 10


async def test_health_reports_lag_until_the_backlog_is_applied(
    make_topic: Callable[..., str],
    producer: Producer,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic = make_topic(partitions=1)
    await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}") for i in range(30)])
    gate = asyncio.Event()
    handler = Recorder(gate=gate)
    runner = make_runner([topic], handler)
    await runner.start()
    await wait_until(lambda: runner.health()["lag_total"] > 0)
    health = runner.health()
    assert health["ready"] and health["running"] and health["processed"] == 0
    assert health["lag"] == {f"{topic}:0": 30}

    gate.set()
    await wait_until(lambda: runner.counts.processed == 30 and runner.health()["lag_total"] == 0)
    assert runner.health()["lag"] == {f"{topic}:0": 0}


async def test_consumed_through_is_the_last_applied_time_of_a_lagging_partition(
    make_topic: Callable[..., str],
    producer: Producer,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """While a partition lags, everything published before the last message applied from it
    has been applied; nothing is promised before the first; once none lags, nothing is waited
    for (None)."""
    topic = make_topic(partitions=1)
    for i in range(4):  # one send each, so that the timestamps grow
        await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}")])
        await asyncio.sleep(0.01)
    seen: list[tuple[datetime, datetime | None]] = []
    runner: ConsumerRunner

    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        seen.append((message.published_at, runner.consumed_through()))

    one_by_one = dataclasses.replace(FAST, max_batch=1, lag_interval_s=0.0)
    runner = make_runner([topic], handle, config=one_by_one)
    await runner.start()
    await wait_until(lambda: runner.counts.processed == 4 and runner.consumed_through() is None)
    published = [at for at, _ in seen]
    assert published == sorted(published) and len(set(published)) == 4
    # Applying message k, the lag counts it: applied through message k-1 (the epoch before any).
    assert [through for _, through in seen] == [datetime.fromtimestamp(0, UTC), *published[:3]]


async def test_the_lag_measured_with_a_batch_in_hand_drops_once_it_is_applied(
    make_topic: Callable[..., str],
    producer: Producer,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """Measured once (the next measure is an hour away), with the whole backlog in hand: once
    it is applied the lag is 0 and nothing is waited for, without another measure."""
    topic = make_topic(partitions=1)
    await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}") for i in range(5)])
    gate = asyncio.Event()
    runner = make_runner(
        [topic], Recorder(gate=gate), config=dataclasses.replace(FAST, lag_interval_s=3600)
    )
    await runner.start()
    await wait_until(lambda: runner.health()["lag_total"] == 5)
    assert runner.consumed_through() == datetime.fromtimestamp(0, UTC)
    gate.set()
    await wait_until(lambda: runner.counts.processed == 5)
    assert runner.health()["lag_total"] == 0 and runner.consumed_through() is None


async def test_a_handler_decodes_contract_events_and_one_breaking_the_contract_is_dead_lettered(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic, dead_letters = make_topic(), make_topic("deadletter")
    merged = PersonsMerged(merged_person_id=uuid.uuid4(), surviving_person_id=uuid.uuid4())
    good = dataclasses.replace(encode(merged, source="/canbao/identity"), topic=topic)
    broken = dataclasses.replace(  # another event (its own ce_id) whose value breaks the model
        encode(merged, source="/canbao/identity"),
        topic=topic,
        value=b'{"merged_person_id": "not a uuid"}',
    )
    decoded: list[Event] = []

    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        decoded.append(message.decode()[1])

    await producer.send_many([good, broken])
    runner = make_runner([topic], handle, dead_letter_topic=dead_letters)
    await runner.start()
    await wait_until(lambda: runner.counts.handled == 2)

    # Only what the handler writes counts once: it may itself run again (here the good event's
    # batch was replayed message by message after the broken one failed).
    assert decoded and all(event == merged for event in decoded)
    (letter,) = await read_topic(kafka.bootstrap_servers, dead_letters, 1)
    reason = dict(letter.headers)[DLQ_REASON].decode()
    assert reason.startswith("InvalidEventPayload: cn.canbao.registry.person.merged.v1:")
    assert "not a uuid" not in reason


async def backdate(database: Database, keys: list[str], age: timedelta) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(processed_messages)
            .where(processed_messages.c.message_key.in_(keys))
            .values(processed_at=sa.func.now() - age)
        )


async def test_old_idempotency_records_are_pruned_in_batches_and_recent_ones_still_count(
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic = make_topic()
    await producer.send_many([event(topic, f"e{i}", event_id=f"e{i}") for i in range(12)])
    runner = make_runner([topic], Recorder())
    await runner.start()
    await wait_until(lambda: runner.counts.processed == 12)
    kept = ServiceSettings(database_url="unused").processed_messages_kept
    old = [f"e{i}" for i in range(11)]
    await backdate(database, old, kept + timedelta(days=1))
    await backdate(database, ["e11"], kept - timedelta(days=1))  # inside the kept age

    assert await prune_processed_messages(database, older_than=kept, batch=4) == 11
    async with database.engine.connect() as connection:
        left = (await connection.execute(sa.select(processed_messages.c.message_key))).scalars()
        assert list(left) == ["e11"]
    await producer.send(event(topic, "e11", event_id="e11"))  # redelivered within the kept age
    await wait_until(lambda: runner.counts.duplicates == 1)
    assert (await effects(database))["e11"] == 1


def test_records_are_kept_longer_than_any_topic_keeps_a_message() -> None:
    assert ServiceSettings(database_url="unused").processed_messages_kept > timedelta(days=30)
    with pytest.raises(ValidationError, match="longest topic retention"):
        ServiceSettings(database_url="unused", CANBAO_PROCESSED_MESSAGES_KEPT_DAYS=30)


async def test_every_service_that_consumes_prunes_on_a_schedule(
    make_topic: Callable[..., str],
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    """The service shell adds the pruner beside any consumer runner; it prunes as it starts."""
    async with database.engine.begin() as connection:
        rows = [{"consumer": "c", "message_key": key} for key in ("old", "new")]
        await connection.execute(sa.insert(processed_messages), rows)
    await backdate(database, ["old"], timedelta(days=91))
    runner = make_runner([make_topic()], Recorder())
    definition = ServiceDefinition(
        name="tests",
        settings=ServiceSettings,
        migrations=Path("unused"),
        components=lambda _: [runner],
    )
    app = create_app(definition, ServiceSettings(database_url=database.url))
    async with app.router.lifespan_context(app):
        [pruner] = [c for c in app.state.components if isinstance(c, ProcessedMessagesPruner)]
        await wait_until(lambda: pruner.runs == 1)
        assert pruner.pruned == 1
    async with database.engine.connect() as connection:
        left = (await connection.execute(sa.select(processed_messages.c.message_key))).scalars()
        assert list(left) == ["new"]
