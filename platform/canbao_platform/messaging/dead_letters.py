"""Dead letters: what a consumer could not apply, kept whole on `deadletter.<service>`.

A dead-lettered message keeps its key, value and headers unchanged and gains `dlq_*` headers
saying why and where it came from. Its idempotency record is removed with the rolled-back
effect, so a replayed copy (same `ce_id`, see replay.py) is applied like a new message; the
`dead_letters` table keeps the reason for operators and counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_contracts.envelope import KafkaRecord
from canbao_platform.messaging.messages import InboundMessage
from canbao_platform.messaging.producer import Producer
from canbao_platform.messaging.tables import dead_letters, processed_messages

log = logging.getLogger(__name__)

DLQ_REASON = "dlq_reason"
DLQ_ORIGINAL_TOPIC = "dlq_original_topic"
DLQ_ORIGINAL_PARTITION = "dlq_original_partition"
DLQ_ORIGINAL_OFFSET = "dlq_original_offset"
DLQ_CONSUMER = "dlq_consumer"
DLQ_FAILED_AT = "dlq_failed_at"
DLQ_REPLAYED_FROM = "dlq_replayed_from"
_FAILURE_HEADERS = frozenset(
    {
        DLQ_REASON,
        DLQ_ORIGINAL_TOPIC,
        DLQ_ORIGINAL_PARTITION,
        DLQ_ORIGINAL_OFFSET,
        DLQ_CONSUMER,
        DLQ_FAILED_AT,
    }
)
DLQ_HEADERS = _FAILURE_HEADERS | {DLQ_REPLAYED_FROM}


@dataclass(frozen=True)
class Poison:
    """A message that cannot be applied, and why (class and message of the error)."""

    message: InboundMessage
    reason: str


def dead_letter_record(
    message: InboundMessage, *, topic: str, consumer: str, reason: str, failed_at: datetime
) -> KafkaRecord:
    """`message` as it goes to the dead-letter `topic`: same key, value and headers (those of an
    earlier failure replaced; `dlq_replayed_from` kept), plus why, where from and when."""
    headers = [(name, value) for name, value in message.headers if name not in _FAILURE_HEADERS]
    headers += [
        (DLQ_REASON, reason.encode()),
        (DLQ_ORIGINAL_TOPIC, message.topic.encode()),
        (DLQ_ORIGINAL_PARTITION, str(message.partition).encode()),
        (DLQ_ORIGINAL_OFFSET, str(message.offset).encode()),
        (DLQ_CONSUMER, consumer.encode()),
        (DLQ_FAILED_AT, failed_at.astimezone(UTC).isoformat().encode()),
    ]
    return KafkaRecord(topic=topic, key=message.key, value=message.value, headers=headers)


async def dead_letter(
    connection: AsyncConnection,
    poison: list[Poison],
    *,
    consumer: str,
    topic: str,
    producer: Producer,
) -> int:
    """Record `poison` in the batch's transaction and send it to `topic`, before the commit: if
    the send fails, the batch is rolled back and retried, so no dead letter is lost. One
    recorded before (a poison message redelivered) is not sent twice. Returns how many were."""
    if not poison:
        return 0
    await connection.execute(  # their effects were rolled back: so must their records be
        delete(processed_messages).where(
            processed_messages.c.consumer == consumer,
            processed_messages.c.message_key.in_([p.message.idempotency_key for p in poison]),
        )
    )
    rows = [
        {
            "consumer": consumer,
            "topic": p.message.topic,
            "partition": p.message.partition,
            "offset": p.message.offset,
            "reason": p.reason,
            "event_id": p.message.envelope.id if p.message.envelope else None,
        }
        for p in poison
    ]
    inserted = await connection.execute(
        insert(dead_letters)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(dead_letters.c.topic, dead_letters.c.partition, dead_letters.c.offset)
    )
    new = {tuple(row) for row in inserted}
    fresh = [p for p in poison if (p.message.topic, p.message.partition, p.message.offset) in new]
    now = datetime.now(UTC)
    await producer.send_many(
        dead_letter_record(
            p.message, topic=topic, consumer=consumer, reason=p.reason, failed_at=now
        )
        for p in fresh
    )
    for p in fresh:  # the reason's class only: its message may quote a citizen's data
        log.warning(
            "%s: dead-lettered %s (%s)", consumer, p.message.position, p.reason.split(":", 1)[0]
        )
    return len(fresh)
