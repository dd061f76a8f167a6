"""What a handler sees: the message it is given and the unit of work it writes through.

A handler is `async def handle(message: InboundMessage, uow: UnitOfWork) -> None`: it loads
what it needs through `uow.session`, changes it, adds rows nobody reads back in the same batch
with `uow.add_row` (or hands them to a set-based statement of its own with `uow.buffer`), and
publishes events with `uow.publish_event`.
It never commits: the runner commits the effect together with the idempotency record, and the
outbox rows with both, so "changed the database" and "will announce it" cannot come apart.
A handler may run more than once for one message (its batch retried or replayed after another
message failed); what it writes through `uow` counts exactly once, so it does nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from aiokafka.structs import ConsumerRecord
from sqlalchemy import Table, TextClause, event, text
from sqlalchemy.ext.asyncio import AsyncSession as CoreAsyncSession
from sqlalchemy.ext.asyncio import AsyncSessionTransaction
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from canbao_contracts.envelope import (
    Envelope,
    KafkaRecord,
    MalformedEnvelope,
    decode,
    decode_event,
    encode,
)
from canbao_contracts.events import Event
from canbao_platform import bulk
from canbao_platform.db import Database
from canbao_platform.messaging.tables import outbox
from canbao_platform.telemetry import has_trace_context, inject_trace_context

Header = tuple[str, bytes]


class InboundMessage(NamedTuple):
    """One consumed Kafka message. `envelope` is its CloudEvents envelope, or None for a message
    without `ce_` headers (a Debezium change event). Immutable; a named tuple rather than a
    frozen dataclass, as one is made for every message consumed: a quarter of the time."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    timestamp: int  # milliseconds since the epoch, as the producer or broker stamped it
    envelope: Envelope | None

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def published_at(self) -> datetime:
        """The message's timestamp as a time (ConsumerRunner.consumed_through compares it)."""
        return datetime.fromtimestamp(self.timestamp / 1000, UTC)

    @property
    def idempotency_key(self) -> str:
        """The event's id when it has one (a duplicate published twice has the same id), else
        the message's timestamp and a digest of its content.

        A message without an id is a Debezium change event: its value carries the source
        position (`source.lsn`, `txId`, table) and the row, so a redelivered copy has the same
        bytes and timestamp (those of the one record; a mirrored cluster keeps both) while any
        new change differs. Never its offset: offsets start again at 0 when a topic is
        recreated, a cluster is replaced or the local test broker restarts empty, and new
        changes at reused offsets would be skipped as duplicates. The timestamp comes first,
        written to a fixed width, so the keys a consumer records are in time order, as event
        ids are (envelope.new_event_id): each is inserted at the end of the idempotency
        records' index instead of on a random page of it. Content sent again as a new record
        (a tombstone after a second delete of one key) is applied again, which changes
        nothing: consumers order changes by source position themselves (ChangePosition)."""
        if self.envelope is not None:
            return self.envelope.id
        digest = hashlib.sha256()
        for part in (self.topic.encode(), self.key, self.value):
            digest.update(b"\x00" if part is None else b"\x01%d:" % len(part) + part)
        return f"{self.timestamp:013d}:sha256:{digest.hexdigest()}"

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)

    def decode(self) -> tuple[Envelope, Event]:
        """The envelope and the contract's event (raises a ContractError, a ValueError, when the
        message does not match the contracts: the runner then dead-letters it). The envelope
        is the one read when the message arrived, not read again."""
        if self.envelope is None:
            return decode(self.headers, self.value)  # raises: not a registry event
        return self.envelope, decode_event(self.envelope, self.value)


# A consumed message, and why it cannot be applied if its envelope is malformed (parse_record).
Parsed = tuple[InboundMessage, str | None]


def parse_record(record: ConsumerRecord) -> Parsed:
    """The message, and why it cannot be applied if its envelope is malformed."""
    headers = tuple(record.headers)
    try:
        envelope, problem = Envelope.from_headers(headers), None
    except MalformedEnvelope as error:
        envelope, problem = None, f"MalformedEnvelope: {error.reason}"
    message = InboundMessage(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        headers,
        record.timestamp,
        envelope,
    )
    return message, problem


def event_source(service: str) -> str:
    """The CloudEvents `ce_source` of what `service` publishes."""
    return f"/canbao/{service}"


Row = TypeVar("Row")
Row_contra = TypeVar("Row_contra", contravariant=True)


class BulkWrite(Protocol[Row_contra]):
    """One set-based statement for the rows a transaction buffered for it (`UnitOfWork.buffer`):
    a hashable object (the buffer is kept per object: make it a module-level constant) whose
    `write` executes the statement for all of them through the sync `session` (SQLAlchemy runs
    it inside the async session's greenlet). `rows` are in the order they were buffered, never
    empty; `write` may merge or drop rows (a newer copy of the same key) before writing.

    The contract, the same for every bulk write and for `add_row`'s INSERTs:
    * rows are invisible to every query until written: buffer what nobody reads back in the
      same transaction (or whose reader tolerates not seeing it yet);
    * they are written when the transaction commits, or the SAVEPOINT they were buffered in
      (SQLAlchemy fires `before_commit` for both): a batch replayed message by message writes
      each message's rows at its own savepoint's commit, so a row PostgreSQL refuses fails
      its own message only;
    * a rollback of either discards what was buffered since the last write — open savepoints
      with `savepoint(session)`, which first writes what is buffered, so that rolling one back
      loses only what was buffered inside it;
    * the bulk writes run in the order each was first used since the last write: one that
      must see another's rows is first used after it."""

    def write(self, session: Session, rows: Sequence[Row_contra]) -> None: ...


class UnitOfWork:
    """The handler's transaction: `session` for its own tables, `add_row` for new rows written
    in bulk, `buffer` for rows of a service's own set-based statement, `publish*` for the
    outbox."""

    def __init__(self, session: AsyncSession, *, source: str) -> None:
        self.session = session
        self.source = source

    def add_row(self, table: Table, row: Mapping[str, Any]) -> None:
        """Insert `row` into `table` with this transaction: written, with every other row added
        to `table`, by one multi-row INSERT when the transaction (or the savepoint it was added
        in) commits; discarded if that rolls back (the contract of `BulkWrite`). Until then no
        query sees it, so this is for rows nobody reads back in the same batch: a history, a
        log, staged changes. The way to write one row per message at the cost of a few
        microseconds, instead of an ORM object (tens of microseconds) or a statement (a round
        trip) each."""
        self.buffer(_insert_into(table), row)

    def buffer(self, write: BulkWrite[Row], row: Row) -> None:
        """Hand `row` to `write`, which writes it with the others buffered for it in this
        transaction, by one statement, at the commit of the transaction or of the savepoint it
        was buffered in; discarded if that rolls back (the contract of `BulkWrite`). For what
        a plain INSERT cannot do: an upsert, the newest revision of a key, a statement whose
        RETURNING feeds another."""
        _buffered(self.session.sync_session).setdefault(write, []).append(row)

    def publish(self, record: KafkaRecord) -> None:
        """Add `record` to the outbox, in this transaction; the relay sends it after commit.

        Plain (not async) on purpose: a forgotten `await` would silently drop the event."""
        headers = list(record.headers)
        if not has_trace_context(headers):
            inject_trace_context(headers)  # the consumer of this event continues our trace
        self.add_row(
            outbox,
            {
                "topic": record.topic,
                "key": record.key,
                "value": record.value,
                "header_names": [name for name, _ in headers],
                "header_values": [value for _, value in headers],
            },
        )

    def publish_event(self, event: Event, *, id: str | None = None) -> KafkaRecord:
        """Encode a contract event (CloudEvents envelope, our service as `ce_source`) and publish
        it. `id` defaults to a new UUID; pass a deterministic one to make a re-run harmless."""
        record = encode(event, source=self.source, id=id)
        self.publish(record)
        return record


Handler = Callable[[InboundMessage, UnitOfWork], Awaitable[None]]

# What `buffer` and `add_row` were given waits in the session (`info`), per bulk write in the
# order each was first used, and is written by one statement per bulk write when the
# transaction, or the savepoint it was buffered in, commits (SQLAlchemy fires `before_commit`
# for both); a rollback of either discards what was buffered since the last write.
_BUFFERED: Final = "canbao_platform.buffered_rows"


def _buffered(session: Session) -> dict[BulkWrite[Any], list[Any]]:
    buffered: dict[BulkWrite[Any], list[Any]] | None = session.info.get(_BUFFERED)
    if buffered is None:
        buffered = session.info[_BUFFERED] = {}
        event.listen(session, "before_commit", _write_buffered)
        event.listen(session, "after_soft_rollback", _discard_buffered)
    return buffered


def _write_buffered(session: Session) -> None:
    buffered: dict[BulkWrite[Any], list[Any]] = session.info.get(_BUFFERED, {})
    for write, rows in buffered.items():
        if rows:
            write.write(session, rows)
    buffered.clear()


async def savepoint(session: CoreAsyncSession) -> AsyncSessionTransaction:
    """A SAVEPOINT in `session`'s transaction, begun after writing what is buffered: rows
    buffered before it must not be part of it, or its rollback would discard them too (the
    buffer knows no savepoints: a rollback clears it)."""
    await session.run_sync(_write_buffered)
    return await session.begin_nested()


def _discard_buffered(session: Session, previous_transaction: Any) -> None:
    session.info.get(_BUFFERED, {}).clear()


@dataclass(frozen=True, slots=True)
class InsertRows:
    """`add_row`'s bulk write: the rows added to `table`, in their order, by one INSERT of
    unnested arrays (canbao_platform.bulk) per set of columns the rows name."""

    table: Table

    def write(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        naming: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for row in rows:
            naming.setdefault(tuple(row), []).append(row)
        for names, named in naming.items():
            statement, encoders = _insert_unnested(self.table, names)
            session.execute(
                statement,
                {
                    column: [row[column] for row in named]
                    if encode is None
                    else [None if row[column] is None else encode(row[column]) for row in named]
                    for column, encode in encoders.items()
                },
            )


_insert_into: Final = cache(InsertRows)  # one per table, not one per row added


@cache
def _insert_unnested(
    table: Table, names: tuple[str, ...]
) -> tuple[TextClause, dict[str, Callable[[Any], str] | None]]:
    """The INSERT of `names`' arrays into `table`, and how each column's values travel: as they
    are, or as text (JSON, arrays: bulk.py)."""
    columns = bulk.columns(table, names)
    encoders = {name: bulk.text_encoder(type_) for name, type_ in columns.items()}
    return text(bulk.insert(table.name, columns)), encoders


@asynccontextmanager
async def unit_of_work(database: Database, *, service: str) -> AsyncIterator[UnitOfWork]:
    """A unit of work outside a consumer (an HTTP request that changes data and publishes):
    commits on leaving the block, rolls back if it raises."""
    async with database.sessions() as session, session.begin():
        yield UnitOfWork(session, source=event_source(service))
