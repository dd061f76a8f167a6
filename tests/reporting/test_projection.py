"""Reporting's projection of registry.statuses on a real database, read through the internal API:
the table follows the verdicts; duplicates and reordering change nothing; a quarter is frozen at
its end by arrival time (a late verdict counts in the next quarter), and its counts are kept
once it has settled; a withdrawn person leaves; each person's newest state is kept beside the
history, and the migration that introduced it fills it from the history."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import DBAPIError

from canbao_contracts.events import StatusesChanged, StatusesWithdrawn, Verdict
from canbao_platform.db import Database, alembic_config, migrate_async
from canbao_reporting.app import SERVICE
from canbao_reporting.routes import SETTLED
from canbao_reporting.tables import person_newest, person_states, quarter_snapshots
from tests.reporting.conftest import Reporting
from tests.reporting.people import ZUNYI, deceased, needing_survey, verdict, verified

Q3_END = datetime(2026, 9, 30, 16, 0, tzinfo=UTC)  # 2026-10-01 00:00 in China
EVALUATED = datetime(2026, 8, 1, 2, 0, tzinfo=UTC)


def changed(
    pid: UUID, new: Verdict, previous: Verdict | None = None, *, at: datetime = EVALUATED
) -> StatusesChanged:
    return StatusesChanged(person_id=pid, verdict=new, previous=previous, evaluated_at=at)


async def table(client: httpx.AsyncClient, quarter: str = "2026Q3") -> dict[str, Any]:
    response = await client.get(f"/internal/v1/reports/quarterly/{quarter}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cells(body: dict[str, Any]) -> dict[str, dict[str, int]]:
    """city → its non-zero columns."""
    return {row["city"]: {c: n for c, n in row["columns"].items() if n} for row in body["rows"]}


async def test_the_table_counts_the_verdicts_applied(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    await reporting.apply(
        changed(uuid.uuid4(), verdict()), changed(uuid.uuid4(), needing_survey(region_code=ZUNYI))
    )
    reporting.clock.now = Q3_END + timedelta(days=3)
    body = await table(client)
    assert body["quarter"] == "2026Q3" and body["provisional"] is False
    assert body["as_of"].startswith("2026-09-30T16:00:00")
    assert cells(body) == {
        "5201": {"1": 1, "2": 1, "3": 1},
        "5203": {"1": 1, "2": 1, "7": 1, "9": 1, "12": 1},
        "total": {"1": 2, "2": 2, "3": 1, "7": 1, "9": 1, "12": 1},
    }
    assert [row["name"] for row in body["rows"]] == ["5201", "5203", "合计"]
    assert all(len(row["columns"]) == 17 for row in body["rows"])
    assert body["checks"] and all(check["passed"] for check in body["checks"])


async def test_the_newest_verdict_counts_whatever_order_and_however_often_it_arrives(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    pid, later = uuid.uuid4(), EVALUATED + timedelta(hours=1)
    first = changed(pid, needing_survey())
    second = changed(pid, verified(), needing_survey(), at=later)
    await reporting.apply(second)
    await reporting.apply(first)  # older, overtaken: not applied
    await reporting.apply(second, second)  # duplicates (new ids: a republished copy)
    reporting.clock.now = Q3_END + timedelta(days=1)
    assert cells(await table(client))["5201"] == {"1": 1, "2": 1, "7": 1, "8": 1}
    async with reporting.database.engine.connect() as connection:
        count = sa.select(sa.func.count()).select_from(person_states)
        assert await connection.scalar(count) == 1


async def test_a_past_quarter_is_frozen_and_a_late_verdict_counts_in_the_next(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    pid = uuid.uuid4()
    await reporting.apply(changed(pid, needing_survey()))
    # Evaluated in September, arriving in October: the statistics office's Q3 is already closed.
    reporting.clock.now = Q3_END + timedelta(hours=2)
    late = changed(pid, verified(), needing_survey(), at=Q3_END - timedelta(minutes=5))
    await reporting.apply(late, changed(uuid.uuid4(), verdict()))
    q3 = await table(client, "2026Q3")
    assert cells(q3)["total"] == {"1": 1, "2": 1, "7": 1, "9": 1, "12": 1}
    q4 = await table(client, "2026Q4")
    assert q4["provisional"] is True
    assert q4["as_of"].startswith("2026-09-30T18:00:00")
    assert cells(q4)["total"] == {"1": 2, "2": 2, "3": 1, "7": 1, "8": 1}
    reporting.clock.now += timedelta(days=200)  # long after: Q3 has not moved
    assert cells(await table(client, "2026Q3")) == cells(q3)


async def test_a_withdrawn_person_leaves_the_table_and_an_older_verdict_does_not_bring_them_back(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    pid, stays = uuid.uuid4(), uuid.uuid4()
    first = changed(pid, verdict())
    gone = StatusesWithdrawn(
        person_id=pid, previous=verdict(), evaluated_at=EVALUATED + timedelta(days=1)
    )
    await reporting.apply(changed(stays, verdict()), gone)
    await reporting.apply(first)  # the first verdict, delivered late
    reporting.clock.now = Q3_END + timedelta(days=1)
    assert cells(await table(client))["total"] == {"1": 1, "2": 1, "3": 1}


async def test_a_past_quarter_is_counted_from_the_history_until_it_settles_then_kept(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    await reporting.apply(changed(uuid.uuid4(), verdict()))
    reporting.clock.now = Q3_END + timedelta(minutes=10)
    assert cells(await table(client))["total"] == {"1": 1, "2": 1, "3": 1}
    assert await kept_quarters(reporting) == 0  # not settled: a batch may still be committing
    # One such batch: its clock read before the quarter's end, its commit after.
    reporting.clock.now = Q3_END - timedelta(seconds=1)
    await reporting.apply(changed(uuid.uuid4(), needing_survey(region_code=ZUNYI)))
    reporting.clock.now = Q3_END + SETTLED
    q3 = await table(client)
    assert cells(q3)["total"] == {"1": 2, "2": 2, "3": 1, "7": 1, "9": 1, "12": 1}
    assert await kept_quarters(reporting) == 1
    coverage = (
        await client.get("/internal/v1/reports/coverage", params={"quarter": "2026Q3"})
    ).json()
    # Kept, it is read back as it was counted, not counted again (nor kept twice).
    reporting.clock.now = Q3_END - timedelta(seconds=1)
    await reporting.apply(changed(uuid.uuid4(), verdict()))
    reporting.clock.now = Q3_END + timedelta(days=30)
    assert await table(client) == q3
    assert (
        await client.get("/internal/v1/reports/coverage", params={"quarter": "2026Q3"})
    ).json() == coverage
    assert await kept_quarters(reporting) == 1


async def kept_quarters(reporting: Reporting) -> int:
    async with reporting.database.engine.connect() as connection:
        return int(
            await connection.scalar(sa.select(sa.func.count()).select_from(quarter_snapshots)) or 0
        )


NEWEST_OF_THE_HISTORY = """
    SELECT DISTINCT ON (person_id) person_id, valid_from, evaluated_at, verdict, region_code,
           cells, lists
    FROM person_states ORDER BY person_id, id DESC
"""


async def test_each_persons_newest_state_is_kept_beside_the_history(
    reporting: Reporting,
) -> None:
    first, second, gone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    later = EVALUATED + timedelta(hours=1)
    await reporting.apply(
        changed(first, verified(), needing_survey(), at=later),
        changed(second, needing_survey()),
        changed(gone, verdict()),
    )
    reporting.clock.now += timedelta(minutes=1)
    await reporting.apply(
        changed(first, needing_survey()),  # older: not applied
        changed(second, verdict(region_code=ZUNYI), needing_survey(), at=later),
        StatusesWithdrawn(person_id=gone, previous=verdict(), evaluated_at=later),
    )
    async with reporting.database.engine.connect() as connection:
        kept = (
            await connection.execute(
                sa.select(*(person_newest.c[c.name] for c in person_newest.c)).order_by(
                    person_newest.c.person_id
                )
            )
        ).all()
        newest = (await connection.execute(sa.text(NEWEST_OF_THE_HISTORY))).all()
        states = await connection.scalar(sa.select(sa.func.count()).select_from(person_states))
    assert kept == newest and len(kept) == 3 and states == 5
    assert {row.person_id: row.cells for row in kept}[gone] == []


async def test_the_migration_keeps_the_newest_state_of_a_history_applied_before_it(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    await asyncio.to_thread(
        command.upgrade, alembic_config(url, SERVICE.migrations), "reporting_0005"
    )
    pid, dead = uuid.uuid4(), uuid.uuid4()
    history = [
        (pid, verdict(), ["5201:1"]),
        (dead, deceased(), []),
        (pid, needing_survey(), ["5201:1", "5201:7"]),
    ]
    database = Database(url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            for n, (person, state, counted) in enumerate(history):
                await connection.execute(
                    sa.text("""
                    INSERT INTO person_states (person_id, valid_from, evaluated_at, verdict,
                                               region_code, cells)
                    VALUES (:p, :at, :at, CAST(:v AS jsonb), :r, :c)"""),
                    {
                        "p": person,
                        "at": EVALUATED + timedelta(hours=n),
                        "c": counted,
                        "v": state.model_dump_json(),
                        "r": state.region_code,
                    },
                )
        await migrate_async(url, SERVICE.migrations)
        async with database.engine.connect() as connection:
            kept = (await connection.execute(sa.select(person_newest))).all()
            newest = (await connection.execute(sa.text(NEWEST_OF_THE_HISTORY))).all()
    finally:
        await database.dispose()
    assert sorted(kept) == sorted(newest) and len(kept) == 2
    assert {row.person_id: row.cells for row in kept} == {pid: ["5201:1", "5201:7"], dead: []}


async def test_the_service_login_may_not_rewrite_history(reporting: Reporting) -> None:
    await reporting.apply(changed(uuid.uuid4(), verdict()))
    async with reporting.database.engine.begin() as connection:
        with pytest.raises(DBAPIError, match="permission denied"):
            await connection.execute(sa.delete(person_states))
    async with reporting.database.engine.begin() as connection:
        with pytest.raises(DBAPIError, match="permission denied"):  # nor a kept quarter
            await connection.execute(sa.delete(quarter_snapshots))


MALFORMED = ["2026Q5", "2026q3", "26Q3", "2026-Q3", "2026Q0", "0000Q1", "２０２６Q3"]


@pytest.mark.parametrize("quarter", MALFORMED)
async def test_a_malformed_quarter_is_a_problem_of_its_own_type(
    client: httpx.AsyncClient, quarter: str
) -> None:
    response = await client.get(f"/internal/v1/reports/quarterly/{quarter}")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/invalid-quarter"


async def test_a_quarter_not_yet_begun_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/internal/v1/reports/quarterly/2026Q4")  # the clock is in Q3
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/future-quarter"


async def test_the_current_quarter_is_provisional_as_of_now(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    await reporting.apply(changed(uuid.uuid4(), verdict()))
    reporting.clock.now += timedelta(seconds=1)
    body = await table(client, "2026Q3")
    assert body["provisional"] is True
    assert body["as_of"].startswith("2026-08-15T02:00:01")
    assert cells(body)["total"] == {"1": 1, "2": 1, "3": 1}


async def test_the_table_answers_only_the_gateways_signed_calls(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/internal/v1/reports/quarterly/2026Q3", headers={"Authorization": "Bearer forged"}
    )
    assert response.status_code == 401


async def test_a_city_sees_its_own_row_and_the_csv_opens_in_excel(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    await reporting.apply(
        changed(uuid.uuid4(), verdict()), changed(uuid.uuid4(), needing_survey(region_code=ZUNYI))
    )
    reporting.clock.now = Q3_END + timedelta(days=3)
    for region in ("5203", "520300", "520302"):
        body = (
            await client.get("/internal/v1/reports/quarterly/2026Q3", params={"region": region})
        ).json()
        assert [row["city"] for row in body["rows"]] == ["5203"], region  # no total: not theirs
        assert {check["city"] for check in body["checks"]} == {"5203"}
    province = await table(client)
    assert [row["city"] for row in province["rows"]] == ["5201", "5203", "total"]
    refused = await client.get("/internal/v1/reports/quarterly/2026Q3", params={"region": "52x"})
    assert refused.status_code == 422 and refused.json()["type"].endswith("invalid-region")

    exported = await client.get(
        "/internal/v1/reports/quarterly/2026Q3", params={"format": "csv", "region": "52"}
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    lines = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert lines[0][:3] == ["地市代码", "地市", "(1) 户籍人口数"] and len(lines[0]) == 19
    assert lines[1][:5] == ["5201", "5201", "1", "1", "1"]
    assert lines[3][:2] == ["total", "合计"] and lines[3][2] == "2"
    assert lines[5][:2] == ["季度", "2026Q3"]
    assert all(line[3] == "通过" for line in lines[6:])
