"""The backpressure guard's arithmetic and its talk with the broker, without Debezium: the
PublishedLedger on its own, then the guard and publisher against the real test broker."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from canbao_platform.local.broker import MockKafkaCluster
from canbao_stack.cdc.backpressure import BacklogGuard, BridgeStopping
from canbao_stack.cdc.config import BridgeConfig, parse_args
from canbao_stack.cdc.engine import debezium_properties
from canbao_stack.cdc.ledger import PublishedLedger
from canbao_stack.cdc.limits import RECORD_OVERHEAD_BYTES
from canbao_stack.cdc.publisher import DebeziumRecord, Publisher
from canbao_stack.simulators import TABLES
from tests.platform.conftest import wait_until

TP = TopicPartition("cdc.hukou.person", 0)


# --- the ledger: backlog in messages → backlog in bytes ---------------------------------------


def test_bytes_between_chunk_boundaries_are_exact() -> None:
    ledger = PublishedLedger(fallback_record_bytes=1_000)
    ledger.add(TP, 0, 10, 1_000)
    ledger.add(TP, 10, 20, 3_000)
    assert ledger.backlog_bytes(TP, 0, 20) == 4_000
    assert ledger.backlog_bytes(TP, 10, 20) == 3_000
    assert ledger.backlog_bytes(TP, 20, 20) == 0


def test_a_half_read_chunk_counts_whole() -> None:
    ledger = PublishedLedger(fallback_record_bytes=1_000)
    ledger.add(TP, 0, 10, 1_000)
    ledger.add(TP, 10, 20, 3_000)
    assert ledger.backlog_bytes(TP, 15, 20) == 3_000  # an over-estimate, never an under-estimate


def test_messages_from_before_this_process_count_at_the_average_size() -> None:
    ledger = PublishedLedger(fallback_record_bytes=1_000)
    assert ledger.backlog_bytes(TP, 0, 5) == 5_000  # nothing seen yet: the fallback
    ledger.add(TP, 100, 110, 2_000)  # 200 bytes a message
    assert ledger.backlog_bytes(TP, 90, 110) == 10 * 200 + 2_000


def test_the_ledger_forgets_what_every_group_has_read() -> None:
    ledger = PublishedLedger(fallback_record_bytes=1_000)
    for first in range(0, 100, 10):
        ledger.add(TP, first, first + 10, 500)
    ledger.forget_before(TP, 55)
    assert ledger.backlog_bytes(TP, 55, 100) == 5 * 500  # 50..60 counts whole
    assert ledger.bytes_published[TP] == 5_000


# --- the guard against the test broker ---------------------------------------------------------


@pytest.fixture
async def publishing(
    kafka: MockKafkaCluster, make_topic: Callable[..., str]
) -> AsyncIterator[tuple[Publisher, BacklogGuard, str]]:
    topic = make_topic("cdc-guard", partitions=1)
    guard = BacklogGuard(
        bootstrap_servers=kafka.bootstrap_servers,
        groups=(f"identity-{topic}",),
        topics=(topic,),
        max_bytes=20_000,
        max_messages=1_000,
        ledger=PublishedLedger(fallback_record_bytes=1_000),
        poll_s=0.05,
    )
    publisher = Publisher(
        bootstrap_servers=kafka.bootstrap_servers,
        offsets_topic=f"{topic}.offsets",
        guard=guard,
        chunk_bytes=5_000,
    )
    await publisher.start()
    yield publisher, guard, topic
    await publisher.close()


def events(topic: str, count: int, size: int = 1_000) -> list[DebeziumRecord]:
    value = b"x" * (size - RECORD_OVERHEAD_BYTES - 8)
    return [DebeziumRecord(topic, f"{n:08d}".encode(), value) for n in range(count)]


async def commit(kafka: MockKafkaCluster, group: str, topic: str, offset: int) -> None:
    """What the identity service's consumer does after processing up to `offset`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


async def test_a_group_that_never_committed_counts_from_the_start_of_the_log(
    kafka: MockKafkaCluster, publishing: tuple[Publisher, BacklogGuard, str]
) -> None:
    publisher, guard, topic = publishing
    await publisher.publish(events(topic, 12), None)
    await guard.measure()
    assert guard.stats.worst.messages == 12 and guard.stats.worst.bytes == 12_000
    assert guard.stats.groups_without_commits == guard.groups

    await commit(kafka, guard.groups[0], topic, 9)
    await guard.measure()
    assert guard.stats.worst.messages == 3
    # 3 KB unread, plus at most the read part of the chunk the consumer is in (chunks ≤ 5 KB).
    assert 3_000 <= guard.stats.worst.bytes <= 3_000 + 5_000
    assert guard.stats.groups_without_commits == ()


async def test_publishing_waits_for_the_slowest_watched_group_and_says_which(
    kafka: MockKafkaCluster,
    publishing: tuple[Publisher, BacklogGuard, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher, guard, topic = publishing
    await publisher.publish(events(topic, 18), None)  # 18 KB unread, limit 20 KB
    caplog.set_level(logging.WARNING, logger="canbao.cdc.backpressure")
    waiting = asyncio.create_task(publisher.publish(events(topic, 5), None))
    await wait_until(lambda: guard.stats.blocked_since is not None)  # measured, then blocked
    assert not waiting.done()
    said = " ".join(record.getMessage() for record in caplog.records)
    assert re.search(rf"blocked .* by group '{guard.groups[0]}' on {re.escape(topic)}\[0\]", said)
    assert "committed no offset yet" in said

    await commit(kafka, guard.groups[0], topic, 18)  # the consumer caught up
    await asyncio.wait_for(waiting, 5)
    assert guard.stats.waits == 1 and guard.stats.blocked_since is None
    assert guard.stats.max_backlog.bytes <= guard.max_bytes


async def test_a_stop_ends_a_wait_without_counting_the_batch_as_published(
    publishing: tuple[Publisher, BacklogGuard, str],
) -> None:
    publisher, guard, topic = publishing
    await publisher.publish(events(topic, 18), None)
    waiting = asyncio.create_task(publisher.publish(events(topic, 5), None))
    await wait_until(lambda: guard.stats.blocked_since is not None)
    guard.stopping = True
    with pytest.raises(BridgeStopping):
        await asyncio.wait_for(waiting, 5)
    assert publisher.counters.events == 18


# --- configuration -----------------------------------------------------------------------------


def test_the_connector_captures_exactly_the_tables_of_sources_md(tmp_path: object) -> None:
    properties = debezium_properties(BridgeConfig(bootstrap_servers="kafka:9092"), tmp_path)  # type: ignore[arg-type]
    captured = [name.replace("\\", "") for name in properties["table.include.list"].split(",")]
    assert captured == [f"{schema}.{table}" for schema, table in TABLES]
    # sources.md's residence permits (外来常住人员) are a change feed like the household register.
    assert {"hukou.person", "hukou.resident_permit"} <= set(captured)
    assert properties["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert properties["plugin.name"] == "pgoutput"
    assert properties["snapshot.mode"] == "initial"
    assert properties["tombstones.on.delete"] == "true"
    assert properties["topic.prefix"] == "cdc"
    assert properties["converter.schemas.enable"] == "false"


def test_settings_come_from_arguments_then_environment() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092",
        "CANBAO_CDC_SOURCE_DSN": "postgresql://debezium:s%40cret@db.example:5433/sources",
        "CANBAO_CDC_WATCH_GROUPS": "identity, audit",
        "CANBAO_CDC_EMBED_SCHEMAS": "true",
    }
    config = parse_args(["--no-backpressure", "--property", "heartbeat.interval.ms=10000"], env)
    assert config.bootstrap_servers == "kafka-1:9092"
    assert (config.source.host, config.source.port, config.source.user) == (
        "db.example",
        5433,
        "debezium",
    )
    assert config.source.password == "s@cret"
    assert config.watched_groups == ("identity", "audit")
    assert config.embed_schemas and not config.backpressure
    assert config.extra_properties == {"heartbeat.interval.ms": "10000"}
