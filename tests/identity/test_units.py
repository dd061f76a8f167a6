"""The units of si_core.ab01 (sources.md): no person's records, published on registry.units as
each unit's state or deletion, once per change that alters it, whatever the duplicates and late
copies of older changes (the source position decides, as for every source record). On a real
database through the outbox, and end to end on the real broker."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from canbao_contracts.envelope import decode
from canbao_contracts.events import UnitChanged, UnitDeleted
from canbao_contracts.events.base import Event
from canbao_contracts.topics import UNITS
from canbao_identity.tables import persons, source_records, staged_changes
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging.tables import outbox
from tests.identity.conftest import Harness, change, tombstone
from tests.identity.test_service import Running, kafka, reader_from_now, running  # noqa: F401

UNIT = "520102000050001"
ROW = {"aab001": UNIT, "aab003": "91520102MA6DK3XC4L", "aab004": "贵阳黔盛建筑工程有限公司",
       "aab019": "10", "aab301": "520102"}  # fmt: skip


async def published(harness: Harness) -> list[Event]:
    """What identity put in its outbox, in order (no relay runs here)."""
    async with harness.db.engine.connect() as connection:
        rows = (await connection.execute(sa.select(outbox).order_by(outbox.c.id))).all()
    return [
        decode(list(zip(r.header_names, r.header_values, strict=True)), r.value)[1] for r in rows
    ]


def ab01(row: dict[str, Any], *, lsn: int, op: str = "c") -> Any:
    return change("si_core.ab01", row, op=op, lsn=lsn)


async def test_a_new_unit_is_published_with_its_name_and_is_no_person(harness: Harness) -> None:
    await harness.apply([ab01(ROW, lsn=100)])
    assert await published(harness) == [
        UnitChanged(
            unit_id=UNIT,
            revision=201,
            credit_code="91520102MA6DK3XC4L",
            unit_name="贵阳黔盛建筑工程有限公司",
            unit_type="10",
            region_code="520102",
        )
    ]
    async with harness.db.engine.connect() as connection:
        for table in (persons, source_records, staged_changes):
            assert await connection.scalar(sa.select(sa.func.count()).select_from(table)) == 0


async def test_each_change_is_published_once_and_an_older_one_never_last(
    harness: Harness,
) -> None:
    renamed = ROW | {"aab004": "贵阳黔盛建设集团有限公司"}
    await harness.apply([ab01(ROW, lsn=100), ab01(renamed, lsn=200, op="u")])
    # Redelivered, and the older change arriving late: nothing to tell.
    await harness.apply([ab01(renamed, lsn=200, op="u"), ab01(ROW, lsn=100)])
    # A new snapshot reads the unit as it is: a newer position, the same state.
    await harness.apply([ab01(renamed, lsn=300, op="r")])
    events = [e for e in await published(harness) if isinstance(e, UnitChanged)]
    assert [(e.revision, e.unit_name) for e in events] == [
        (201, "贵阳黔盛建筑工程有限公司"),
        (401, "贵阳黔盛建设集团有限公司"),
    ]
    assert len(await published(harness)) == 2


async def test_a_deleted_unit_is_published_as_deleted_and_an_older_copy_does_not_revive_it(
    harness: Harness,
) -> None:
    created = ab01(ROW, lsn=100)
    deleted = ab01({"aab001": UNIT}, lsn=200, op="d")
    await harness.apply([created, deleted, tombstone(deleted)])
    await harness.apply([created])  # a late copy
    events = await published(harness)
    assert [type(e) for e in events] == [UnitChanged, UnitDeleted]
    assert events[1] == UnitDeleted(unit_id=UNIT, revision=401)
    # Created again in the source: published again.
    await harness.apply([ab01(ROW, lsn=300)])
    assert isinstance((await published(harness))[-1], UnitChanged)


async def test_the_deletion_of_a_unit_never_heard_of_tells_nobody_anything(
    harness: Harness,
) -> None:
    await harness.apply([ab01({"aab001": UNIT}, lsn=200, op="d")])
    await harness.apply([ab01(ROW, lsn=100)])  # older than the deletion
    assert await published(harness) == []


async def test_what_the_source_holds_wrong_is_published_as_unknown(harness: Harness) -> None:
    """Dirty values (sources.md): a credit code of the wrong length or alphabet, a unit type
    not in the code table (domain.md §4), a region that is no division; the name, in the
    registry's one spelling (full-width letters folded), is still the unit's."""
    dirty = {
        "aab001": UNIT,
        "aab003": "91520102ma6dk3xc4l",
        "aab004": "贵阳ＡＢＣ商贸有限公司",
        "aab019": "77",
        "aab301": "000000",
    }
    lower = ab01(dirty, lsn=100)
    await harness.apply([lower, ab01(dirty | {"aab003": "9152010MA6DK3XC4L"}, lsn=200, op="u")])
    first, second = await published(harness)
    assert isinstance(first, UnitChanged) and isinstance(second, UnitChanged)
    assert first.credit_code == "91520102MA6DK3XC4L"  # written in lower case: the same code
    assert (second.credit_code, second.unit_type, second.region_code) == (None, None, None)
    assert second.unit_name == "贵阳ABC商贸有限公司"


async def test_a_unit_changed_in_the_core_system_reaches_registry_units(
    running: Running,  # noqa: F811
    kafka: MockKafkaCluster,  # noqa: F811
) -> None:
    reader = await reader_from_now(kafka, UNITS)
    try:
        await running.produce([change("si_core.ab01", ROW)])
        async with asyncio.timeout(60):
            while not (batches := await reader.getmany(timeout_ms=200)):
                pass
    finally:
        await reader.stop()
    [record] = [record for records in batches.values() for record in records]
    _, event = decode(list(record.headers), record.value)
    assert record.key == UNIT.encode() and isinstance(event, UnitChanged)
    assert event.unit_name == "贵阳黔盛建筑工程有限公司"
