"""Replaying dead letters: once the cause is fixed, an event that was dead-lettered comes back
to its topic and is applied; a replay is not repeated."""

from __future__ import annotations

from collections.abc import Callable

from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import (
    DLQ_REASON,
    DLQ_REPLAYED_FROM,
    ConsumerRunner,
    InboundMessage,
    PermanentError,
    Producer,
    ReplayFilter,
    replay_dead_letters,
)
from tests.platform.conftest import Recorder, effects, event, read_topic, wait_until


async def test_a_fixed_event_is_replayed_from_the_dead_letter_topic_and_applied(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic, other, dead_letters = make_topic(), make_topic(), make_topic("deadletter")
    fixed = False

    def fail(message: InboundMessage) -> BaseException | None:
        if message.value == b"unknown region" and not fixed:
            return PermanentError("region 520199 not in the code table")
        if message.value == b"broken":
            return PermanentError("no birth date")
        return None

    runner = make_runner([topic, other], Recorder(fail=fail), dead_letter_topic=dead_letters)
    await producer.send_many(
        [
            event(topic, "unknown region", event_id="e1"),
            event(topic, "broken", event_id="e2"),
            event(other, "unknown region", event_id="e3"),
        ]
    )
    await runner.start()
    await wait_until(lambda: runner.counts.dead_lettered == 3)
    assert await effects(database) == {}

    fixed = True  # the code table now has the region
    only = ReplayFilter(reason_contains="code table", original_topic=topic)
    report = await replay_dead_letters(
        bootstrap_servers=kafka.bootstrap_servers,
        dead_letter_topic=dead_letters,
        producer=producer,
        only=only,
        group_id=f"{dead_letters}.replay",
    )
    assert (report.read, report.replayed, report.skipped) == (3, 1, 2)
    await wait_until(lambda: runner.counts.processed == 1)
    assert await effects(database) == {"e1": 1}  # same ce_id, applied: it was never recorded

    replayed = (await read_topic(kafka.bootstrap_servers, topic, 3))[-1]
    headers = dict(replayed.headers)
    assert replayed.value == b"unknown region" and headers["ce_id"] == b"e1"
    assert DLQ_REASON not in headers
    assert headers[DLQ_REPLAYED_FROM].startswith(dead_letters.encode())

    again = await replay_dead_letters(
        bootstrap_servers=kafka.bootstrap_servers,
        dead_letter_topic=dead_letters,
        producer=producer,
        only=only,
        group_id=f"{dead_letters}.replay",
    )
    assert (again.read, again.replayed) == (0, 0)  # the group's position remembers
