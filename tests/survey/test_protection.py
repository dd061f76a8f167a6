"""Collected values at rest: readable under a retired key after rotation, bound to their row,
and never in a log line."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from canbao_platform.db import Database
from canbao_platform.sealing import Sealer, UnknownKey
from canbao_survey.collections import CounterCollection
from canbao_survey.store import submit_counter_collection
from canbao_survey.tables import collections
from canbao_survey.views import read_collection
from tests.survey.conftest import CLERK, NEW_PERSON, Published, counter_collection, passed

OLD, NEW = b"o" * 32, b"n" * 32


async def test_rows_written_under_a_retired_key_stay_readable(survey_db: Database) -> None:
    collection = CounterCollection.model_validate(counter_collection() | {"handler": CLERK})
    before = Sealer("key-2025", {"key-2025": OLD})
    submitted = await submit_counter_collection(
        survey_db, before, collection, idempotency_key=None, now=datetime.now(UTC)
    )
    after = Sealer("key-2026", {"key-2025": OLD, "key-2026": NEW})
    view = await read_collection(survey_db, after, submitted.collection_id)
    assert view is not None and view.state == "submitted"
    with pytest.raises(UnknownKey):
        await read_collection(
            survey_db, Sealer("key-2026", {"key-2026": NEW}), submitted.collection_id
        )


def test_a_ciphertext_moved_to_another_row_does_not_open() -> None:
    sealer = Sealer("k", {"k": NEW})
    blob = sealer.seal({"phone": "13812345678"}, context="survey.collections:a")
    assert sealer.open(blob, key_id="k", context="survey.collections:a") == {"phone": "13812345678"}
    with pytest.raises(InvalidTag):
        sealer.open(blob, key_id="k", context="survey.collections:b")


async def test_the_same_key_submitted_concurrently_is_one_collection(
    survey: httpx.AsyncClient, survey_db: Database
) -> None:
    headers = {"Idempotency-Key": "double-click"}
    answers = await asyncio.gather(
        *(
            survey.post("/internal/collections", json=counter_collection(), headers=headers)
            for _ in range(4)
        )
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["collection_id"] for a in answers}) == 1
    async with survey_db.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(collections)) == 1


async def test_no_collected_value_reaches_the_logs(
    survey: httpx.AsyncClient, published: Published, caplog: pytest.LogCaptureFixture
) -> None:
    # Our code and the HTTP layers at DEBUG; aiokafka's own DEBUG dumps wire bytes (every
    # message value), so a deployment keeps the `aiokafka` logger at INFO or above.
    caplog.set_level(logging.INFO)
    for name in ("canbao_survey", "canbao_platform", "canbao_contracts", "httpx", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    good = counter_collection(NEW_PERSON, person_id=None)
    bad = counter_collection({**NEW_PERSON, "phone": "0851-855"}, person_id=None)
    created = await survey.post("/internal/collections", json=good)
    await survey.post("/internal/collections", json=bad)
    await passed(survey, created.json()["collection_id"])  # the 复核 opens and publishes them
    await published.until(lambda seen: bool(published.of(created.json()["collection_id"])))
    logged = caplog.text + repr([r.args for r in caplog.records])
    for value in (*NEW_PERSON.values(), "0851-855"):
        if len(value) > 2:
            assert value not in logged, value
