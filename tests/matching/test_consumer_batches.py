"""Matching's consumer one polled batch at a time: the batch's facts and people are written by one
statement per kind when it commits (store.py), and the result is the one applying its events one
by one would give — duplicates, revisions out of order, a merge anywhere in the batch, a poison
message among them (architecture.md, "at-least-once in, exactly-once effect"). Each test hands
its batch to the runtime's BatchApplier as the runner does after a poll (each record read), on a
real database, with dead letters sent to the real broker."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord

from canbao_contracts.codes import StatusCode
from canbao_contracts.envelope import KafkaRecord, encode
from canbao_contracts.events import (
    CollectionApproved,
    Event,
    FactAsserted,
    FactsAsserted,
    FactSource,
    PersonsMerged,
    PersonUpdated,
    fact_id_for,
)
from canbao_contracts.events.vocabulary import Channel
from canbao_matching import store
from canbao_matching.evaluation import Evaluator, evaluate_due
from canbao_matching.handlers import HANDLER
from canbao_matching.tables import facts, persons
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import DLQ_REASON, Backoff, Producer, unit_of_work
from canbao_platform.messaging.batch import BatchApplier, BatchOutcome
from canbao_platform.messaging.messages import event_source, parse_record
from tests.matching.people import OBSERVED, enrolled, person
from tests.platform.conftest import read_topic

S = StatusCode
DEAD_LETTERS = "deadletter.matching.test"
Batch = Callable[..., Awaitable[BatchOutcome]]
EPOCH = datetime.fromtimestamp(0, UTC)


@pytest.fixture
async def apply_batch(
    matching_kafka: MockKafkaCluster, matching_db: Database
) -> AsyncIterator[Batch]:
    """Apply the given events (or records, to send one malformed) as one polled batch."""
    matching_kafka.create_topic(DEAD_LETTERS, 1)
    offsets = itertools.count()
    async with Producer(matching_kafka.bootstrap_servers) as producer:
        applier = BatchApplier(
            consumer="matching",
            handler=HANDLER,
            database=matching_db,
            producer=producer,
            dead_letter_topic=DEAD_LETTERS,
            source=event_source("matching"),
            retry_backoff=Backoff(0.01, 0.05),
        )

        async def apply(
            items: Sequence[Event | KafkaRecord], published_at: datetime = EPOCH
        ) -> BatchOutcome:
            records = [
                i if isinstance(i, KafkaRecord) else encode(i, source="/tests") for i in items
            ]
            stamp = int(published_at.timestamp() * 1000)
            polled = [consumed(r, next(offsets), stamp) for r in records]
            return await applier.apply([parse_record(record) for record in polled])

        try:
            yield apply
        finally:
            await applier.close()


def consumed(record: KafkaRecord, offset: int, timestamp: int = 0) -> ConsumerRecord[bytes, bytes]:
    key, value = record.key or b"", record.value or b""
    return ConsumerRecord(
        topic=record.topic,
        partition=0,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=list(record.headers),
    )


@pytest.fixture
def statements(matching_db: Database) -> Iterator[list[str]]:
    """The SQL statements the database is sent, as they are sent."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    sa.event.listen(matching_db.engine.sync_engine, "before_cursor_execute", record)
    yield sent
    sa.event.remove(matching_db.engine.sync_engine, "before_cursor_execute", record)


async def person_row(database: Database, pid: uuid.UUID) -> Any:
    async with database.engine.connect() as connection:
        query = sa.select(persons).where(persons.c.person_id == pid)
        return (await connection.execute(query)).one_or_none()


async def fact_row(database: Database, fact_id: uuid.UUID) -> Any:
    async with database.engine.connect() as connection:
        query = sa.select(facts).where(facts.c.fact_id == fact_id)
        return (await connection.execute(query)).one()


async def evaluated(database: Database) -> None:
    """What the evaluator leaves: nobody pending."""
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(persons).values(
                pending=False,
                pending_observed_at=None,
                pending_since=None,
                pending_published_at=None,
            )
        )


async def test_the_newest_revision_of_a_fact_in_one_batch_is_kept_and_an_older_copy_is_ignored(
    apply_batch: Batch, matching_db: Database, statements: list[str]
) -> None:
    pid = uuid.uuid4()
    first = enrolled(pid, S.RESIDENT_PENSION)
    day = timedelta(days=1)

    def revision(n: int, **changes: Any) -> FactAsserted:
        fact = first.model_copy(
            update={"revision": n, "observed_at": OBSERVED + n * day, **changes}
        )
        return FactAsserted(person_id=pid, fact=fact)

    newest = revision(3, region_code="520103")
    same_revision_later = revision(3, region_code="520302")  # a second copy: changes nothing
    outcome = await apply_batch(
        [revision(2), newest, revision(1), same_revision_later, revision(2)]
    )
    assert (outcome.applied, outcome.dead_lettered) == (5, 0)
    # Applied as one batch (the claim, the facts), not replayed message by message after
    # PostgreSQL refused to change one row twice in a statement.
    assert len(statements) == 2, statements
    row = await fact_row(matching_db, first.fact_id)
    assert (row.revision, row.observed_at, row.body["region_code"]) == (
        3,
        newest.fact.observed_at,
        "520103",
    )
    held = await person_row(matching_db, pid)
    assert held.pending and held.pending_observed_at == newest.fact.observed_at

    await evaluated(matching_db)
    await apply_batch([revision(2), revision(1)])  # late copies, in a batch of their own
    row = await fact_row(matching_db, first.fact_id)
    assert (row.revision, row.body["region_code"]) == (3, "520103")
    assert not (await person_row(matching_db, pid)).pending  # nothing changed: nothing to do


async def test_a_retraction_stays_when_an_older_revision_arrives_late(
    apply_batch: Batch, matching_db: Database
) -> None:
    pid = uuid.uuid4()
    fact = enrolled(pid, S.RESIDENT_MEDICAL)
    retraction = fact.model_copy(update={"revision": 2, "retracted": True})
    await apply_batch([FactAsserted(person_id=pid, fact=fact)])
    # The retraction and, behind it in the same batch, a late copy of the revision it retracts.
    await apply_batch(
        [FactAsserted(person_id=pid, fact=retraction), FactAsserted(person_id=pid, fact=fact)]
    )
    row = await fact_row(matching_db, fact.fact_id)
    assert (row.revision, row.retracted) == (2, True)
    await evaluated(matching_db)
    await apply_batch([FactAsserted(person_id=pid, fact=fact)])  # and later still, alone
    row = await fact_row(matching_db, fact.fact_id)
    assert (row.revision, row.retracted) == (2, True)
    assert not (await person_row(matching_db, pid)).pending


async def test_facts_asserted_together_are_kept_as_if_each_came_alone(
    apply_batch: Batch, matching_db: Database
) -> None:
    """A FactsAsserted (what identity publishes of a rebuild) and FactAsserted (what it published
    before, still on the topic) in one batch, in any order: per fact, the highest revision."""
    pid = uuid.uuid4()
    pension, medical = enrolled(pid, S.RESIDENT_PENSION), enrolled(pid, S.RESIDENT_MEDICAL)
    newer_pension = pension.model_copy(update={"revision": 2, "region_code": "520103"})
    retracted_medical = medical.model_copy(update={"revision": 3, "retracted": True})
    outcome = await apply_batch(
        [
            FactsAsserted(person_id=pid, facts=(newer_pension, medical)),
            FactAsserted(person_id=pid, fact=pension),  # a late copy of an older revision
            FactsAsserted(person_id=pid, facts=(retracted_medical,)),
            FactAsserted(person_id=pid, fact=medical),
        ]
    )
    assert (outcome.applied, outcome.dead_lettered) == (4, 0)
    kept = await fact_row(matching_db, pension.fact_id)
    assert (kept.revision, kept.retracted, kept.body["region_code"]) == (2, False, "520103")
    kept = await fact_row(matching_db, medical.fact_id)
    assert (kept.revision, kept.retracted) == (3, True)
    assert (await person_row(matching_db, pid)).pending


async def test_everyone_in_a_batch_is_marked_pending_with_their_last_state(
    apply_batch: Batch, matching_db: Database
) -> None:
    people = [uuid.uuid4() for _ in range(300)]
    batch: list[Event] = []
    for n, pid in enumerate(people):
        observed = OBSERVED + timedelta(minutes=n)
        batch += [
            person(pid),
            FactAsserted(person_id=pid, fact=enrolled(pid, S.RESIDENT_MEDICAL)),
            FactAsserted(
                person_id=pid, fact=enrolled(pid, S.RESIDENT_PENSION, observed_at=observed)
            ),
        ]
    # Identity's newer state of the first person, then a collection: the newer state stays.
    renamed = PersonUpdated(
        **(person(people[0]).model_dump() | {"masked_name": "李*"}), changed=("masked_name",)
    )
    reviewed = OBSERVED + timedelta(days=1)
    collection = CollectionApproved(
        collection_id=uuid.uuid4(),
        person_id=people[0],
        channel=Channel.COUNTER,
        items={},
        resolved_reasons=(),
        handler="clerk-1",
        handled_at=reviewed,
        reviewer="reviewer-1",
        reviewed_at=reviewed,
    )
    outcome = await apply_batch([*batch, renamed, collection])
    assert (outcome.applied, outcome.dead_lettered) == (len(batch) + 2, 0)

    async with matching_db.engine.connect() as connection:
        rows = {r.person_id: r for r in await connection.execute(sa.select(persons))}
        fact_count = await connection.scalar(sa.select(sa.func.count()).select_from(facts))
    assert rows.keys() == set(people) and fact_count == 2 * len(people)
    assert all(r.pending and r.state is not None for r in rows.values())
    for n, pid in enumerate(people):  # the newest source change of each person's facts
        assert rows[pid].pending_observed_at == max(OBSERVED, OBSERVED + timedelta(minutes=n))
    assert rows[people[0]].state["masked_name"] == "李*"
    assert rows[people[1]].state["masked_name"] == "张*"


async def test_a_batch_takes_the_same_statements_however_many_events_it_holds(
    apply_batch: Batch, matching_db: Database, statements: list[str]
) -> None:
    """No round trip per event on the hot path (registry.persons and registry.facts)."""
    for size in (2, 100):
        people = [uuid.uuid4() for _ in range(size)]
        start = len(statements)
        await apply_batch(
            [
                event
                for pid in people
                for event in (
                    person(pid),
                    FactAsserted(person_id=pid, fact=enrolled(pid, S.RESIDENT_MEDICAL)),
                )
            ]
        )
        assert len(statements) - start == 3, statements[start:]  # claim, facts, persons
    async with matching_db.engine.connect() as connection:
        pending = sa.select(sa.func.count()).select_from(persons).where(persons.c.pending)
        assert await connection.scalar(pending) == 102


async def test_a_poison_message_is_dead_lettered_alone_and_the_rest_of_its_batch_is_written(
    apply_batch: Batch, matching_db: Database, matching_kafka: MockKafkaCluster
) -> None:
    people = [uuid.uuid4() for _ in range(6)]
    good: list[Event] = [
        e
        for pid in people
        for e in (person(pid), FactAsserted(person_id=pid, fact=enrolled(pid, S.RESIDENT_MEDICAL)))
    ]
    # A fact PostgreSQL refuses when the batch's facts are written (U+0000 in jsonb, SQLSTATE
    # 22P05): the whole statement fails, and the batch is replayed message by message.
    source = FactSource(system="si_core", table="ac02", record_key="id=\x00")
    pension = enrolled(people[0], S.RESIDENT_PENSION).model_copy(
        update={"source": source, "fact_id": fact_id_for(people[0], "enrolment", source)}
    )
    refused = FactAsserted(person_id=people[0], fact=pension)
    undecodable = encode(good[0], source="/tests")
    undecodable = KafkaRecord(
        topic=undecodable.topic, key=undecodable.key, value=b"{", headers=undecodable.headers
    )
    outcome = await apply_batch([*good[:5], refused, *good[5:9], undecodable, *good[9:]])
    assert (outcome.applied, outcome.dead_lettered) == (len(good), 2)

    async with matching_db.engine.connect() as connection:
        rows = (await connection.execute(sa.select(persons))).all()
        held = (await connection.execute(sa.select(facts.c.person_id))).scalars().all()
    assert {r.person_id for r in rows} == set(people) and all(r.pending for r in rows)
    assert sorted(held) == sorted(people)  # each person's good fact, not the refused one
    letters = await read_topic(matching_kafka.bootstrap_servers, DEAD_LETTERS, 2)
    assert [letter.value for letter in letters] == [encode(refused, source="/tests").value, b"{"]
    reasons = [dict(letter.headers)[DLQ_REASON] for letter in letters]
    assert b"unsupported Unicode escape sequence" in reasons[0]  # PostgreSQL's, at the write


@pytest.mark.parametrize("known_before", [False, True], ids=["new", "known"])
async def test_a_merge_and_the_retired_person_s_events_in_one_batch_agree_in_any_order(
    apply_batch: Batch, matching_db: Database, known_before: bool
) -> None:
    """A merge is written at once, the batch's states and facts at its commit: whatever their
    order in the batch, the retired person ends merged, never pending, with their last state."""
    outcomes = []
    for order in itertools.permutations(("state", "fact", "merge")):
        retired, survivor = uuid.uuid4(), uuid.uuid4()
        if known_before:
            await apply_batch([person(retired), person(survivor)])
        fact = enrolled(retired, S.RESIDENT_MEDICAL)
        events: dict[str, Event] = {
            "state": PersonUpdated(
                **(person(retired).model_dump() | {"masked_name": "王*"}),
                changed=("masked_name",),
            ),
            "fact": FactAsserted(person_id=retired, fact=fact),
            "merge": PersonsMerged(merged_person_id=retired, surviving_person_id=survivor),
        }
        await apply_batch([events[name] for name in order])
        row = await person_row(matching_db, retired)
        assert row is not None, order
        outcomes.append(
            (
                row.merged_into == survivor,
                row.pending,
                row.state["masked_name"],
                row.pending_observed_at,
                row.verdict,
                (await fact_row(matching_db, fact.fact_id)).revision,
            )
        )
    assert outcomes == [(True, False, "王*", OBSERVED, None, 1)] * len(outcomes)


async def test_a_pending_person_waits_for_what_was_published_with_their_newest_mark(
    apply_batch: Batch, matching_db: Database
) -> None:
    """identity publishes a person's state and facts on different topics: a consumer that lags
    may apply one before the other. A pending person is evaluated once the consumer has applied
    everything published up to the newest message that marked them (`consumed_through`), or
    after `max_wait_s` — and the longest-waiting first."""
    first, second = uuid.uuid4(), uuid.uuid4()
    t1, t2, t3 = (OBSERVED + timedelta(seconds=n) for n in (1, 2, 3))
    await apply_batch([person(first)], t1)
    await apply_batch([person(second)], t2)
    since = (await person_row(matching_db, first)).pending_since
    fact = FactAsserted(person_id=first, fact=enrolled(first, S.RESIDENT_MEDICAL))
    await apply_batch([fact], t3)
    held = await person_row(matching_db, first)
    assert (held.pending_since, held.pending_published_at) == (since, t3)  # the first mark's

    now = OBSERVED + timedelta(days=1)

    def evaluator(through: datetime | None, max_wait_s: float = 3600) -> Evaluator:
        return Evaluator(
            matching_db, clock=lambda: now, consumed_through=lambda: through, max_wait_s=max_wait_s
        )

    assert await evaluator(t1).run_once() == 0  # both wait for the rest
    assert (await person_row(matching_db, second)).pending
    assert await evaluator(t2).run_once() == 1  # the second's only mark is applied through
    assert not (await person_row(matching_db, second)).pending
    assert (await person_row(matching_db, first)).pending
    waited = evaluator(t2, max_wait_s=0)  # waited long enough
    assert await waited.run_once() == 1
    row = await person_row(matching_db, first)
    assert (row.pending, row.pending_since, row.pending_published_at, row.in_scope) == (
        False,
        None,
        None,
        True,
    )

    await apply_batch([person(second)], t3)
    await apply_batch([fact], t3)  # a duplicate revision: changes nothing, marks nobody
    await apply_batch([FactAsserted(person_id=first, fact=enrolled(first, S.RESIDENT_PENSION))])
    async with unit_of_work(matching_db, service="matching") as uow:
        count, _ = await evaluate_due(uow, now, limit=1)  # a consumer that keeps up: None
    assert count == 1
    assert not (await person_row(matching_db, second)).pending  # marked first, taken first
    assert (await person_row(matching_db, first)).pending

    # A new revision of a fact held: the person waits for the message that brought it.
    t4 = OBSERVED + timedelta(seconds=4)
    revised = fact.fact.model_copy(update={"revision": fact.fact.revision + 1})
    await apply_batch([FactAsserted(person_id=first, fact=revised)], t4)
    assert (await fact_row(matching_db, revised.fact_id)).published_at == t4
    assert (await person_row(matching_db, first)).pending_published_at == t4


async def test_a_take_reads_the_rows_it_takes_not_everyone_who_waits(
    matching_db: Database,
) -> None:
    """While a province's first load streams in, hundreds of thousands of pending people wait
    for the consumer to apply the rest of what was published with their newest mark: a take
    reads, of each index it uses, the range it takes, never the entries of those who wait."""
    through = OBSERVED + timedelta(minutes=1)
    async with matching_db.engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO persons (person_id, pending, pending_since, pending_published_at)"
                " SELECT gen_random_uuid(), true, statement_timestamp(), :later"
                " FROM generate_series(1, 20000)"
            ),
            {"later": through + timedelta(seconds=1)},
        )
        ready = uuid.uuid4()
        await connection.execute(
            sa.insert(persons).values(
                person_id=ready,
                pending=True,
                pending_since=sa.func.statement_timestamp(),
                pending_published_at=through,
            )
        )
        await connection.execute(sa.text("ANALYZE persons"))
    today = OBSERVED.date() + timedelta(days=1)
    selections = store.take_selections(today, consumed_through=through, max_wait_s=300)
    read = []
    async with matching_db.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        for selection in selections:
            query = selection.limit(500).with_for_update(skip_locked=True)
            compiled = query.compile(dialect=matching_db.engine.dialect)
            params = [compiled.params[name] for name in compiled.positiontup or ()]
            plan = await raw.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", *params)
            read.append(_rows_read(plan[0]["Plan"]))  # the driver decodes the JSON
    # Overdue: nobody (an empty range); past the consumer: the one ready; due: nobody.
    assert read == [0, 1, 0]
    async with unit_of_work(matching_db, service="matching") as uow:
        taken = await store.take_due(
            uow.session, today, 500, consumed_through=through, max_wait_s=300
        )
    assert [person.person_id for person in taken] == [ready]


def _rows_read(node: dict[str, Any]) -> int:
    """Rows the scans of a plan read: those they returned and those their filters dropped; a
    sequential scan fails the test outright."""
    assert node["Node Type"] != "Seq Scan", node
    here = 0
    if "Scan" in node["Node Type"]:
        here = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
    return here + sum(_rows_read(child) for child in node.get("Plans", ()))
