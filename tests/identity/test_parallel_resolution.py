"""Several builder replicas resolving at once, each in shares of the staged changes of its own
(store.take_staged, tables.staged_changes): they take distinct shares, linking work waits for
every resolution under way, and whatever the order and copies the changes arrive in, they build
the registry one builder builds from the changes in order."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_contracts.envelope import decode
from canbao_contracts.events.base import Event
from canbao_contracts.id_numbers import check_character
from canbao_identity.builder import GoldenRecordBuilder
from canbao_identity.store import DUE, TAKE_SHARES, ShareFloors, take_pending
from canbao_identity.tables import (
    STAGED_SHARES,
    persons,
    review_queue,
    source_records,
    staged_changes,
)
from canbao_platform.messaging import Backoff
from canbao_platform.messaging.tables import outbox
from tests.identity.conftest import Harness, Message, change, fresh_harness, transient_failures
from tests.identity.test_ground_truth import live_facts

NAMES = ("王伟", "李娜", "张敏", "刘洋", "陈静", "杨磊", "赵军", "黄丽")


def person(index: int) -> list[Message]:
    """One person's rows in three systems (hukou, social insurance with an enrolment naming the
    ac01 row, the card), then an update of the ac01 row. Every third person's ac01 carries a
    wrong check character: it links as a candidate once the hukou record built the person."""
    born = date(1960, 1, 1) + timedelta(days=1_000 * index)
    first17 = f"110101{born:%Y%m%d}{index:02d}1"  # odd 17th digit: a man
    number = first17 + check_character(first17)
    wrong = first17 + ("0" if number[-1] != "0" else "1")
    insured, name, key = wrong if index % 3 == 2 else number.lower(), NAMES[index], f"P{index}"
    ac01 = {
        "aac001": key,
        "aac002": insured,
        "aac003": name,
        "aac004": "1",
        "aac006": f"{born:%Y%m%d}",
        "aab301": "110101",
        "aae005": "13800138000",
        "aae006": "北京市东城区1号",
    }
    return [
        change(
            "hukou.person",
            {
                "sfzh": number,
                "xm": name,
                "xb": "1",
                "csrq": born,
                "hjdz_xzqh": "110101",
                "hjdz": "北京市东城区东华门街道1号",
                "ryzt": "0",
            },
        ),
        change("si_core.ac01", ac01),
        change(
            "si_core.ac02",
            {
                "aac001": key,
                "aae140": "110",
                "aab301": "110101",
                "aab001": "U1",
                "aac008": "1",
                "aac030": date(2005, 1, 1),
            },
        ),
        change(
            "card.card_holder",
            {
                "aaz500": f"C{index}",
                "aac002": number,
                "aac003": name,
                "aae005": "13800138000",
                "card_status": "1",
            },
        ),
        change("si_core.ac01", ac01 | {"aae005": "13599998888"}, op="u"),
    ]


def builders(harness: Harness, count: int, **options: Any) -> list[GoldenRecordBuilder]:
    return [
        GoldenRecordBuilder(
            harness.db,
            harness.protector,
            service="identity",
            name=f"builder-{n}",
            idle_interval_s=0.005,
            retry_backoff=Backoff(0.01, 0.1),
            **options,
        )
        for n in range(count)
    ]


async def until_done(replicas: Sequence[GoldenRecordBuilder]) -> None:
    """Wait until nothing is staged or pending at two looks in a row (a retry of the review
    queue after a commit may mark a person pending again), then stop the replicas."""
    quiet = 0
    while quiet < 2:
        await asyncio.sleep(0.05)
        backlog = await replicas[0].measure_backlog()
        quiet = quiet + 1 if backlog.staged == backlog.pending_persons == 0 else 0
    for replica in replicas:
        await replica.stop()


async def published(harness: Harness) -> list[Event]:
    async with harness.db.engine.connect() as connection:
        rows = (await connection.execute(sa.select(outbox).order_by(outbox.c.id))).all()
    return [
        decode(list(zip(row.header_names, row.header_values, strict=True)), row.value)[1]
        for row in rows
    ]


async def registry(harness: Harness, events: list[Event]) -> dict[str, Any]:
    """The registry up to the person ids it drew: each person's linked records, golden record
    and live facts; the records linked to nobody; the open reviews."""
    async with harness.db.engine.connect() as connection:
        records = (
            await connection.execute(
                sa.select(
                    source_records.c.person_id,
                    source_records.c.source_table,
                    source_records.c.record_key,
                    source_records.c.link_kind,
                ).where(source_records.c.deleted.is_(False))
            )
        ).all()
        person_ids = list(await connection.scalars(sa.select(persons.c.person_id)))
        queued = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(review_queue)
            .where(review_queue.c.state == "open")
        )
    facts = live_facts(events)
    found = []
    for person_id in person_ids:
        golden = await harness.golden(person_id)
        golden.pop("person_id")
        for entry in golden["golden"].values():
            entry.pop("observed_at", None)
        found.append(
            (
                sorted(
                    (r.source_table, r.record_key, r.link_kind)
                    for r in records
                    if r.person_id == person_id
                ),
                json.dumps(golden, sort_keys=True, ensure_ascii=False),
                sorted(
                    f.model_dump_json(exclude={"fact_id", "revision", "observed_at"})
                    for f in facts.get(person_id, [])
                ),
            )
        )
    unlinked = sorted(
        (r.source_table, r.record_key, r.link_kind) for r in records if not r.person_id
    )
    return {"persons": sorted(found), "unlinked": unlinked, "queued": queued}


_IN_ORDER: dict[int, dict[str, Any]] = {}


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    people=st.integers(2, len(NAMES)),
    seed=st.integers(0, 2**32 - 1),
    duplicates=st.integers(0, 8),
    replicas=st.integers(2, 4),
    batch=st.integers(1, 7),
)
async def test_concurrent_builders_build_what_one_builds_in_order(
    migrated_database: Any, people: int, seed: int, duplicates: int, replicas: int, batch: int
) -> None:
    """The changes of a few people, shuffled and some twice, staged a few at a time while
    several builders resolve a few changes per unit of work: the same persons, links, golden
    records and facts as one builder given every change in order."""
    feed = [message for index in range(people) for message in person(index)]
    if people not in _IN_ORDER:
        async with fresh_harness(migrated_database) as in_order:
            await in_order.apply(feed)
            _IN_ORDER[people] = await registry(in_order, in_order.published)
    rng = random.Random(seed)
    shuffled = feed + [rng.choice(feed) for _ in range(duplicates)]
    rng.shuffle(shuffled)
    async with fresh_harness(migrated_database) as harness:
        running = builders(harness, replicas, resolve_batch=3, batch_size=2)
        for replica in running:
            await replica.start()
        for start in range(0, len(shuffled), batch):
            await harness.apply(shuffled[start : start + batch], drain=False)
            await asyncio.sleep(rng.random() * 0.02)
        await until_done(running)
        transient_failures(running)
        assert await registry(harness, await published(harness)) == _IN_ORDER[people]


async def test_resolvers_take_distinct_shares_and_linking_work_waits_for_them(
    harness: Harness,
) -> None:
    """Two resolutions under way hold distinct shares; a clerk's linking work (a review
    resolved, a merge) waits until both have committed, and no resolution starts meanwhile."""
    await harness.apply([m for index in range(len(NAMES)) for m in person(index)], drain=False)
    async with harness.db.engine.connect() as connection:
        rows = await connection.execute(
            sa.select(
                staged_changes.c.source_table, staged_changes.c.record_key, staged_changes.c.share
            )
        )
        share_of = {(row.source_table, row.record_key): row.share for row in rows}
    assert len(set(share_of.values())) > 2
    taken: list[set[int]] = []
    took, release = asyncio.Event(), asyncio.Event()

    async def resolve_one_share() -> None:
        async with harness.work() as golden_records:
            changes = await golden_records.store.take_staged(1)
            taken.append({share_of[c.key] for c in changes})
            took.set()
            await release.wait()
            await golden_records.resolve(changes)

    resolutions = []
    for _ in range(2):
        took.clear()
        resolutions.append(asyncio.create_task(resolve_one_share()))
        await asyncio.wait_for(took.wait(), 5)
    first, second = taken
    assert first and second and not first & second, taken

    linked = asyncio.Event()

    async def link() -> None:
        async with harness.work(linking=True):
            linked.set()

    linking = asyncio.create_task(link())
    await asyncio.sleep(0.3)
    assert not linked.is_set(), "linking work waits for the resolutions under way"
    async with harness.work() as golden_records:
        assert await golden_records.store.take_staged(100) == [], "no resolution starts meanwhile"
    release.set()
    await asyncio.gather(*resolutions)
    await asyncio.wait_for(linking, 5)
    assert linked.is_set()
    await harness.drain()
    async with harness.db.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(persons)) == len(
            NAMES
        )


async def test_a_change_committed_below_a_resolvers_floor_is_taken_at_its_next_full_look(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resolver looks at each share above the last change it took there (store.ShareFloors);
    a consumer whose transaction commits later than a newer one's leaves a change below that
    floor: it is not lost, the next look from the beginning (every `full_every_s`) takes it."""
    clock = [1000.0]
    monkeypatch.setattr("canbao_identity.store.time.monotonic", lambda: clock[0])
    floors = ShareFloors(full_every_s=5.0)
    async with harness.db.engine.connect() as late:
        await _stage_raw(late, "aac001=P1,aae140=110")  # staged first, not yet committed
        async with harness.db.engine.begin() as early:
            await _stage_raw(early, "aac001=P1,aae140=310")
        async with harness.work() as golden_records:
            taken = await golden_records.store.take_staged(10, floors)
        assert [c.record_key for c in taken] == ["aac001=P1,aae140=310"]
        await late.commit()
    clock[0] += 1.0
    async with harness.work() as golden_records:
        assert await golden_records.store.take_staged(10, floors) == []  # below the floor
    clock[0] += 5.0
    async with harness.work() as golden_records:
        taken = await golden_records.store.take_staged(10, floors)
    assert [c.record_key for c in taken] == ["aac001=P1,aae140=110"]


async def test_a_take_fetches_its_rows_directly_whatever_the_statistics_say(
    harness: Harness,
) -> None:
    """A snapshot's first minutes grow the queues from nothing to millions of rows, faster than
    autovacuum analyses them: the plan of a take, made from the statistics of an empty queue,
    must still fetch the rows it chose directly (an initplan, then their heap addresses for the
    staged changes, the primary key's index for the pending persons), never join them against a
    scan of the whole queue."""
    async with harness.db.engine.begin() as connection:
        for queue in ("staged_changes", "pending_persons"):
            await connection.execute(sa.text(f"ALTER TABLE {queue} SET (autovacuum_enabled = off)"))
            await connection.execute(sa.text(f"ANALYZE {queue}"))  # empty
        await connection.execute(
            sa.text(
                "INSERT INTO staged_changes (source_table, record_key, position, deleted, facts,"
                " provenance, defects) SELECT 'si_core.ac01', 'aac001=P' || g, g, false, '[]',"
                " '{}', '[]' FROM generate_series(1, 50000) g"
            )
        )
        await connection.execute(
            sa.text(
                "INSERT INTO pending_persons (person_id) SELECT gen_random_uuid()"
                " FROM generate_series(1, 50000)"
            )
        )
    pending = take_pending(500, DUE).compile(
        harness.db.engine, compile_kwargs={"literal_binds": True}
    )
    staged = {"shares": [5, 9], "limit": 2000, "floors": [0] * STAGED_SHARES}
    for sql, params, fetch in (
        (TAKE_SHARES.text, staged, " Tid Scan on staged_changes "),
        (str(pending), {}, " pending_persons_pkey "),
    ):
        async with harness.db.engine.connect() as connection:
            explained = await connection.execute(sa.text(f"EXPLAIN {sql}"), params)
            plan = "\n".join(explained.scalars())
        fetched = "\n".join(plan.split("\n")[-2:])  # how the deleted rows are found: last
        assert "InitPlan" in plan and fetch in f"{fetched} ", plan


def test_looks_from_the_beginning_take_at_most_a_tenth_of_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A look from the beginning walks the queue's dead entries: when one takes 2 s, the next
    comes 20 s later, not after `full_every_s`."""
    clock = [1000.0]
    monkeypatch.setattr("canbao_identity.store.time.monotonic", lambda: clock[0])
    floors = ShareFloors(full_every_s=5.0)
    assert not any(floors.current())  # the first look starts from the beginning
    clock[0] += 2.0
    floors.looked()
    floors.taken(3, 42)
    clock[0] += 6.0
    assert floors.current()[3] == 42
    floors.looked()
    clock[0] += 12.0
    assert not any(floors.current())  # 20 s after the last full look began


async def _stage_raw(connection: AsyncConnection, record_key: str) -> None:
    """A deletion of an ac02 row naming ac01 P1 (so both land in one share), staged as a
    consumer stages it, in `connection`'s transaction."""
    await connection.execute(
        sa.insert(staged_changes).values(
            source_table="si_core.ac02",
            record_key=record_key,
            position=1,
            deleted=True,
            facts=[],
            provenance={},
            link_ref="si_core.ac01|aac001=P1",
            defects=[],
        )
    )
