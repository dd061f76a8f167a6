"""One measurement of the watched consumer groups' lag, asked of the broker.

End and start offsets come from ListOffsets, each group's committed offsets from OffsetFetch:
the test broker answers both (DescribeGroups and ListGroups it does not, so a group that has
never committed cannot be told from one that does not exist: both count as "no commits").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from canbao_stack.cdc.existing import existing_partitions
from canbao_stack.cdc.ledger import PublishedLedger


@dataclass
class Backlog:
    """What a partition holds that a watched group has not read yet (the worst group)."""

    messages: int = 0
    bytes: int = 0
    group: str = ""


@dataclass
class Lag:
    backlog: dict[TopicPartition, Backlog] = field(default_factory=dict)
    groups_without_commits: tuple[str, ...] = ()
    # Messages the broker dropped before a group read them, per (group, partition).
    evicted_unread: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)
    # The lowest position a watched group still needs, per partition.
    needed_from: dict[TopicPartition, int] = field(default_factory=dict)


async def measure_lag(
    admin: AIOKafkaAdminClient,
    consumer: AIOKafkaConsumer,
    ledger: PublishedLedger,
    groups: Iterable[str],
    topics: Iterable[str],
) -> Lag:
    partitions = await existing_partitions(admin, topics)
    if not partitions:
        return Lag()
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    lag = Lag(backlog={tp: Backlog() for tp in partitions}, needed_from=dict(ends))
    silent = []
    for group in groups:
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        offsets = {tp: committed[tp].offset if tp in committed else -1 for tp in partitions}
        if all(offset < 0 for offset in offsets.values()):
            silent.append(group)
        for tp, offset in offsets.items():
            if 0 <= offset < starts[tp]:
                lag.evicted_unread[(group, tp)] = starts[tp] - offset
            # No commit yet: its consumers (auto_offset_reset=earliest) will read it all.
            position = max(offset, starts[tp])
            lag.needed_from[tp] = min(lag.needed_from[tp], position)
            nbytes = ledger.backlog_bytes(tp, position, ends[tp])
            worst = lag.backlog[tp]
            if nbytes > worst.bytes or not worst.group:
                worst.bytes, worst.group = nbytes, group
            worst.messages = max(worst.messages, ends[tp] - position)
    lag.groups_without_commits = tuple(silent)
    return lag
