"""Completing a rotation of SURVEY_DATA_KEY (canbao_survey.reseal): the collected values of every
collection rewritten under the new key, nothing else about the collection touched."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import sqlalchemy as sa

from canbao_platform.db import Database
from canbao_platform.resealing import read_batch, reseal, reseal_column, write_back
from canbao_platform.sealing import Sealer
from canbao_survey.collections import CounterCollection
from canbao_survey.reseal import SEALED_COLUMNS
from canbao_survey.store import submit_counter_collection
from canbao_survey.tables import collections
from canbao_survey.views import read_collection
from tests.survey.conftest import CLERK, COLLECTED, NEW_PERSON, counter_collection

OLD, NEW = b"o" * 32, b"n" * 32
BEFORE = Sealer("key-2025", {"key-2025": OLD})
AFTER = Sealer("key-2026", {"key-2025": OLD, "key-2026": NEW})  # step 1 of a rotation
ONLY_NEW = Sealer("key-2026", {"key-2026": NEW})  # step 3: the old key dropped
(ITEMS,) = SEALED_COLUMNS
IN_CLEAR = [v for v in (*COLLECTED.values(), *NEW_PERSON.values()) if len(v) > 1]  # not gender
ROOT = Path(__file__).parents[2]


async def collected_under_the_old_key(database: Database) -> list[UUID]:
    """A known person's missing phone, and a new registrant, each at the counter."""
    ids = []
    for body in (counter_collection(), counter_collection(NEW_PERSON, person_id=None)):
        submitted = await submit_counter_collection(
            database,
            BEFORE,
            CounterCollection.model_validate(body | {"handler": CLERK}),
            idempotency_key=None,
            now=datetime.now(UTC),
        )
        ids.append(submitted.collection_id)
    return ids


async def test_collected_values_open_under_the_new_key_alone(survey_db: Database) -> None:
    ids = await collected_under_the_old_key(survey_db)
    report = await reseal_column(survey_db, AFTER, ITEMS)
    assert (report.rewritten, report.skipped, report.unreadable) == (2, 0, {})
    assert report.remaining == {"key-2026": 2}
    for collection_id in ids:
        view = await read_collection(survey_db, ONLY_NEW, collection_id)
        assert view is not None and view.state == "submitted"
    again = await reseal_column(survey_db, AFTER, ITEMS)
    assert (again.rewritten, again.skipped) == (0, 0)


async def test_a_review_recorded_meanwhile_is_kept(survey_db: Database) -> None:
    first, _ = await collected_under_the_old_key(survey_db)
    resealed, _ = reseal(await read_batch(survey_db, AFTER, ITEMS, after=None, limit=500), AFTER)
    async with survey_db.engine.begin() as connection:
        await connection.execute(
            sa.update(collections)
            .where(collections.c.collection_id == first)
            .values(reviewer="reviewer-520102-01", state="rejected")
        )
    assert await write_back(survey_db, AFTER, ITEMS, resealed) == 2
    view = await read_collection(survey_db, ONLY_NEW, first)
    assert view is not None and (view.reviewer, view.state) == ("reviewer-520102-01", "rejected")


async def reseal_command(database_url: str, **keys: str) -> tuple[int, str]:
    """`python -m canbao_survey.reseal` as an operator runs it; exit status and all output."""
    env = {**os.environ, "CANBAO_ENV": "test", "SURVEY_DATABASE_URL": database_url, **keys}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "canbao_survey.reseal",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_the_command_fails_on_rows_under_a_key_it_was_not_given(
    survey_url: str, survey_db: Database
) -> None:
    await collected_under_the_old_key(survey_db)
    new = {"SURVEY_DATA_KEY": base64.b64encode(NEW).decode(), "SURVEY_DATA_KEY_ID": "key-2026"}
    status, output = await reseal_command(survey_url, **new)
    assert status == 1, output
    assert "2 unreadable (key-2025 (key not held): 2)" in output
    assert not [value for value in IN_CLEAR if value in output], output

    retired = {"SURVEY_RETIRED_DATA_KEYS": f"key-2025:{base64.b64encode(OLD).decode()}"}
    status, output = await reseal_command(survey_url, **new, **retired)
    assert status == 0, output
    assert "collections.items_sealed: 2 rewritten" in output
    assert "retired key key-2025 seals no row: it can be removed" in output
    assert not [value for value in IN_CLEAR if value in output], output
