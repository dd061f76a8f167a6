"""Rows a handler adds with `uow.add_row`, or buffers for a set-based statement of its own with
`uow.buffer`: written in bulk with the batch's transaction, so they count exactly once like any
other effect, and a row the database refuses costs only its own message (architecture.md
"at-least-once in, exactly-once effect")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session

from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import (
    DLQ_REASON,
    ConsumerRunner,
    Producer,
    UnitOfWork,
    savepoint,
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


@dataclass(eq=False)  # hashed by identity, as a module-level bulk write would be
class Tally:
    """A bulk write of the tests' own: one effect row per distinct key buffered, its value how
    many copies were, by one `INSERT … SELECT … GROUP BY` (what an executemany could not do);
    `writes` records each statement it ran (its name and its rows)."""

    name: str
    writes: list[tuple[str, list[str]]] = field(default_factory=list)

    def write(self, session: Session, rows: Sequence[str]) -> None:
        self.writes.append((self.name, list(rows)))
        session.execute(
            text(
                "INSERT INTO effects (message_key, value) "
                "SELECT key, count(*)::text FROM unnest(CAST(:keys AS text[])) AS batch (key) "
                "GROUP BY key"
            ),
            {"keys": list(rows)},
        )


async def tallied(connection: AsyncConnection) -> dict[str, str]:
    rows = await connection.execute(text("SELECT message_key, value FROM effects"))
    return {key: value for key, value in rows}


async def committed(database: Database) -> dict[str, str]:
    async with database.engine.connect() as connection:
        return await tallied(connection)


async def seen_by(uow: UnitOfWork) -> dict[str, str]:
    """What a query in the unit of work's own transaction sees."""
    return await tallied(await uow.session.connection())


async def test_a_bulk_write_writes_what_was_buffered_by_one_statement_at_commit(
    database: Database,
) -> None:
    tally = Tally("tally")
    async with unit_of_work(database, service="tests") as uow:
        for key in ("a", "b", "a"):
            uow.buffer(tally, key)
        assert await seen_by(uow) == {}  # invisible to queries until the commit
        assert tally.writes == []
    assert await committed(database) == {"a": "2", "b": "1"}
    assert tally.writes == [("tally", ["a", "b", "a"])]


async def test_a_bulk_write_in_a_savepoint_is_written_at_its_commit_or_discarded(
    database: Database,
) -> None:
    tally = Tally("tally")
    async with unit_of_work(database, service="tests") as uow:
        savepoint = await uow.session.begin_nested()
        uow.buffer(tally, "kept")
        await savepoint.commit()
        assert await seen_by(uow) == {"kept": "1"}  # written at the savepoint's commit

        savepoint = await uow.session.begin_nested()
        uow.buffer(tally, "refused")
        await savepoint.rollback()
        assert await seen_by(uow) == {"kept": "1"}

        uow.buffer(tally, "after")
    assert await committed(database) == {"kept": "1", "after": "1"}
    assert tally.writes == [("tally", ["kept"]), ("tally", ["after"])]


async def test_rows_buffered_before_a_savepoint_outlive_its_rollback(database: Database) -> None:
    tally = Tally("tally")
    async with unit_of_work(database, service="tests") as uow:
        uow.buffer(tally, "before")
        inner = await savepoint(uow.session)  # writes "before" outside the savepoint
        uow.buffer(tally, "refused")
        await inner.rollback()
        uow.buffer(tally, "after")
    assert await committed(database) == {"before": "1", "after": "1"}
    assert tally.writes == [("tally", ["before"]), ("tally", ["after"])]


async def test_a_unit_of_work_that_raises_runs_none_of_its_bulk_writes(database: Database) -> None:
    tally = Tally("tally")
    with pytest.raises(RuntimeError):
        async with unit_of_work(database, service="tests") as uow:
            uow.buffer(tally, "request-1")
            raise RuntimeError("the request failed after buffering a row")
    assert tally.writes == [] and await committed(database) == {}


async def test_bulk_writes_run_in_the_order_each_was_first_used(database: Database) -> None:
    log: list[tuple[str, list[str]]] = []
    first, second = Tally("first", log), Tally("second", log)
    async with unit_of_work(database, service="tests") as uow:
        uow.buffer(second, "s1")
        uow.add_row(EFFECT_ROWS, {"message_key": "plain", "value": "row"})
        uow.buffer(first, "f1")
        uow.buffer(second, "s2")
    assert log == [("second", ["s1", "s2"]), ("first", ["f1"])]
    async with database.engine.connect() as connection:
        keys = (await connection.execute(text("SELECT message_key FROM effects ORDER BY id"))).all()
    written = [key for (key,) in keys]
    assert sorted(written[:2]) == ["s1", "s2"] and written[2:] == ["plain", "f1"]
