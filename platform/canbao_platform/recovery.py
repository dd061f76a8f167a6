"""The Kafka half of restoring a service's database to a point in time (44号 Art.26 容灾备份;
deploy/README.md "Restoring a service's database").

A consumer commits its offsets after its database transaction. A database restored to an
earlier time T has lost the effects of the messages applied after T, but their offsets stay
committed: started as it is, the service would never apply them again. So before it starts,
each of its consumer groups goes back to the first message at or after T - margin:

    python -m canbao_platform.recovery rewind --service identity --to 2026-12-02T09:30:00+08:00

Everything from there is read again; what the restored database had already applied is skipped
by its idempotency records (processed_messages, in the same transaction as the effect), the rest
is applied. The margin must exceed the groups' lag at T (a message produced before T - margin
but applied only after T would be lost) and stay within the topics' retention and the age at
which processed_messages are pruned (older records no longer stop a message applied twice).
The service must be stopped: the tool joins each group, and refuses unless it is given every
partition (a live member would keep some, and commit over the rewind).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from canbao_platform.messaging.producer import Producer
from canbao_platform.settings import KafkaSettings

DEFAULT_MARGIN = timedelta(hours=1)
_SCAN_BATCH = 2_000
# Joining a group waits for the broker's rebalance delay (group.initial.rebalance.delay.ms, 3 s
# by default), and on the test broker for the last member's session to expire.
_JOIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Rewound:
    group: str
    topic: str
    partition: int
    committed: int | None  # before; None: the group had no offset there (it reads from the start)
    offset: int  # the group's committed offset now

    @property
    def reread(self) -> int:
        """Messages the group will read again."""
        return 0 if self.committed is None else self.committed - self.offset


async def rewind(
    *,
    bootstrap_servers: str,
    groups: Mapping[str, Sequence[str]],
    to: datetime,
    margin: timedelta = DEFAULT_MARGIN,
    dry_run: bool = False,
    consumer_options: Mapping[str, Any] | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> list[Rewound]:
    """Move each group of `groups` (group → its topics) back to the first message of each
    partition stamped at or after `to - margin`; never forward. `consumer_options` go to the
    AIOKafkaConsumer that joins each group (e.g. the service's session timeout);
    `client_options` (`KafkaSettings.kafka_client_options()`) to every Kafka client, so the tool
    logs in as the service whose groups it moves."""
    if to.tzinfo is None:
        raise ValueError("the restore target needs a time zone (e.g. +08:00)")
    since_ms = int((to - margin).timestamp() * 1000)
    done: list[Rewound] = []
    for group, topics in groups.items():
        done += await _rewind_group(
            bootstrap_servers,
            group,
            topics,
            since_ms,
            dry_run,
            client_options or {},
            consumer_options or {},
        )
    return done


async def _rewind_group(
    bootstrap_servers: str,
    group: str,
    topics: Sequence[str],
    since_ms: int,
    dry_run: bool,
    client: Mapping[str, Any],
    options: Mapping[str, Any],
) -> list[Rewound]:
    async with Producer(bootstrap_servers, **client) as producer:  # it waits for metadata
        partitions = {
            TopicPartition(topic, number)
            for topic in topics
            for number in await producer.partitions_for(topic)
        }
    # A member of the group, not an outsider committing: the test broker takes offsets from
    # members only, and joining proves the service stopped: it is then given every partition.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client,
        **options,
    )
    consumer.subscribe(list(topics))
    await consumer.start()
    try:
        await _wait_for_all(consumer, partitions, group)
        ordered = sorted(partitions, key=lambda tp: (tp.topic, tp.partition))
        targets = await _offsets_since(consumer, ordered, since_ms)
        rewound, moves = [], {}
        for tp in ordered:
            committed = await consumer.committed(tp)
            offset = targets[tp] if committed is None else min(committed, targets[tp])
            rewound.append(Rewound(group, tp.topic, tp.partition, committed, offset))
            if committed is not None and offset < committed:
                moves[tp] = offset
        if moves and not dry_run:
            await consumer.commit(moves)
        return rewound
    finally:
        await consumer.stop()


async def _wait_for_all(
    consumer: AIOKafkaConsumer, partitions: set[TopicPartition], group: str
) -> None:
    deadline = asyncio.get_running_loop().time() + _JOIN_TIMEOUT_S
    while consumer.assignment() != partitions:
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(
                f"{group}: given {len(consumer.assignment())} of {len(partitions)} partitions: "
                "another member is consuming; stop the service's consumers first"
            )
        await asyncio.sleep(0.1)


async def _offsets_since(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since_ms: int
) -> dict[TopicPartition, int]:
    """Per partition the first offset stamped at or after `since_ms`, or its end offset.

    Kafka answers from its time index. Where it answers nothing, that means no such message
    (the end offset), unless the broker cannot look up times at all (the test broker): then
    the partition's last message is at or after the time, and the partition is read instead."""
    found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    offsets = {}
    for tp in partitions:
        answer = found.get(tp)
        if answer is not None:
            offsets[tp] = answer.offset
        elif ends[tp] == starts[tp] or await _stamp_at(consumer, tp, ends[tp] - 1) < since_ms:
            offsets[tp] = ends[tp]
        else:
            offsets[tp] = await _scan(consumer, tp, starts[tp], ends[tp], since_ms)
    return offsets


async def _stamp_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> int:
    consumer.seek(tp, offset)
    while True:
        records = (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp)
        if records:
            return int(records[0].timestamp)


async def _scan(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int, since_ms: int
) -> int:
    consumer.seek(tp, start)
    position = start
    while position < end:
        records = (await consumer.getmany(tp, timeout_ms=1000, max_records=_SCAN_BATCH)).get(tp)
        for record in records or ():
            if record.timestamp >= since_ms:
                return int(record.offset)
            position = record.offset + 1
    return end


def service_groups(service: str) -> Mapping[str, Sequence[str]]:
    """The consumer groups of a service and their topics, as its definition names them."""
    from canbao_platform.migrate import service_definition

    return service_definition(service).consumer_groups


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rewind_cmd = commands.add_parser("rewind", help="move a service's consumer groups back")
    rewind_cmd.add_argument("--service", required=True, help="identity, matching, …")
    rewind_cmd.add_argument(
        "--to",
        required=True,
        type=datetime.fromisoformat,
        help="the restore target, ISO 8601 with its offset",
    )
    rewind_cmd.add_argument(
        "--margin-minutes", type=float, default=DEFAULT_MARGIN.total_seconds() / 60
    )
    rewind_cmd.add_argument("--dry-run", action="store_true", help="say what, move nothing")
    rewind_cmd.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")
    args = parser.parse_args(argv)
    # The service's own Kafka login (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*), as its pods have it.
    kafka = KafkaSettings()
    groups = service_groups(args.service)
    if not groups:
        print(f"{args.service} has no consumer groups: nothing to rewind")
        return
    done = asyncio.run(
        rewind(
            bootstrap_servers=args.bootstrap_servers or kafka.kafka_bootstrap_servers,
            groups=groups,
            to=args.to,
            margin=timedelta(minutes=args.margin_minutes),
            dry_run=args.dry_run,
            client_options=kafka.kafka_client_options(),
        )
    )
    for r in done:
        print(f"{r.group} {r.topic}:{r.partition} {r.committed} -> {r.offset} (re-read {r.reread})")
    verb = "would re-read" if args.dry_run else "will re-read"
    print(f"{args.service}: {verb} {sum(r.reread for r in done)} messages")


if __name__ == "__main__":
    main()
