"""One polled batch into the service's database: each message applied once, or dead-lettered.

The batch is one transaction: the idempotency records of all its messages are claimed with one
`INSERT … ON CONFLICT DO NOTHING` (a key already there is a duplicate: skipped), the handlers
run, the dead letters are recorded and sent, and the whole commits at once — so an effect and
its record cannot come apart (pyeventsourcing's Follower, per batch instead of per event).

Fast path first, without savepoints. If a handler fails, the transaction is rolled back and the
batch replayed carefully, each message in its own SAVEPOINT, so a poison message rolls back
only itself and goes to the dead-letter topic while the others are applied. A transient failure
anywhere propagates with nothing committed, and the runner retries the same batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from sqlalchemy import ARRAY, Text, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from canbao_platform.db import Database
from canbao_platform.messaging.dead_letters import Poison, dead_letter
from canbao_platform.messaging.failures import (
    MESSAGE_RETRY,
    Backoff,
    Failure,
    TransientError,
    classify,
    describe,
)
from canbao_platform.messaging.messages import Handler, InboundMessage, UnitOfWork, parse_record
from canbao_platform.messaging.producer import Producer
from canbao_platform.telemetry import extract_trace_context

log = logging.getLogger(__name__)
tracer = trace.get_tracer("canbao.messaging")

_CLAIM = text(
    "INSERT INTO processed_messages (consumer, message_key) "
    "SELECT :consumer, unnest(:keys) ON CONFLICT DO NOTHING RETURNING message_key"
).bindparams(bindparam("keys", type_=ARRAY(Text)))


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0  # handler attempts repeated after an unknown error


@dataclass(frozen=True)
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

    async def apply(self, records: Sequence[ConsumerRecord]) -> BatchOutcome:
        """Apply `records` and commit. Raises on a transient failure, having committed nothing."""
        parsed = [parse_record(record) for record in records]
        try:
            return await self._attempt(parsed, careful=False)
        except Exception as error:
            if classify(error, self.permanent) is Failure.TRANSIENT:
                raise
            log.info("%s: %s in a batch, replaying it message by message",
                     self.consumer, type(error).__name__)  # fmt: skip
        return await self._attempt(parsed, careful=True)

    async def _attempt(
        self, parsed: list[tuple[InboundMessage, str | None]], *, careful: bool
    ) -> BatchOutcome:
        outcome, poison = BatchOutcome(), list[Poison]()  # poison in the batch's order
        async with self.database.sessions() as session, session.begin():
            connection = await _connect(session)
            claimed = await self._claim(connection, [m for m, problem in parsed if not problem])
            for message, problem in parsed:
                key = message.idempotency_key
                if problem is None and key not in claimed:
                    outcome.duplicates += 1  # applied before, or a second copy in this batch
                    continue
                claimed.discard(key)
                if problem is None and careful:
                    problem = await self._apply_carefully(session, message, outcome)
                elif problem is None:
                    await self._handle(session, message)
                if problem is None:
                    outcome.applied += 1
                else:
                    poison.append(Poison(message, problem))
            await session.flush()
            outcome.dead_lettered = await dead_letter(
                connection, poison, consumer=self.consumer, topic=self.dead_letter_topic,
                producer=self.producer,
            )  # fmt: skip
        return outcome

    async def _claim(self, connection: AsyncConnection, messages: list[InboundMessage]) -> set[str]:
        if not messages:
            return set()
        keys = [message.idempotency_key for message in messages]
        result = await connection.execute(_CLAIM, {"consumer": self.consumer, "keys": keys})
        return set(result.scalars())

    async def _apply_carefully(
        self, session: AsyncSession, message: InboundMessage, outcome: BatchOutcome
    ) -> str | None:
        """Apply `message` inside a savepoint; the reason to dead-letter it, or None if applied."""
        for attempt in range(1, self.max_attempts + 1):
            savepoint = await session.begin_nested()
            try:
                await self._handle(session, message)
                await session.flush()  # constraint errors surface here, inside the savepoint
            except Exception as error:
                await savepoint.rollback()
                kind = classify(error, self.permanent)
                if kind is Failure.TRANSIENT:
                    raise
                if kind is Failure.PERMANENT or attempt == self.max_attempts:
                    return describe(error)
                outcome.retries += 1
                log.warning("%s: %s at %s, attempt %d of %d", self.consumer,
                            type(error).__name__, message.position, attempt,
                            self.max_attempts)  # fmt: skip
                await asyncio.sleep(self.retry_backoff.delay(attempt - 1))
            else:
                await savepoint.commit()
                return None
        raise AssertionError("unreachable: the last attempt returns")

    async def _handle(self, session: AsyncSession, message: InboundMessage) -> None:
        """The handler, in a CONSUMER span that continues the producer's trace."""
        with tracer.start_as_current_span(
            f"process {message.topic}",
            context=extract_trace_context(message.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": message.topic,
                "messaging.destination.partition.id": str(message.partition),
                "messaging.kafka.offset": message.offset,
                "messaging.consumer.group.name": self.consumer,
            },
        ):
            await self.handler(message, UnitOfWork(session, source=self.source))


async def _connect(session: AsyncSession) -> AsyncConnection:
    """The batch's connection. Failing to get one is never the messages' fault: transient."""
    try:
        return await session.connection()
    except Exception as error:
        raise TransientError(f"database unavailable: {describe(error)}") from error
