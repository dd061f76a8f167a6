"""The runtime's tables, in every service's database (migration: `runtime_0001`).

They live in their own SQLAlchemy registry and MetaData, so they never collide with a service's
tables in one process, and a service's Alembic never sees them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from canbao_platform.db import Database

OUTBOX_CHANNEL = "canbao_outbox"  # NOTIFY channel of the outbox trigger (see the migration)


class RuntimeBase(SQLModel, registry=registry(metadata=MetaData())):
    """Base of the runtime's tables: its own registry, so its own MetaData."""


def _now() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class ProcessedMessage(RuntimeBase, table=True):
    """The idempotency record: this consumer has applied this message (pyeventsourcing's
    tracking row). Written in the same transaction as the effect; the primary key makes a
    redelivered or duplicated message a no-op. `message_key` is the CloudEvents `ce_id` when the
    message has one (time-ordered: envelope.new_event_id), else the message's timestamp and a
    digest of its content (Debezium change events; never the offset, which a recreated topic
    reuses: InboundMessage.idempotency_key). Both in time order, so new keys are added at the
    end of the primary key's index, whatever its size."""

    __tablename__ = "processed_messages"
    # BRIN: rows arrive in time order, so pruning by age needs only a tiny index.
    __table_args__ = (Index("processed_messages_age", "processed_at", postgresql_using="brin"),)

    consumer: str = Field(primary_key=True)
    message_key: str = Field(primary_key=True)
    processed_at: datetime | None = Field(default=None, sa_column=_now())


class OutboxMessage(RuntimeBase, table=True):
    """A record to publish, written in the transaction of the change it announces; the relay
    publishes rows in `id` order and deletes them once the broker has acknowledged them.
    Headers are two parallel arrays so their bytes round-trip exactly. The table also has an
    `xid` column (xid8, the writing transaction, filled by PostgreSQL) that only the relay's
    SQL reads: SQLAlchemy has no xid8 type, and no Python code ever sets it."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    topic: str
    key: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    value: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    header_names: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    header_values: list[bytes] = Field(sa_column=Column(ARRAY(LargeBinary), nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=_now())


class DeadLetter(RuntimeBase, table=True):
    """What this consumer sent to the dead-letter topic, and why: for counts and operators (the
    message itself is on the topic). Unique per position, so a redelivered poison message is
    not dead-lettered twice."""

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("consumer", "topic", "partition", "offset"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    consumer: str
    topic: str
    partition: int = Field(sa_column=Column(Integer, nullable=False))
    offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    event_id: str | None = None
    reason: str = Field(sa_column=Column(Text, nullable=False))
    dead_lettered_at: datetime | None = Field(default=None, sa_column=_now())


processed_messages = ProcessedMessage.__table__  # type: ignore[attr-defined]
outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
dead_letters = DeadLetter.__table__  # type: ignore[attr-defined]


# Rows deleted per transaction when pruning: short locks and WAL bursts, whatever the backlog.
PRUNE_BATCH: Final = 5_000
# One batch of old rows found through the BRIN index and located by ctid (the physical row id:
# no primary-key comparison of two text columns), deleted in the same statement.
_PRUNE_BATCH: Final = text("""
    DELETE FROM processed_messages WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM processed_messages
        WHERE processed_at < now() - CAST(:older_than AS interval)
        LIMIT :batch))
""")


async def prune_processed_messages(
    database: Database, *, older_than: timedelta, batch: int = PRUNE_BATCH
) -> int:
    """Forget idempotency records older than `older_than`, `batch` rows per transaction, until
    none is left; how many were forgotten. The table grows with every event, and a redelivery
    older than the topic's retention cannot happen (settings.py: the kept age)."""
    pruned = 0
    while True:
        async with database.engine.begin() as connection:
            done = await connection.execute(
                _PRUNE_BATCH, {"older_than": older_than, "batch": batch}
            )
        pruned += done.rowcount
        if done.rowcount < batch:
            return pruned
