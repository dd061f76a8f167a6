"""One polled batch into the service's database: each message applied once, or dead-lettered.

The batch is one transaction: the idempotency records of all its messages are claimed with one
`INSERT … ON CONFLICT DO NOTHING` (a key already there is a duplicate: skipped), the handlers
run, the dead letters are recorded and sent, and the whole commits at once — so an effect and
its record cannot come apart (pyeventsourcing's Follower, per batch instead of per event).

Fast path first, without savepoints. If a handler fails, the transaction is rolled back and the
batch replayed carefully, each message in its own SAVEPOINT, so a poison message rolls back
only itself and goes to the dead-letter topic while the others are applied. A transient failure
anywhere propagates with nothing committed, and the runner retries the same batch.

Tracing is per batch, as OpenTelemetry's messaging conventions have it for batch processing: one
CONSUMER span `process <topic>` around the whole transaction, linked to the span that sent
each message (its `traceparent`); what the handlers publish carries the batch's span. A span
per message cost more than the runtime's own work on a one-row handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from sqlalchemy import ARRAY, Text, bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from canbao_platform.db import Database, sqlstate
from canbao_platform.messaging.dead_letters import Poison, dead_letter
from canbao_platform.messaging.failures import (
    MESSAGE_RETRY,
    Backoff,
    Failure,
    TransientError,
    classify,
    describe,
)
from canbao_platform.messaging.messages import (
    Handler,
    InboundMessage,
    Parsed,
    UnitOfWork,
    savepoint,
)
from canbao_platform.messaging.producer import Producer
from canbao_platform.telemetry import extract_trace_context, has_trace_context

log = logging.getLogger(__name__)
tracer = trace.get_tracer("canbao.messaging")

# The idempotency records of a batch's messages. Nearly always none was recorded before (a
# batch comes again only after a crash or a rebalance), so the batch claims them all with a plain
# INSERT, which costs PostgreSQL half of an INSERT … ON CONFLICT (no speculative insertion per
# row). If one was there, the INSERT fails on the primary key: the transaction is rolled back and
# the batch applied again, claiming with ON CONFLICT DO NOTHING, which skips the keys recorded
# before (the duplicates) and returns the others.
_CLAIM_ALL = text(
    "INSERT INTO processed_messages (consumer, message_key) SELECT :consumer, unnest(:keys)"
).bindparams(bindparam("keys", type_=ARRAY(Text)))
_CLAIM_NEW = text(
    "INSERT INTO processed_messages (consumer, message_key) "
    "SELECT :consumer, unnest(:keys) ON CONFLICT DO NOTHING RETURNING message_key"
).bindparams(bindparam("keys", type_=ARRAY(Text)))
_UNIQUE_VIOLATION = "23505"


class _RecordedBefore(Exception):
    """A message of the batch has its idempotency record already (_CLAIM_ALL)."""


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0  # handler attempts repeated after an unknown error


@dataclass
class BatchApplier:
    consumer: str
    handler: Handler
    database: Database
    producer: Producer
    dead_letter_topic: str
    source: str  # ce_source of what the handler publishes
    max_attempts: int = 3
    retry_backoff: Backoff = MESSAGE_RETRY
    permanent: tuple[type[BaseException], ...] = ()
    # The consumer's own connection, kept from batch to batch: a checkout from the pool costs a
    # pre-ping (three round trips with asyncpg) per batch. A connection that died fails the
    # batch's first statement, a transient failure: the batch is retried, and SQLAlchemy
    # connects again when the next transaction begins.
    _connection: AsyncConnection | None = field(default=None, init=False, repr=False)

    async def apply(self, parsed: Sequence[Parsed]) -> BatchOutcome:
        """Apply the messages (each read by `parse_record`, with why it cannot be applied if its
        envelope is malformed) and commit. Raises on a transient failure, having committed
        nothing."""
        with self._span([message for message, _ in parsed]) as span:
            try:
                try:
                    return await self._attempt(parsed, careful=False, first_time=True)
                except _RecordedBefore:
                    span.add_event("duplicates in the batch")
                    return await self._attempt(parsed, careful=False)
            except Exception as error:
                if classify(error, self.permanent) is Failure.TRANSIENT:
                    raise
                log.info(
                    "%s: %s in a batch, replaying it message by message",
                    self.consumer,
                    type(error).__name__,
                )
                span.add_event("replayed message by message", {"error.type": type(error).__name__})
            return await self._attempt(parsed, careful=True)

    async def _attempt(
        self, parsed: Sequence[Parsed], *, careful: bool, first_time: bool = False
    ) -> BatchOutcome:
        """Apply the batch in one transaction (each message in a savepoint of its own if
        `careful`), claiming every message's idempotency record at once if `first_time`
        (raises _RecordedBefore if one was there)."""
        outcome, poison = BatchOutcome(), list[Poison]()  # poison in the batch's order
        async with (
            self.database.sessions(bind=await self._held_connection()) as session,
            session.begin(),
        ):
            connection = await _connect(session)
            uow = UnitOfWork(session, source=self.source)
            # A Debezium event's key is a digest of its bytes: computed once per message.
            keys = [None if problem else message.idempotency_key for message, problem in parsed]
            claimed = await self._claim(
                connection, [key for key in keys if key is not None], first_time=first_time
            )
            for (message, problem), key in zip(parsed, keys, strict=True):
                if problem is None and key not in claimed:
                    outcome.duplicates += 1  # applied before, or a second copy in this batch
                    continue
                claimed.discard(key)
                if problem is None and careful:
                    problem = await self._apply_carefully(uow, message, outcome)
                elif problem is None:
                    await self.handler(message, uow)
                if problem is None:
                    outcome.applied += 1
                else:
                    poison.append(Poison(message, problem))
            await session.flush()
            outcome.dead_lettered = await dead_letter(
                connection,
                poison,
                consumer=self.consumer,
                topic=self.dead_letter_topic,
                producer=self.producer,
            )
        for p in poison:  # the reason's class only: its message may quote a citizen's data
            trace.get_current_span().add_event(
                "dead-lettered",
                {
                    "messaging.kafka.position": p.message.position,
                    "error.type": p.reason.split(":", 1)[0],
                },
            )
        return outcome

    async def close(self) -> None:
        """Give the consumer's connection back to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def _held_connection(self) -> AsyncConnection:
        if self._connection is None:
            try:
                self._connection = await self.database.engine.connect()
            except Exception as error:
                raise TransientError(f"database unavailable: {describe(error)}") from error
        if self._connection.in_transaction():
            # Left open by a batch cancelled mid-way: a session would join it, and its commit
            # would then commit nothing. Only after a cancellation; the check costs nothing.
            await self._connection.rollback()
        return self._connection

    async def _claim(
        self, connection: AsyncConnection, keys: list[str], *, first_time: bool
    ) -> set[str]:
        """The keys whose idempotency records this transaction wrote (each once, though the
        batch may hold two copies of a message)."""
        if not keys:
            return set()
        if not first_time:
            result = await connection.execute(_CLAIM_NEW, {"consumer": self.consumer, "keys": keys})
            return set(result.scalars())
        unique = list(dict.fromkeys(keys))
        try:
            await connection.execute(_CLAIM_ALL, {"consumer": self.consumer, "keys": unique})
        except DBAPIError as error:
            if sqlstate(error) == _UNIQUE_VIOLATION:
                raise _RecordedBefore from None
            raise
        return set(unique)

    async def _apply_carefully(
        self, uow: UnitOfWork, message: InboundMessage, outcome: BatchOutcome
    ) -> str | None:
        """Apply `message` inside a savepoint; the reason to dead-letter it, or None if applied."""
        for attempt in range(1, self.max_attempts + 1):
            replayed = await savepoint(uow.session)
            try:
                await self.handler(message, uow)
                # Constraint errors surface here, inside the savepoint: when the ORM flushes, or
                # when the savepoint's commit writes what `uow.add_row` and `uow.buffer` hold.
                await uow.session.flush()
                await replayed.commit()
            except Exception as error:
                await replayed.rollback()
                kind = classify(error, self.permanent)
                if kind is Failure.TRANSIENT:
                    raise
                if kind is Failure.PERMANENT or attempt == self.max_attempts:
                    return describe(error)
                outcome.retries += 1
                log.warning(
                    "%s: %s at %s, attempt %d of %d",
                    self.consumer,
                    type(error).__name__,
                    message.position,
                    attempt,
                    self.max_attempts,
                )
                await asyncio.sleep(self.retry_backoff.delay(attempt - 1))
            else:
                return None
        raise AssertionError("unreachable: the last attempt returns")

    def _span(self, messages: list[InboundMessage]) -> AbstractContextManager[Span]:
        """The batch's CONSUMER span, linked to the producer span of each message that has one.
        (The SDK keeps the first 128 links of a span unless OTEL_SPAN_LINK_COUNT_LIMIT says
        more: raise it to max_batch where every message's origin must be found.)"""
        topics = {message.topic for message in messages}
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": self.consumer,
            "messaging.batch.message_count": len(messages),
        }
        if len(topics) == 1:
            attributes["messaging.destination.name"] = next(iter(topics))
        return tracer.start_as_current_span(
            f"process {next(iter(topics))}" if len(topics) == 1 else "process",
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=_producer_links(messages),
        )


def _producer_links(messages: list[InboundMessage]) -> list[Link]:
    """A link to the span that sent each message, read from its `traceparent` header."""
    links = []
    for message in messages:
        # An envelope kept its traceparent if it had a valid one (Envelope.from_headers).
        traced = (
            has_trace_context(message.headers)
            if message.envelope is None
            else message.envelope.traceparent is not None
        )
        if traced:
            sent_in = trace.get_current_span(extract_trace_context(message.headers))
            if sent_in.get_span_context().is_valid:
                links.append(Link(sent_in.get_span_context()))
    return links


async def _connect(session: AsyncSession) -> AsyncConnection:
    """The batch's connection. Failing to get one is never the messages' fault: transient."""
    try:
        return await session.connection()
    except Exception as error:
        raise TransientError(f"database unavailable: {describe(error)}") from error
