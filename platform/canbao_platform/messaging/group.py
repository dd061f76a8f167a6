"""One membership of a consumer group: the aiokafka consumer that a runner polls, commits and
measures lag with. After a fatal error the runner drops it and makes a new one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord

log = logging.getLogger(__name__)
Batches = dict[TopicPartition, list[ConsumerRecord]]


class GroupConsumer:
    def __init__(
        self,
        *,
        group: str,
        topics: Sequence[str],
        bootstrap_servers: str,
        max_batch: int,
        poll_timeout_ms: int,
        batch_in_hand: asyncio.Lock,
        options: Mapping[str, Any],
    ) -> None:
        """`options` go to AIOKafkaConsumer (session and heartbeat timeouts, client id…)."""
        self.group, self._max_batch, self._poll_timeout_ms = group, max_batch, poll_timeout_ms
        # Partitions revoked or assigned so far: a batch polled before the latest of these is
        # stale, its partitions another member's or their positions reset to the committed
        # offsets (the runner drops it; its records come again).
        self.rebalances = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,  # offsets are committed after the database, by us
            auto_offset_reset="earliest",  # a new group reads the topic from its beginning
            **options,
        )
        self._consumer.subscribe(list(topics), listener=_FinishBatchFirst(self, batch_in_hand))

    async def start(self) -> None:
        """Connect and join the group (returns once partitions are assigned)."""
        await self._consumer.start()

    async def stop(self) -> None:
        """Leave the group. Commits nothing: what was not committed will be read again."""
        await self._consumer.stop()

    async def poll(self) -> Batches:
        """Up to max_batch records: waits for the first, then tops up from what was already
        fetched, since each batch costs a transaction and an offset commit however small."""
        batches: Batches = await self._consumer.getmany(
            timeout_ms=self._poll_timeout_ms, max_records=self._max_batch
        )
        count = sum(len(records) for records in batches.values())
        while 0 < count < self._max_batch:
            more = await self._consumer.getmany(timeout_ms=0, max_records=self._max_batch - count)
            if not more:
                break
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                count += len(records)
        return batches

    async def commit(self, batches: Batches) -> None:
        """Commit the offsets after `batches` (explicitly: never what was merely fetched)."""
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            # The group rebalanced under us (e.g. an outage longer than the poll interval): the
            # partitions may be another member's now. Harmless: the effects are committed with
            # their idempotency records, so whoever reads these messages again skips them.
            log.warning("%s: offsets not committed (%s)", self.group, type(error).__name__)

    async def lag(self, in_hand: Batches) -> dict[tuple[str, int], int]:
        """Per assigned partition: highwater minus the next offset to apply (the batch in hand
        counts as not applied). Partitions not fetched yet are left out."""
        lag = {}
        for tp in self._consumer.assignment():
            if tp not in self._consumer.assignment():
                continue  # revoked while we awaited the previous partition's position
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            batch = in_hand.get(tp)
            # Once fetched, the position is known and position() returns at once (it waits
            # only while an out-of-range offset is being reset).
            position = batch[0].offset if batch else await self._consumer.position(tp)
            lag[(tp.topic, tp.partition)] = max(0, highwater - position)
        return lag


class _FinishBatchFirst(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka rebalances in a background task (aiokafka#929): before it hands our partitions
    to another member, wait for the batch in hand to commit its transaction and its offsets, so
    the next owner starts after it instead of applying it again (harmless, but wasted)."""

    def __init__(self, group: GroupConsumer, batch_in_hand: asyncio.Lock) -> None:
        self._group, self._batch_in_hand = group, batch_in_hand

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._batch_in_hand:
            self._group.rebalances += 1

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._group.rebalances += 1
