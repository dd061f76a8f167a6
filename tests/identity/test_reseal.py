"""Completing a rotation of IDENTITY_DATA_KEY (canbao_identity.reseal): golden records, resolved
and staged source records, the change history all rewritten under the new key, while the builder
keeps working."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

import sqlalchemy as sa

from canbao_identity.app import protector_from
from canbao_identity.protection import record_context
from canbao_identity.reseal import SEALED_COLUMNS
from canbao_identity.routes import _person
from canbao_identity.settings import DEV_DATA_KEY, DEV_DATA_KEY_ID, IdentitySettings
from canbao_identity.tables import person_changes, persons, source_records, staged_changes
from canbao_platform.resealing import read_batch, reseal, reseal_column, write_back
from tests.identity.conftest import Harness, change
from tests.identity.test_registry import NUMBER, ac01, card, hukou

NEW_KEY = base64.b64encode(bytes(range(7, 39))).decode()
OLD_KEY = f"{DEV_DATA_KEY_ID}:{DEV_DATA_KEY}"  # the tests' key, retired ("id:base64")
ROTATED = protector_from(  # step 1: the new key current, the old one retired
    IdentitySettings(
        CANBAO_ENV="test",
        data_key=NEW_KEY,
        data_key_id="k2",
        retired_data_keys=OLD_KEY,
    )
)
ONLY_NEW = protector_from(  # step 3: the old key dropped
    IdentitySettings(CANBAO_ENV="test", data_key=NEW_KEY, data_key_id="k2")
)
PERSONS, RECORDS, STAGED, CHANGES = SEALED_COLUMNS
IN_CLEAR = ("王伟", NUMBER, "13800138000", "13700137000", "北京市东城区")
ROOT = Path(__file__).parents[2]


async def registered_under_the_old_key(harness: Harness) -> None:
    """A person from two sources, resolved, whose phone then changed (one row of history); a
    card change staged and not yet resolved."""
    await harness.apply([change("hukou.person", hukou()), change("si_core.ac01", ac01(NUMBER))])
    await harness.apply([change("si_core.ac01", ac01(NUMBER, aae005="13600136000"))])
    await harness.apply(
        [change("card.card_holder", card(NUMBER, phone="13700137000"))], drain=False
    )


async def key_ids(harness: Harness) -> dict[str, set[str]]:
    async with harness.db.engine.connect() as connection:
        return {
            table.name: set(
                (
                    await connection.execute(
                        sa.select(table.c.key_id).where(table.c.key_id.is_not(None))
                    )
                ).scalars()
            )
            for table in (persons, source_records, staged_changes, person_changes)
        }


async def test_every_sealed_row_opens_under_the_new_key_alone(harness: Harness) -> None:
    await registered_under_the_old_key(harness)
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    reports = [await reseal_column(harness.db, ROTATED.sealer, c) for c in SEALED_COLUMNS]
    assert [(r.column, r.rewritten, r.skipped, sum(r.unreadable.values())) for r in reports] == [
        ("persons.golden_ciphertext", 1, 0, 0),
        ("source_records.claims_ciphertext", 2, 0, 0),
        ("staged_changes.claims_ciphertext", 1, 0, 0),
        ("person_changes.values_sealed", 1, 0, 0),
    ]
    assert await key_ids(harness) == {
        "persons": {"k2"},
        "source_records": {"k2"},
        "staged_changes": {"k2"},
        "person_changes": {"k2"},
    }
    assert (await _person(harness.db, ONLY_NEW, person_id)).golden["name"]["value"] == "王伟"
    # The builder, without the old key, resolves the staged card and rebuilds from the records.
    await Harness(harness.db, protector=ONLY_NEW).drain()
    assert (await _person(harness.db, ONLY_NEW, person_id)).golden["name"]["value"] == "王伟"
    async with harness.db.engine.connect() as connection:
        card_record = (
            await connection.execute(
                sa.select(source_records).where(source_records.c.source_table == "card.card_holder")
            )
        ).one()
    claims = ONLY_NEW.decrypt(
        card_record.claims_ciphertext,
        key_id=card_record.key_id,
        context=record_context("card.card_holder", card_record.record_key),
    )
    assert "13700137000" in claims.values()


async def test_a_second_run_rewrites_nothing(harness: Harness) -> None:
    await registered_under_the_old_key(harness)
    for column in SEALED_COLUMNS:
        await reseal_column(harness.db, ROTATED.sealer, column)
    again = [await reseal_column(harness.db, ROTATED.sealer, c) for c in SEALED_COLUMNS]
    assert [(r.rewritten, r.skipped, sum(r.unreadable.values())) for r in again] == [(0, 0, 0)] * 4


async def test_a_golden_record_the_builder_rewrote_meanwhile_is_kept(harness: Harness) -> None:
    await registered_under_the_old_key(harness)
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    batch = await read_batch(harness.db, ROTATED.sealer, PERSONS, after=None, limit=500)
    resealed, _ = reseal(batch, ROTATED.sealer)
    # Between the job's read and its write, the rotated service takes a new phone in.
    await Harness(harness.db, protector=ROTATED).apply(
        [change("si_core.ac01", ac01(NUMBER, aae005="13900139000"))]
    )
    assert await write_back(harness.db, ROTATED.sealer, PERSONS, resealed) == 0
    golden = (await _person(harness.db, ONLY_NEW, person_id)).golden
    assert golden["phone"]["value"] == "13900139000"


async def test_a_staged_change_the_builder_resolved_meanwhile_is_skipped(harness: Harness) -> None:
    await registered_under_the_old_key(harness)
    batch = await read_batch(harness.db, ROTATED.sealer, STAGED, after=None, limit=500)
    resealed, _ = reseal(batch, ROTATED.sealer)
    assert len(resealed) == 1
    await Harness(harness.db, protector=ROTATED).drain()  # resolved, and deleted
    assert await write_back(harness.db, ROTATED.sealer, STAGED, resealed) == 0
    assert (await key_ids(harness))["staged_changes"] == set()


async def reseal_command(database_url: str, **keys: str) -> tuple[int, str]:
    """`python -m canbao_identity.reseal` as an operator runs it; exit status and all output."""
    env = {**os.environ, "CANBAO_ENV": "test", "IDENTITY_DATABASE_URL": database_url, **keys}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "canbao_identity.reseal",
        "--batch-size",
        "2",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_the_command_fails_on_rows_under_a_key_it_was_not_given(harness: Harness) -> None:
    await registered_under_the_old_key(harness)
    new = {"IDENTITY_DATA_KEY": NEW_KEY, "IDENTITY_DATA_KEY_ID": "k2"}
    status, output = await reseal_command(harness.db.url, **new)
    assert status == 1, output
    assert (
        "persons.golden_ciphertext: 0 rewritten, 0 skipped (changed or locked by the service)"
        ", 1 unreadable (dev-1 (key not held): 1)" in output
    )
    assert not [value for value in IN_CLEAR if value in output], output

    retired = {"IDENTITY_RETIRED_DATA_KEYS": OLD_KEY}
    status, output = await reseal_command(harness.db.url, **new, **retired)
    assert status == 0, output
    assert "source_records.claims_ciphertext: 2 rewritten" in output
    assert "retired key dev-1 seals no row: it can be removed" in output
    assert not [value for value in IN_CLEAR if value in output], output

    status, output = await reseal_command(harness.db.url, **new, **retired)
    assert status == 0 and output.count(" 0 rewritten") == 4, output
