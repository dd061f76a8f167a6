"""Lag-aware backpressure: never run so far ahead of the consumers that the broker evicts
events nobody has read (limits.py has the numbers and where they come from).

Before each chunk is sent, `admit()` checks an upper-bound estimate of every watched
partition's backlog (last measurement + what we published since). Only when that estimate would
cross the limit does it ask the broker (lag.py); then it waits, polling, until the slowest
watched group has read enough.

A group that has committed nothing on a partition is counted from the start of the log: its
consumers (auto_offset_reset=earliest) will read all of it. A group that never shows up would
block the bridge for good, so a wait says loudly which group and partition it waits for, and the
bridge's status (status.py) carries it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from canbao_stack.cdc.lag import Backlog, Lag, measure_lag
from canbao_stack.cdc.ledger import PublishedLedger

log = logging.getLogger("canbao.cdc.backpressure")

_WAIT_LOG_EVERY_S = 10.0


class BridgeStopping(Exception):
    """Raised in a wait when the bridge is asked to stop: the batch must not count as done."""


@dataclass
class GuardStats:
    waits: int = 0
    blocked_seconds: float = 0.0
    blocked_since: float | None = None
    max_backlog: Backlog = field(default_factory=Backlog)  # worst measured, over the run
    worst: Backlog = field(default_factory=Backlog)  # at the last measurement
    worst_partition: str = ""
    groups_without_commits: tuple[str, ...] = ()
    evicted_unread: int = 0  # messages the broker dropped before a watched group read them


class BacklogGuard:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        groups: tuple[str, ...],
        topics: tuple[str, ...],
        max_bytes: int,
        max_messages: int,
        ledger: PublishedLedger,
        poll_s: float = 0.2,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self.groups = groups
        self._topics = set(topics)
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self._ledger = ledger
        self._poll_s = poll_s
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._measured: dict[TopicPartition, Backlog] = {}
        self._since: dict[TopicPartition, Backlog] = {}  # published after the last measurement
        self._evicted: dict[tuple[str, TopicPartition], int] = {}
        self._measuring = asyncio.Lock()  # one measurement at a time: they adjust `_since`
        self.stats = GuardStats()
        self.stopping = False

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None)
        await self._admin.start()
        await self._consumer.start()
        await self.measure()  # a backlog left by an earlier run counts from the start

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    def published(self, tp: TopicPartition, first: int, end: int, nbytes: int) -> None:
        """Called for each partition of an acknowledged chunk."""
        self._ledger.add(tp, first, end, nbytes)
        self._topics.add(tp.topic)
        since = self._since.setdefault(tp, Backlog())
        since.messages += end - first
        since.bytes += nbytes

    async def admit(self, nbytes: int, nmessages: int) -> None:
        """Return once a chunk of this size can be sent without the backlog crossing the limit."""
        if self._fits(nbytes, nmessages):
            return
        started = time.monotonic()
        last_said = 0.0
        await self.measure()
        while not self._fits(nbytes, nmessages):
            if self.stopping:
                raise BridgeStopping
            now = time.monotonic()
            if self.stats.blocked_since is None:
                self.stats.blocked_since = now
                self.stats.waits += 1
            if now - last_said >= _WAIT_LOG_EVERY_S:
                last_said = now
                self._say_waiting(now - started)
            await asyncio.sleep(self._poll_s)
            await self.measure()
        if self.stats.blocked_since is not None:
            self.stats.blocked_seconds += time.monotonic() - self.stats.blocked_since
            self.stats.blocked_since = None

    def _fits(self, nbytes: int, nmessages: int) -> bool:
        # Upper bound per partition: the last measurement plus what was published since (reads
        # only lower it). The chunk could land on any one partition: add all of it to the worst.
        worst_bytes = worst_messages = 0
        for tp in self._measured.keys() | self._since.keys():
            measured = self._measured.get(tp, Backlog())
            since = self._since.get(tp, Backlog())
            worst_bytes = max(worst_bytes, measured.bytes + since.bytes)
            worst_messages = max(worst_messages, measured.messages + since.messages)
        if worst_messages == 0:
            return True  # nothing unread anywhere: even an oversized chunk must go through
        return (
            worst_bytes + nbytes <= self.max_bytes
            and worst_messages + nmessages <= self.max_messages
        )

    async def measure(self) -> None:
        """Ask the broker for every watched partition's backlog behind the slowest group."""
        assert self._admin is not None and self._consumer is not None
        async with self._measuring:
            since_before = {tp: Backlog(b.messages, b.bytes) for tp, b in self._since.items()}
            lag = await measure_lag(
                self._admin, self._consumer, self._ledger, self.groups, self._topics
            )
            if not lag.backlog:
                return
            for tp, position in lag.needed_from.items():
                self._ledger.forget_before(tp, position)
            self._measured = lag.backlog
            for tp, before in since_before.items():  # keep what was published meanwhile
                self._since[tp].messages -= before.messages
                self._since[tp].bytes -= before.bytes
            self._update_stats(lag)

    def _update_stats(self, lag: Lag) -> None:
        stats = self.stats
        stats.groups_without_commits = lag.groups_without_commits
        for (group, tp), lost in lag.evicted_unread.items():
            if self._evicted.get((group, tp), 0) < lost:
                log.error(
                    "the broker evicted %d messages of %s[%d] before group %r read them",
                    lost,
                    tp.topic,
                    tp.partition,
                    group,
                )
                self._evicted[(group, tp)] = lost
        stats.evicted_unread = sum(self._evicted.values())
        tp, worst = max(lag.backlog.items(), key=lambda item: item[1].bytes)
        stats.worst, stats.worst_partition = worst, f"{tp.topic}[{tp.partition}]"
        if worst.bytes > stats.max_backlog.bytes:
            stats.max_backlog = Backlog(worst.messages, worst.bytes, worst.group)

    def _say_waiting(self, waited: float) -> None:
        worst = self.stats.worst
        why = (
            "it has committed no offset yet: is its service running?"
            if worst.group in self.stats.groups_without_commits
            else "it reads too slowly"
        )
        log.warning(
            "backpressure: blocked %.0f s by group %r on %s, %d messages / %d bytes "
            "unread (limits %d / %d): %s",
            waited,
            worst.group,
            self.stats.worst_partition,
            worst.messages,
            worst.bytes,
            self.max_messages,
            self.max_bytes,
            why,
        )
