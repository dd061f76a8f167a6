"""Replaying dead letters once their cause is fixed: each goes back to its original topic with
its original key, value and headers, and is applied like a new message (its idempotency record
was never kept). An operator's command line calls `replay_dead_letters`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from canbao_contracts.envelope import KafkaRecord
from canbao_platform.messaging.dead_letters import (
    DLQ_HEADERS,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    DLQ_REPLAYED_FROM,
)
from canbao_platform.messaging.producer import Producer

log = logging.getLogger(__name__)


@dataclass
class ReplayReport:
    read: int = 0  # dead letters read from the topic
    replayed: int = 0  # sent back to their original topic
    skipped: int = 0  # not matching the filters


@dataclass(frozen=True)
class ReplayFilter:
    """Which dead letters to replay; None matches everything."""

    reason_contains: str | None = None
    original_topic: str | None = None
    original_partition: int | None = None
    original_offsets: range | None = None

    def matches(self, headers: dict[str, str]) -> bool:
        offset = headers.get(DLQ_ORIGINAL_OFFSET)
        partition = headers.get(DLQ_ORIGINAL_PARTITION)
        return (
            (self.reason_contains is None or self.reason_contains in headers.get(DLQ_REASON, ""))
            and (self.original_topic in (None, headers.get(DLQ_ORIGINAL_TOPIC)))
            and (self.original_partition is None or partition == str(self.original_partition))
            and (
                self.original_offsets is None
                or (offset is not None and int(offset) in self.original_offsets)
            )
        )


async def replay_dead_letters(
    *,
    bootstrap_servers: str,
    dead_letter_topic: str,
    producer: Producer,
    only: ReplayFilter = ReplayFilter(),
    group_id: str | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> ReplayReport:
    """Republish the dead letters of `dead_letter_topic` that match `only` to their original
    topics (original key, value and headers, `dlq_*` removed, `dlq_replayed_from` added), up to
    the end of the topic as it was when the replay started; then return. `client_options`
    (`KafkaSettings.kafka_client_options()`, as `producer` was given) log the reader in.

    Progress is the consumer group `group_id`'s committed position (default
    `<dead_letter_topic>.replay`), committed after each batch is acknowledged, so running the
    replay again resumes instead of repeating it. The position moves past everything read,
    matching or not: give a differently filtered replay its own `group_id`. E.g. after fixing
    the parser of identity's hukou events:

        await replay_dead_letters(bootstrap_servers=..., dead_letter_topic="deadletter.identity",
                                  producer=producer,
                                  only=ReplayFilter(original_topic="cdc.hukou.person"),
                                  group_id="deadletter.identity.replay.hukou-fix")
    """
    # Assigned, not subscribed: a one-shot reader needs no group membership (no rebalance, no
    # join delay); the group only keeps its committed positions.
    numbers = await producer.partitions_for(dead_letter_topic)
    partitions = [TopicPartition(dead_letter_topic, number) for number in sorted(numbers)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id or f"{dead_letter_topic}.replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(client_options or {}),
    )
    report = ReplayReport()
    await consumer.start()
    try:
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        while any([await consumer.position(tp) < last for tp, last in end.items()]):
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            records = [record for batch in batches.values() for record in batch]
            replays = [_replay(record, only, report) for record in records]
            await producer.send_many(record for record in replays if record is not None)
            if batches:
                await consumer.commit(
                    {tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch}
                )
    finally:
        await consumer.stop()
    log.info(
        "replayed %d of %d dead letters from %s", report.replayed, report.read, dead_letter_topic
    )
    return report


def _replay(record: ConsumerRecord, only: ReplayFilter, report: ReplayReport) -> KafkaRecord | None:
    report.read += 1
    dlq = {name: value.decode() for name, value in record.headers if name in DLQ_HEADERS}
    if DLQ_ORIGINAL_TOPIC not in dlq or not only.matches(dlq):
        report.skipped += 1
        return None
    report.replayed += 1
    headers = [(name, value) for name, value in record.headers if name not in DLQ_HEADERS]
    origin = f"{record.topic}:{record.partition}:{record.offset}"
    headers.append((DLQ_REPLAYED_FROM, origin.encode()))
    return KafkaRecord(
        topic=dlq[DLQ_ORIGINAL_TOPIC], key=record.key, value=record.value, headers=headers
    )
