"""The re-seal job on a table of its own (composite primary key, as identity's source_records):
what was sealed under a retired key is rewritten under the current one, once; a row the service
changed or holds is left to the service; a row that does not open is counted by its key id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy.dialects.postgresql import insert

from canbao_platform.db import Database
from canbao_platform.resealing import (
    SealedColumn,
    exit_status,
    read_batch,
    reseal,
    reseal_column,
    write_back,
)
from canbao_platform.sealing import Sealer, UnknownKey

OLD, NEW, LOST = b"o" * 32, b"n" * 32, b"l" * 32
BEFORE = Sealer("2025-11", {"2025-11": OLD})
AFTER = Sealer("2026-11", {"2025-11": OLD, "2026-11": NEW})  # step 1 of a rotation
ONLY_NEW = Sealer("2026-11", {"2026-11": NEW})  # step 3: the retired key dropped

metadata = sa.MetaData()
notes = sa.Table(
    "notes",
    metadata,
    sa.Column("region", sa.String(6), primary_key=True),
    sa.Column("record_no", sa.Integer, primary_key=True),
    sa.Column("note_ciphertext", sa.LargeBinary),
    sa.Column("key_id", sa.String(32)),
)


def note_context(row: Mapping[str, Any]) -> str:
    return f"notes|{row['region']}|{row['record_no']}"


NOTES = SealedColumn(notes, "note_ciphertext", "key_id", note_context, ("region", "record_no"))


@pytest.fixture
async def db(make_database: Callable[[], str]) -> AsyncIterator[Database]:
    database = Database(make_database(), pool_size=2)
    async with database.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield database
    await database.dispose()


def phone(region: str, record_no: int) -> dict[str, str]:
    return {"phone": f"138{record_no:08d}", "region": region}


async def write(db: Database, sealer: Sealer, region: str, record_no: int, **doc: str) -> None:
    """As the service writes a row: sealed under its current key, bound to the row."""
    context = note_context({"region": region, "record_no": record_no})
    blob = sealer.seal(doc or phone(region, record_no), context=context)
    row = {
        "region": region,
        "record_no": record_no,
        "note_ciphertext": blob,
        "key_id": sealer.key_id,
    }
    statement = insert(notes).values(row)
    async with db.engine.begin() as connection:
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["region", "record_no"],
                set_={"note_ciphertext": blob, "key_id": sealer.key_id},
            )
        )


async def opened(db: Database, sealer: Sealer) -> dict[tuple[str, int], dict[str, Any]]:
    async with db.engine.connect() as connection:
        rows = (await connection.execute(sa.select(notes))).mappings().all()
    return {
        (r["region"], r["record_no"]): sealer.open(
            r["note_ciphertext"], key_id=r["key_id"], context=note_context(r)
        )
        for r in rows
    }


async def sealed_under_old_key(db: Database) -> list[tuple[str, int]]:
    keys = [(region, n) for region in ("520102", "520103") for n in range(1, 8)]
    for region, n in keys:
        await write(db, BEFORE, region, n)
    return keys


async def test_rows_under_the_retired_key_open_under_the_new_key_alone(db: Database) -> None:
    keys = await sealed_under_old_key(db)
    report = await reseal_column(db, AFTER, NOTES, batch_size=3)
    assert (report.rewritten, report.skipped, report.unreadable) == (len(keys), 0, {})
    assert report.remaining == {"2026-11": len(keys)}
    assert await opened(db, ONLY_NEW) == {key: phone(*key) for key in keys}


async def test_a_resealed_row_stays_bound_to_its_row(db: Database) -> None:
    await sealed_under_old_key(db)
    await reseal_column(db, AFTER, NOTES)
    async with db.engine.connect() as connection:
        blob = await connection.scalar(
            sa.select(notes.c.note_ciphertext).where(
                notes.c.region == "520102", notes.c.record_no == 1
            )
        )
    with pytest.raises(InvalidTag):
        ONLY_NEW.open(blob, key_id="2026-11", context="notes|520102|2")


async def test_a_second_run_rewrites_nothing(db: Database) -> None:
    keys = await sealed_under_old_key(db)
    await reseal_column(db, AFTER, NOTES, batch_size=4)
    again = await reseal_column(db, AFTER, NOTES, batch_size=4)
    assert (again.rewritten, again.skipped, sum(again.unreadable.values())) == (0, 0, 0)
    assert again.remaining == {"2026-11": len(keys)}


async def test_rows_without_a_document_are_left_alone(db: Database) -> None:
    await write(db, BEFORE, "520102", 1)
    async with db.engine.begin() as connection:
        await connection.execute(sa.insert(notes).values(region="520102", record_no=2))
    report = await reseal_column(db, AFTER, NOTES)
    assert report.rewritten == 1 and report.remaining == {"2026-11": 1}


async def test_a_row_the_service_rewrote_after_the_read_is_not_clobbered(db: Database) -> None:
    await sealed_under_old_key(db)
    batch = await read_batch(db, AFTER, NOTES, after=None, limit=3)
    resealed, _ = reseal(batch, AFTER)
    assert [r.key for r in resealed] == [("520102", 1), ("520102", 2), ("520102", 3)]
    # The service, between the job's read and its write: a new phone, under the new key.
    await write(db, AFTER, "520102", 2, phone="13900000000")
    assert await write_back(db, AFTER, NOTES, resealed) == 2
    notes_now = await opened(db, AFTER)
    assert notes_now[("520102", 2)] == {"phone": "13900000000"}
    assert notes_now[("520102", 1)] == phone("520102", 1)
    async with db.engine.connect() as connection:
        key_ids = (
            (
                await connection.execute(
                    sa.select(notes.c.key_id).where(
                        notes.c.region == "520102", notes.c.record_no <= 3
                    )
                )
            )
            .scalars()
            .all()
        )
    assert key_ids == ["2026-11"] * 3


async def test_a_row_deleted_after_the_read_is_skipped(db: Database) -> None:
    await sealed_under_old_key(db)
    resealed, _ = reseal(await read_batch(db, AFTER, NOTES, after=None, limit=2), AFTER)
    async with db.engine.begin() as connection:
        await connection.execute(sa.delete(notes).where(notes.c.record_no == 1))
    assert await write_back(db, AFTER, NOTES, resealed) == 1


async def test_a_row_the_service_holds_is_skipped_not_waited_for(db: Database) -> None:
    await sealed_under_old_key(db)
    resealed, _ = reseal(await read_batch(db, AFTER, NOTES, after=None, limit=3), AFTER)
    async with db.engine.connect() as service:
        await service.execute(  # as the builder does while it rebuilds a person
            sa.select(notes.c.region).where(notes.c.record_no == 2).with_for_update()
        )
        async with asyncio.timeout(5):  # waiting would hang here until the service commits
            written = await write_back(db, AFTER, NOTES, resealed)
        await service.rollback()
    assert written == 2
    report = await reseal_column(db, AFTER, NOTES)
    assert report.rewritten == 14 - 2 and report.remaining == {"2026-11": 14}


async def test_a_row_under_a_key_not_held_is_reported_by_its_key_id(db: Database) -> None:
    keys = await sealed_under_old_key(db)
    lost = Sealer("2024-01", {"2024-01": LOST})
    await write(db, lost, "520102", 3)
    await write(db, lost, "520103", 5)
    report = await reseal_column(db, AFTER, NOTES, batch_size=2)
    assert report.unreadable == {"2024-01": 2}
    assert report.rewritten == len(keys) - 2
    assert report.remaining == {"2024-01": 2, "2026-11": len(keys) - 2}
    assert exit_status(AFTER, [report]) == 1
    with pytest.raises(UnknownKey):
        await opened(db, AFTER)


async def test_a_ciphertext_that_does_not_open_is_reported_not_rewritten(db: Database) -> None:
    await sealed_under_old_key(db)
    async with db.engine.begin() as connection:  # row 1's ciphertext copied onto row 2
        blob = await connection.scalar(
            sa.select(notes.c.note_ciphertext).where(
                notes.c.region == "520102", notes.c.record_no == 1
            )
        )
        await connection.execute(
            sa.update(notes)
            .where(notes.c.region == "520102", notes.c.record_no == 2)
            .values(note_ciphertext=blob)
        )
    report = await reseal_column(db, AFTER, NOTES)
    assert report.unreadable == {"2025-11": 1}
    assert report.remaining == {"2025-11": 1, "2026-11": 13}
    assert exit_status(AFTER, [report]) == 1
