"""The golden-record builder as app.py runs it, on a real database (without the broker: the
changes are staged as the consumers stage them, test_service.py covers the whole path)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_contracts.topics import PERSONS
from canbao_identity import builder as builder_module
from canbao_identity.builder import GoldenRecordBuilder
from canbao_identity.golden_records import golden_records_work
from canbao_identity.metrics import Backlog, identity_metrics
from canbao_identity.protection import record_context
from canbao_identity.set_aside import report
from canbao_identity.store import DUE, MarkFloor, Settling, Store, take_pending
from canbao_identity.tables import pending_persons, set_aside_persons, source_records
from canbao_platform.messaging.tables import outbox
from tests.conftest import Observed
from tests.identity.conftest import PROTECTOR, Harness, change

NUMBER = "110101198001010010"
HUKOU = {
    "sfzh": NUMBER,
    "xm": "王伟",
    "xb": "1",
    "csrq": date(1980, 1, 1),
    "hjdz_xzqh": "110101",
    "ryzt": "0",
}
CARD = {"aaz500": "C1", "aac002": NUMBER, "aac003": "王伟", "aae005": "13800138000"}


def builder(harness: Harness) -> GoldenRecordBuilder:
    return GoldenRecordBuilder(harness.db, PROTECTOR, service="identity", resolve_batch=2)


async def test_a_person_arriving_in_three_batches_is_rebuilt_once_per_pass(
    harness: Harness,
) -> None:
    """A snapshot sends each source table in turn, so a person's rows arrive in separate
    consumed batches: one pass resolves them all (here two per unit of work), then builds the
    golden record once and announces the person once."""
    ac01 = {
        "aac001": "P1",
        "aac002": NUMBER,
        "aac003": "王伟",
        "aac004": "1",
        "aac006": "19800101",
        "aab301": "110101",
    }
    for table, row in (("si_core.ac01", ac01), ("hukou.person", HUKOU), ("card.card_holder", CARD)):
        await harness.apply([change(table, row)], drain=False)
    running = builder(harness)
    assert await running.drain_once() == 3 + 1
    assert (running.resolved, running.rebuilt) == (3, 1)
    async with harness.db.engine.connect() as connection:
        announced = await connection.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.topic == PERSONS.name)
        )
    assert announced == 1
    assert await running.drain_once() == 0


async def test_a_rebuild_only_builder_leaves_the_staged_changes_to_the_resolvers(
    harness: Harness,
) -> None:
    """IDENTITY_ROLES=rebuild: the builder's second half alone. It never takes a staged change
    (the shares stay with the resolving builders) and rebuilds whoever they left pending."""
    await harness.apply([change("hukou.person", HUKOU)], drain=False)
    rebuilder = GoldenRecordBuilder(
        harness.db, PROTECTOR, service="identity", name="identity.rebuilder", resolves=False
    )
    assert await rebuilder.drain_once() == 0
    assert (await rebuilder.measure_backlog()).staged == 1
    async with golden_records_work(harness.db, PROTECTOR, service="identity") as resolver:
        assert await resolver.resolve_pending() == 1  # resolved, and the person left pending
    assert (await rebuilder.measure_backlog()).pending_persons == 1
    assert await rebuilder.drain_once() == 1
    assert (rebuilder.resolved, rebuilder.rebuilt) == (0, 1)
    assert (await rebuilder.measure_backlog()).pending_persons == 0


async def test_persons_read_by_a_snapshot_settle_until_it_goes_quiet(
    harness: Harness, observed: Observed
) -> None:
    """A snapshot reads table after table, so a person read from one has more rows on the way:
    they wait (settling) while reads still come in, and are rebuilt once the snapshot has been
    quiet for `quiet_s` — or has kept them waiting `max_wait_s`. A change streamed from a
    source's log is rebuilt at once, and makes a settling person due with it."""
    reader = {"aac001": "P1", "aac002": NUMBER, "aac003": "王伟", "aac006": "19800101"}
    other = "110101198001010029"
    streamed = {"aac001": "P2", "aac002": other, "aac003": "李娜", "aac006": "19800101"}
    await harness.apply([change("si_core.ac01", reader, op="r")], drain=False)
    await harness.apply([change("si_core.ac01", streamed, op="c")], drain=False)
    snapshot_streams = Settling(quiet_s=3600, max_wait_s=3600)
    running = GoldenRecordBuilder(
        harness.db, PROTECTOR, service="identity", settling=snapshot_streams
    )
    assert await running.drain_once() == 2 + 1  # both resolved; only the streamed one rebuilt
    backlog = await running.measure_backlog()
    assert (backlog.pending_persons, backlog.settling_persons) == (1, 1)
    assert running.health()["settling_persons"] == 1
    identity_metrics().watch(running)
    assert _gauge(observed.metrics, "canbao.identity.settling_persons", running.name) == 1
    assert await running.drain_once() == 0  # still settling

    overdue = Settling(quiet_s=3600, max_wait_s=0)
    waited = GoldenRecordBuilder(harness.db, PROTECTOR, service="identity", settling=overdue)
    assert await waited.drain_once() == 1

    await harness.apply([change("hukou.person", HUKOU, op="r")], drain=False)
    assert await running.drain_once() == 1  # the read resolved; its person settles again
    assert (await running.measure_backlog()).settling_persons == 1
    await harness.apply(
        [change("si_core.ac01", reader | {"aae005": "13900139000"}, op="u")], drain=False
    )
    assert await running.drain_once() == 1 + 1  # a streamed change: due with its person
    assert (await running.measure_backlog()).pending_persons == 0

    await harness.apply([change("card.card_holder", CARD, op="r")], drain=False)
    quiet = GoldenRecordBuilder(
        harness.db, PROTECTOR, service="identity", settling=Settling(quiet_s=0, max_wait_s=3600)
    )
    assert await quiet.drain_once() == 1 + 1  # nothing read since: the snapshot is over


async def test_the_backlog_is_reported_in_health_and_as_metrics(
    harness: Harness, observed: Observed
) -> None:
    """What is staged but not yet resolved (and how old the oldest is), and who waits for a
    rebuild: in /readyz's detail and as OpenTelemetry gauges, like the consumers' lag."""
    running = builder(harness)
    assert running.health()["staged"] is None  # not measured yet: unknown, not zero
    ac01 = {"aac001": "P1", "aac002": NUMBER, "aac003": "王伟", "aac006": "19800101"}
    await harness.apply(
        [change("card.card_holder", CARD), change("si_core.ac01", ac01)], drain=False
    )
    await asyncio.sleep(0.05)
    await running.measure_backlog()
    health = running.health()
    assert (health["staged"], health["pending_persons"]) == (2, 0)
    assert health["oldest_staged_age_s"] >= 0.05
    identity_metrics().watch(running)
    assert _gauge(observed.metrics, "canbao.identity.staged", running.name) == 2
    assert _gauge(observed.metrics, "canbao.identity.staged.oldest_age", running.name) > 0

    await running.drain_once()
    await running.measure_backlog()
    health = running.health()
    assert (health["staged"], health["oldest_staged_age_s"], health["pending_persons"]) == (0, 0, 0)
    assert _gauge(observed.metrics, "canbao.identity.staged", running.name) == 0


def _gauge(reader: InMemoryMetricReader, name: str, builder_name: str) -> float:
    data = reader.get_metrics_data()
    assert data is not None
    [value] = [
        point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if point.attributes.get("builder") == builder_name
    ]
    return float(value)


async def test_counting_the_backlog_takes_at_most_a_hundredth_of_the_loop(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backlog is counted every second, unless counting is slow (millions of staged rows
    during a province's snapshot): then no more often than a hundred times what a count took.
    The clock is the builder's `time.monotonic`, advanced by hand."""
    now = [1000.0]
    monkeypatch.setattr(builder_module.time, "monotonic", lambda: now[0])
    running = builder(harness)
    counts = 0
    measure = running.measure_backlog

    async def counted() -> Backlog:
        nonlocal counts
        counts += 1
        return await measure()

    monkeypatch.setattr(running, "measure_backlog", counted)

    async def a_count_taking(seconds: float) -> None:  # the clock moves while it runs
        real_backlog = Store.backlog

        async def slow(store: Store) -> Backlog:
            now[0] += seconds
            return await real_backlog(store)

        with monkeypatch.context() as patch:
            patch.setattr(Store, "backlog", slow)
            await running.drain_once()  # nothing to do: one step, then the count if due

    await a_count_taking(0.002)  # quick: due again after a second
    assert counts == 1
    now[0] += 0.5
    await running.drain_once()
    assert counts == 1
    now[0] += 0.5
    await a_count_taking(0.5)  # slow: due again after 50 s
    assert counts == 2
    now[0] += 49.0
    await running.drain_once()
    assert counts == 2, "counted again before 100 times its cost had passed"
    now[0] += 1.0
    await running.drain_once()
    assert counts == 3


OTHER = "110101198502020022"


async def test_a_person_whose_rebuild_fails_is_set_aside_and_the_others_are_built(
    harness: Harness, observed: Observed
) -> None:
    """A record stored before the text rules holds a name PostgreSQL refuses in the published
    state (U+0000 in jsonb): that person is set aside with a value-free reason, visible in
    /readyz's detail and as a gauge; the person rebuilt in the same batch is built and published
    all the same. Once the record is corrected, a retry builds the person and clears the entry."""
    await harness.apply(
        [
            change(
                "hukou.person",
                {"sfzh": NUMBER, "xm": "王伟", "xb": "1", "csrq": date(1980, 1, 1), "ryzt": "0"},
            ),
            change(
                "hukou.person",
                {"sfzh": OTHER, "xm": "李娜", "xb": "2", "csrq": date(1985, 2, 2), "ryzt": "0"},
            ),
        ]
    )
    broken, fine = await harness.person_of(NUMBER), await harness.person_of(OTHER)
    assert broken is not None and fine is not None
    await _store_name(harness, broken, "\x00王伟")
    card = {"aaz500": "C1", "aac002": OTHER, "aac003": "李娜", "aae005": "13800138000"}
    await harness.apply([change("card.card_holder", card)], drain=False)
    async with harness.db.sessions() as session, session.begin():
        await Store(session, PROTECTOR).mark_pending([broken])

    running = builder(harness)
    identity_metrics().watch(running)
    await running.drain_once()  # before: raised, and every later pass the same

    async with harness.db.engine.connect() as connection:
        [aside] = (await connection.execute(sa.select(set_aside_persons))).all()
        pending = (await connection.execute(sa.select(pending_persons))).all()
        published = (await connection.execute(sa.select(outbox.c.key))).scalars().all()
    assert aside.person_id == broken and pending == []
    assert aside.reason == "UntranslatableCharacterError (SQLSTATE 22P05)"
    assert str(fine).encode() in published, "the other person's update was published"
    assert (running.rebuilt, running.set_aside) == (1, 1)
    await running.measure_backlog()
    health = running.health()
    assert health["set_aside_persons"] == 1
    assert _gauge(observed.metrics, "canbao.identity.set_aside_persons", running.name) == 1

    await _store_name(harness, broken, "王伟")  # the source corrected, the rules in place
    lines = await report(harness.db, PROTECTOR, retry=True)
    assert lines[0].startswith(f"{broken}  ") and lines[0].endswith(aside.reason)
    assert lines[1:] == ["1 person(s) set aside", "1 made pending again"]
    await running.drain_once()
    await running.measure_backlog()
    assert running.health()["set_aside_persons"] == 0
    assert (await harness.golden(broken))["golden"]["name"]["value"] == "王伟"


async def _store_name(harness: Harness, person_id: object, name: str) -> None:
    """Rewrite the person's household record's claims as stored (encrypted) with `name`."""
    async with harness.db.engine.begin() as connection:
        row = (
            await connection.execute(
                sa.select(source_records).where(source_records.c.person_id == person_id)
            )
        ).one()
        context = record_context(row.source_table, row.record_key)
        claims = PROTECTOR.decrypt(row.claims_ciphertext, key_id=row.key_id, context=context)
        sealed = PROTECTOR.encrypt({**claims, "name": name}, context=context)
        await connection.execute(
            sa.update(source_records)
            .where(source_records.c.record_key == row.record_key)
            .values(claims_ciphertext=sealed, key_id=PROTECTOR.key_id)
        )


async def test_a_builder_takes_pending_persons_from_where_its_last_take_ended(
    harness: Harness,
) -> None:
    """After a first load a million persons wait for a rebuild, taken oldest mark first: until
    vacuum runs, the start of the queue's index is a run of dead entries, one per person
    taken. A builder's take starts at its floor (MarkFloor), so it reads the pages of what it
    takes, not of everyone taken before; a person who comes back below the floor is taken by
    the next take from the beginning."""
    async with harness.db.engine.begin() as connection:
        await _settling_persons(
            connection, marked=timedelta(hours=1), last_marked=timedelta(hours=1)
        )
        await connection.execute(sa.text("ANALYZE pending_persons"))
    snapshot_over = Settling(quiet_s=1, max_wait_s=3600)
    floor = MarkFloor(full_every_s=3600)
    taken: list[UUID] = []
    for _ in range(20):  # the first from the beginning, then from the floor
        async with harness.work() as golden_records:
            taken += await golden_records.store.take_pending(500, snapshot_over, floor)
    assert len(set(taken)) == 10_000

    since = floor.current()
    assert since is not None
    floored = await _take_buffers(harness, since)
    from_start = await _take_buffers(harness, None)
    assert floored * 3 < from_start, (floored, from_start)

    late = uuid.uuid4()  # marked long ago, committed after the floor passed its time
    async with harness.db.engine.begin() as connection:
        await connection.execute(
            sa.insert(pending_persons).values(
                person_id=late,
                settling=True,
                marked_at=sa.text("now() - interval '2 hours'"),
                last_marked_at=sa.text("now() - interval '2 hours'"),
            )
        )
    async with harness.work() as golden_records:
        assert late not in await golden_records.store.take_pending(500, snapshot_over, floor)
    floor = MarkFloor(full_every_s=0)  # a take from the beginning is due
    async with harness.work() as golden_records:
        assert late in await golden_records.store.take_pending(500, snapshot_over, floor)


async def test_a_take_while_a_snapshot_streams_in_finds_the_due_by_their_own_index(
    harness: Harness,
) -> None:
    """While a snapshot streams in, a builder takes only the persons who are due (reached by a
    streamed change), and leaves the settling ones, who during a first load are nearly
    everyone: through the partial index of the due (ix_pending_persons_due), not by scanning
    the whole queue on every take."""
    due = {uuid.uuid4() for _ in range(3)}
    async with harness.db.engine.begin() as connection:
        await _settling_persons(connection, marked=timedelta(minutes=30), last_marked=timedelta(0))
        await connection.execute(
            sa.insert(pending_persons), [{"person_id": p, "settling": False} for p in due]
        )
        await connection.execute(sa.text("ANALYZE pending_persons"))
    streaming = Settling(quiet_s=3600, max_wait_s=3600)
    async with harness.work() as golden_records:
        assert set(await golden_records.store.take_pending(500, streaming)) == due

    scans = _scans(await _plan(harness, take_pending(500, DUE)))
    assert ("Index Scan", "ix_pending_persons_due") in scans, scans
    assert ("Seq Scan", "pending_persons") not in scans, scans  # not the whole queue


async def _settling_persons(
    connection: AsyncConnection, *, marked: timedelta, last_marked: timedelta
) -> None:
    """12,000 settling persons, first marked from `marked` ago a millisecond apart (oldest
    first) and last marked `last_marked` ago."""
    await connection.execute(
        sa.text(
            "INSERT INTO pending_persons (person_id, settling, marked_at, last_marked_at)"
            " SELECT gen_random_uuid(), true,"
            " now() - CAST(:marked AS interval) + g * interval '1 ms',"
            " now() - CAST(:last_marked AS interval) FROM generate_series(1, 12000) g"
        ),
        {"marked": marked, "last_marked": last_marked},
    )


async def _take_buffers(harness: Harness, since: datetime | None) -> int:
    """The buffers the store's take of 500 pending persons marked `since` or later (None: from
    the beginning) reads to choose them (EXPLAIN ANALYZE of the statement, rolled back)."""
    return _scan_buffers(await _plan(harness, take_pending(500, sa.true(), since=since)))


async def _plan(harness: Harness, statement: sa.Executable) -> dict[str, Any]:
    """The plan PostgreSQL ran `statement` by (EXPLAIN ANALYZE, BUFFERS; rolled back)."""
    async with harness.db.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        compiled = statement.compile(dialect=harness.db.engine.dialect)
        params = [compiled.params[name] for name in compiled.positiontup or ()]
        transaction = raw.transaction()
        await transaction.start()
        try:
            plan = await raw.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {compiled}", *params
            )
        finally:
            await transaction.rollback()
    return dict(plan[0]["Plan"])


def _scans(node: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, index or table) of every scan in a plan: ("Seq Scan", table), ("Index Scan",
    index), ("Bitmap Index Scan", index)…"""
    kind = node["Node Type"]
    here = []
    if kind.endswith("Scan"):
        here = [(kind, node.get("Index Name") or node["Relation Name"])]
    return here + [scan for child in node.get("Plans", ()) for scan in _scans(child)]


def _scan_buffers(node: dict[str, Any]) -> int:
    """The buffers read by a plan's scans of the queue's `marked_at` index (the take's choice;
    not the deletion's, which the floor does not change)."""
    here = 0
    if node.get("Index Name") == "ix_pending_persons_marked_at":
        here = int(node["Shared Hit Blocks"]) + int(node["Shared Read Blocks"])
    return here + sum(_scan_buffers(child) for child in node.get("Plans", ()))
