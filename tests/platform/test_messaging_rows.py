"""Rows a handler adds with `uow.add_row`: written in bulk with the batch's transaction, so they
count exactly once like any other effect, and a row the database refuses costs only its own
message (architecture.md "at-least-once in, exactly-once effect")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import (
    DLQ_REASON,
    ConsumerRunner,
    Producer,
    unit_of_work,
)
from tests.platform.conftest import (
    EFFECT_ROWS,
    add_effect_row,
    committed_offsets,
    effects,
    event,
    read_topic,
    wait_until,
)


async def test_a_row_postgresql_refuses_dead_letters_its_message_and_the_rest_are_written_once(
    kafka: MockKafkaCluster,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic, dead_letters = make_topic(partitions=1), make_topic("deadletter", partitions=1)
    sent = [event(topic, f"good-{n}", event_id=f"g{n}") for n in range(6)]
    sent.insert(3, event(topic, "nul \x00 in text", event_id="refused"))  # PostgreSQL: 22021
    await producer.send_many(sent)
    runner = make_runner([topic], add_effect_row, dead_letter_topic=dead_letters)
    await runner.start()
    await wait_until(lambda: runner.counts.handled == 7)

    assert await effects(database) == {f"g{n}": 1 for n in range(6)}
    assert (runner.counts.processed, runner.counts.dead_lettered) == (6, 1)
    [letter] = await read_topic(kafka.bootstrap_servers, dead_letters, 1)
    assert dict(letter.headers)["ce_id"] == b"refused"
    assert b"invalid byte sequence" in dict(letter.headers)[DLQ_REASON]  # PostgreSQL's reason
    assert await committed_offsets(kafka.bootstrap_servers, runner.name, topic) == {0: 7}


async def test_a_unit_of_work_that_raises_writes_none_of_its_rows(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with unit_of_work(database, service="tests") as uow:
            uow.add_row(EFFECT_ROWS, {"message_key": "request-1", "value": "changed"})
            raise RuntimeError("the request failed after adding a row")
    assert await effects(database) == {}

    async with unit_of_work(database, service="tests") as uow:
        uow.add_row(EFFECT_ROWS, {"message_key": "request-2", "value": "changed"})
    assert await effects(database) == {"request-2": 1}
