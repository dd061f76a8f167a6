"""The consumer runner: a supervised consumer-group loop around a `(message, uow)` handler.

    poll a batch → apply it (one DB transaction, see batch.py) → commit the offsets → poll …

The next batch is polled, and its records read, while one is applied: a consumer in Python spends
as long unpacking records and parsing envelopes as waiting for its transaction, and the two
overlap on two cores. Never two transactions at once: a person's events stay in order.

Offsets are committed only after the database commit, so a crash in between redelivers the
batch and the idempotency records make that harmless. A transient failure retries the same batch
forever with backoff; an error escaping the loop (a fatal group error such as the test broker's
INVALID_REQUEST on SyncGroup, a bug) closes the consumer and starts a new one with backoff,
counted in `restarts` and logged: the runner never dies silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from canbao_contracts import topics as contract_topics
from canbao_platform.background import BackgroundLoop
from canbao_platform.db import Database
from canbao_platform.messaging.batch import BatchApplier, BatchOutcome
from canbao_platform.messaging.failures import (
    MESSAGE_RETRY,
    RESTART,
    TRANSIENT_RETRY,
    Backoff,
    Failure,
    classify,
    describe,
)
from canbao_platform.messaging.group import Batches, GroupConsumer
from canbao_platform.messaging.messages import Handler, Parsed, event_source, parse_record
from canbao_platform.messaging.metrics import ConsumerCounts, runtime_metrics
from canbao_platform.messaging.producer import Producer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    max_batch: int = 500  # records per poll, so per database transaction
    poll_timeout_ms: int = 500
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_attempts: int = 3  # of a handler raising an unknown error, before dead-lettering
    message_retry_backoff: Backoff = MESSAGE_RETRY
    retry_backoff: Backoff = TRANSIENT_RETRY  # transient failures: the batch, forever
    restart_backoff: Backoff = RESTART  # fatal consumer errors
    shutdown_timeout_s: float = 30.0
    # How often the lag is measured: it visits every assigned partition (thousands, on a topic
    # sized for a province), and its readers (the lag gauge, /readyz) need nothing fresher.
    lag_interval_s: float = 1.0
    permanent_errors: tuple[type[BaseException], ...] = ()  # the service's own, besides ours
    consumer_options: Mapping[str, Any] = field(default_factory=dict)  # more AIOKafkaConsumer


class ConsumerRunner(BackgroundLoop):
    """Consumes `topics` as consumer group `name` (also the idempotency records' consumer),
    applying each message with `handler`; a Component of the service shell.

    `service` names who runs it: what the handler publishes has `ce_source` /canbao/<service>,
    and what it cannot apply goes to `dead_letter_topic`, by default deadletter.<service>.
    `client_options` say how to reach and log in to Kafka (`KafkaSettings.kafka_client_options`)."""

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        handler: Handler,
        database: Database,
        producer: Producer,
        bootstrap_servers: str,
        service: str,
        dead_letter_topic: str | None = None,
        config: RunnerConfig = RunnerConfig(),
        client_options: Mapping[str, Any] = MappingProxyType({}),
    ) -> None:
        super().__init__()
        self.name, self.topics, self.config = name, list(topics), config
        self.stop_timeout_s = config.shutdown_timeout_s
        self._bootstrap_servers = bootstrap_servers
        self._client_options = dict(client_options)
        self._applier = BatchApplier(
            consumer=name,
            handler=handler,
            database=database,
            producer=producer,
            dead_letter_topic=dead_letter_topic or contract_topics.dead_letter_topic(service).name,
            source=event_source(service),
            max_attempts=config.max_attempts,
            retry_backoff=config.message_retry_backoff,
            permanent=config.permanent_errors,
        )
        self.counts = ConsumerCounts(name)
        self._batch_in_hand = asyncio.Lock()  # held while a batch is applied, to its offsets
        self._state = "stopped"  # starting | consuming | retrying | restarting | stopped
        self._lag: dict[tuple[str, int], int] = {}
        self._lag_due = 0.0  # time.monotonic() from when the lag may be measured again
        # Per partition, the timestamp (ms) of the last message applied and committed.
        self._applied_ms: dict[tuple[str, int], int] = {}
        self.last_error: str | None = None

    async def start(self) -> None:
        if self._task is None:
            self._state = "starting"
        await super().start()
        runtime_metrics().watch_lag(self)

    async def stop(self) -> None:
        """Finish the batch in hand (database commit, then offsets), leave the group; a batch
        still in hand after `shutdown_timeout_s` is cancelled and comes again."""
        if self._task is not None and self._state in ("starting", "restarting"):
            self._task.cancel()  # no batch in hand: nothing to finish, no group join to wait for
        await super().stop()
        await self._applier.close()
        self._state = "stopped"

    def lag(self) -> dict[tuple[str, int], int]:
        return dict(self._lag)

    def consumed_through(self) -> datetime | None:
        """A time before which every message on this consumer's partitions has been applied,
        as far as the last lag measure tells (`lag_interval_s` old at most): the oldest
        timestamp last applied among the partitions that lag, the epoch if one of them has had
        nothing applied yet; None when none lags. For a service that waits for the rest of
        what was published together before acting on a part of it (matching's evaluator:
        a person's state and facts come on different topics). Messages published since the
        measure may be missing: a hint that saves work, never a guarantee to build on."""
        lagging = [tp for tp, n in self._lag.items() if n > 0]
        if not lagging:
            return None
        oldest = min(self._applied_ms.get(tp, 0) for tp in lagging)
        return datetime.fromtimestamp(oldest / 1000, UTC)

    def health(self) -> dict[str, Any]:
        lag, counts = self.lag(), self.counts
        return {
            "ready": self._state == "consuming",
            "state": self._state,
            "running": self.running,
            **{
                name: getattr(counts, name)
                for name in ("restarts", "processed", "duplicates", "dead_lettered", "retries")
            },
            "lag": {f"{topic}:{partition}": n for (topic, partition), n in sorted(lag.items())},
            "lag_total": sum(lag.values()),
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        """Consume until asked to stop; whatever ends a consumer, it starts again (backoff)."""
        failures = 0
        while not self.stopping:
            handled = self.counts.handled
            try:
                await self._consume()
            except Exception as error:  # whatever it was: count it, say it, start again
                if self.counts.handled > handled:
                    failures = 0  # it had been working: start the backoff over
                self.counts.restart()
                self._state, self.last_error = "restarting", describe(error)
                delay = self.config.restart_backoff.delay(failures)
                failures += 1
                log.warning(
                    "%s: consumer failed (%s); restart %d in %.1f s",
                    self.name,
                    self.last_error,
                    self.counts.restarts,
                    delay,
                )
                await self.sleep(delay)
        self._state = "stopped"

    async def _consume(self) -> None:
        config = self.config
        group = GroupConsumer(
            group=self.name,
            topics=self.topics,
            bootstrap_servers=self._bootstrap_servers,
            max_batch=config.max_batch,
            poll_timeout_ms=config.poll_timeout_ms,
            batch_in_hand=self._batch_in_hand,
            options={
                **self._client_options,
                "session_timeout_ms": config.session_timeout_ms,
                "heartbeat_interval_ms": config.heartbeat_interval_ms,
                **config.consumer_options,
            },
        )
        self._state = "starting"
        polling: asyncio.Task[Polled] | None = None
        try:
            await group.start()
            self._state = "consuming"
            polling = asyncio.create_task(_poll(group))
            while not self.stopping:
                polled = await polling
                # Measured with nothing else polled: the batch just polled is all that was
                # fetched and not applied, and the lag counts it.
                await self._measure_lag(group, polled.batches)
                # The next batch is polled and read (its records unpacked, their envelopes
                # parsed) while this one's transaction waits for the database.
                polling = asyncio.create_task(_poll(group))
                if polled.batches:
                    async with self._batch_in_hand:
                        # Polled while the batch before it was applied, it may have met a
                        # rebalance since (which waits for the batch in hand only): then its
                        # records come again, from the committed offsets, to whoever owns them.
                        if polled.rebalances == group.rebalances:
                            await self._process(group, polled)
        finally:
            if polling is not None:
                polling.cancel()  # polled, not applied: its offsets are not committed
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await polling
            self._lag, self._lag_due = {}, 0.0
            await group.stop()

    async def _measure_lag(self, group: GroupConsumer, in_hand: Batches) -> None:
        """At most once per `lag_interval_s`; an idle consumer still polls every
        `poll_timeout_ms`, so the lag it shows reaches 0 soon after the backlog is applied."""
        now = time.monotonic()
        if now >= self._lag_due:
            self._lag = await group.lag(in_hand)
            self._lag_due = now + self.config.lag_interval_s

    async def _process(self, group: GroupConsumer, polled: Polled) -> None:
        started = time.monotonic()
        outcome = await self._apply_until_done(polled.messages)
        if outcome is None:
            return  # asked to stop during an outage: nothing committed, the batch comes again
        self.counts.batch(outcome)
        for tp, batch in polled.batches.items():
            if batch:
                key = (tp.topic, tp.partition)
                self._applied_ms[key] = batch[-1].timestamp
                # The lag was measured with the batch in hand (counted as not applied): it is
                # that much less now, without waiting `lag_interval_s` for the next measure.
                if key in self._lag:
                    self._lag[key] = max(0, self._lag[key] - len(batch))
        await self._commit_offsets(group, polled.batches)
        duration = time.monotonic() - started
        runtime_metrics().batch_duration.record(duration, {"consumer": self.name})

    async def _apply_until_done(self, messages: list[Parsed]) -> BatchOutcome | None:
        """The batch applied and committed to the database; None if asked to stop first."""
        for attempt in itertools.count():  # forever: until it works or we are asked to stop
            try:
                outcome = await self._applier.apply(messages)
            except Exception as error:
                if classify(error, self.config.permanent_errors) is not Failure.TRANSIENT:
                    raise  # neither the message's fault nor the world's: a restart may clear it
                self._state, self.last_error = "retrying", describe(error)
                self.counts.retry()
                delay = self.config.retry_backoff.delay(attempt)
                log.warning(
                    "%s: %s; batch of %d retried in %.1f s",
                    self.name,
                    type(error).__name__,
                    len(messages),
                    delay,
                )
                if await self.sleep(delay):
                    return None
            else:
                self._state = "consuming"
                return outcome
        raise AssertionError("unreachable")

    async def _commit_offsets(self, group: GroupConsumer, batches: Batches) -> None:
        """After the database commit. (A seam for tests: a crash here is the worst moment.)"""
        await group.commit(batches)


@dataclass(frozen=True)
class Polled:
    """A polled batch: its records per partition (offsets, lag), every one of them read
    (`parse_record`) in the same order, and the group's rebalances when it was polled."""

    batches: Batches
    messages: list[Parsed]
    rebalances: int


async def _poll(group: GroupConsumer) -> Polled:
    batches = await group.poll()
    rebalances = group.rebalances
    messages = [parse_record(record) for batch in batches.values() for record in batch]
    return Polled(batches, messages, rebalances)
