"""Sampling checks (抽查复核, Chongqing plan 四(二)) in the survey service on real PostgreSQL: the
city draws approved records stratified per county and per maker, reproducibly from a stored
seed; re-checks each once, never its own or one it decided; error rates are exactly the checks
recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from canbao_platform.db import Database
from canbao_platform.sealing import Sealer
from canbao_survey import sampling
from canbao_survey.review import submission_context
from canbao_survey.settings import SurveySettings
from canbao_survey.store import context_of
from canbao_survey.tables import (
    collections,
    decisions,
    sample_checks,
    sample_records,
    submissions,
    tasks,
)
from tests.conftest import caller_headers
from tests.survey.conftest import assert_problem

NANMING, YUNYAN, ZUNYI = "520102", "520103", "520302"
PLATFORM, COUNTY = "platform-wu", "county-chen"
CHECKER, CHECKER2 = "city-qian", "city-zhou"
SAMPLES = "/internal/survey/samples"
JUNE = {"approved_from": "2025-06-01", "approved_to": "2025-06-30"}
IN_JUNE = datetime(2025, 6, 15, 2, tzinfo=UTC)


def city(username: str = CHECKER, scope: str = "5201") -> dict[str, str]:
    return caller_headers("survey", username=username, role="city", scope=scope)


@pytest.fixture
async def client(survey_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with survey_app.router.lifespan_context(survey_app):
        transport = httpx.ASGITransport(app=survey_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://survey") as client:
            yield client


@pytest.fixture
def sealer(survey_app: FastAPI) -> Sealer:
    settings = survey_app.state.resources.settings
    assert isinstance(settings, SurveySettings)
    return settings.sealer()


@dataclass(frozen=True)
class Record:
    record_id: UUID
    county: str
    maker: str


async def approved_submission(
    database: Database,
    sealer: Sealer,
    *,
    county: str,
    maker: str,
    approved_at: datetime = IN_JUNE,
    state: str = "approved",
) -> Record:
    """A survey submission of `maker`, 初审 by the platform, 审定 by the county at `approved_at`."""
    task_id, submission_id = uuid4(), uuid4()
    body = {"items": {"phone": "13912345678"}, "contact": "visit"}
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.insert(tasks).values(
                task_id=task_id,
                channel="survey",
                origin="survey",
                person_id=uuid4(),
                region_code=county,
                survey_reasons=[],
                missing=[],
                inaccurate=[],
                state="approved" if state == "approved" else "first_reviewed",
                team=[maker],
                version=0,
                created_at=approved_at,
                updated_at=approved_at,
            )
        )
        await connection.execute(
            sa.insert(submissions).values(
                submission_id=submission_id,
                task_id=task_id,
                client_id=uuid4(),
                submitted_by=maker,
                submitted_at=approved_at,
                visited_at=approved_at,
                contact="visit",
                outcome="collected",
                body_sealed=sealer.seal(body, context=submission_context(submission_id)),
                key_id=sealer.key_id,
                item_names=["phone"],
                state=state,
            )
        )
        await connection.execute(
            sa.insert(decisions).values(
                submission_id=submission_id,
                stage="review",
                decision="pass",
                decided_by=PLATFORM,
                decided_at=approved_at,
                comment="",
            )
        )
        if state == "approved":
            await connection.execute(
                sa.insert(decisions).values(
                    submission_id=submission_id,
                    stage="approve",
                    decision="approve",
                    decided_by=COUNTY,
                    decided_at=approved_at,
                    comment="",
                )
            )
    return Record(submission_id, county, maker)


async def approved_collection(
    database: Database,
    sealer: Sealer,
    *,
    county: str,
    clerk: str,
    approved_at: datetime = IN_JUNE,
) -> Record:
    """A counter collection of a new registrant of `county`, approved."""
    collection_id = uuid4()
    items = {"name": "王伟", "phone": "13812345678"}
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.insert(collections).values(
                collection_id=collection_id,
                channel="counter",
                person_id=None,
                document_type="01",
                region_code=county,
                items_sealed=sealer.seal(items, context=context_of(collection_id)),
                key_id=sealer.key_id,
                item_names=sorted(items),
                resolved_reasons=[],
                verified_statuses=[],
                handler=clerk,
                handled_at=approved_at,
                state="approved",
                reviewer=clerk,
                reviewed_at=approved_at,
            )
        )
    return Record(collection_id, county, clerk)


@pytest.fixture
async def population(survey_db: Database, sealer: Sealer) -> list[Record]:
    """June's approved records of Guiyang: Nanming's surveyors A (5) and B (1) and clerk K (3
    collections); Yunyan's surveyor D (2). Around them, what a draw must leave out."""
    made = []
    for county, maker, n in (
        (NANMING, "surveyor-a", 5),
        (NANMING, "surveyor-b", 1),
        (YUNYAN, "surveyor-d", 2),
    ):
        for _ in range(n):
            made.append(await approved_submission(survey_db, sealer, county=county, maker=maker))
    for _ in range(3):
        made.append(await approved_collection(survey_db, sealer, county=NANMING, clerk="clerk-k"))
    # Left out: Zunyi's (another city), one waiting for 审定, and one approved on 1 July in
    # Beijing time though 30 June in UTC.
    await approved_submission(survey_db, sealer, county=ZUNYI, maker="surveyor-z")
    await approved_submission(
        survey_db, sealer, county=NANMING, maker="surveyor-a", state="first_reviewed"
    )
    await approved_submission(
        survey_db,
        sealer,
        county=NANMING,
        maker="surveyor-a",
        approved_at=datetime(2025, 6, 30, 17, tzinfo=UTC),
    )
    return made


def expected_draw(records: list[Record], seed: int, per_county: int, per_maker: int) -> set[UUID]:
    """The draw recomputed from its seed: per county the first `per_county`, per maker of the
    county the first `per_maker`, by md5(seed:record_id)."""
    order = sorted(records, key=lambda r: sampling.sort_key(seed, r.record_id))
    chosen: set[UUID] = set()
    for key in {r.county for r in records}:
        chosen |= {r.record_id for r in [r for r in order if r.county == key][:per_county]}
    for key in {(r.county, r.maker) for r in records}:
        in_stratum = [r for r in order if (r.county, r.maker) == key]
        chosen |= {r.record_id for r in in_stratum[:per_maker]}
    return chosen


async def test_a_sample_is_stratified_per_county_and_maker_and_drawn_again_from_its_seed(
    client: httpx.AsyncClient, population: list[Record]
) -> None:
    request = {"region_code": "5201", "per_county": 3, "per_surveyor": 1, **JUNE}
    drawn = await client.post(SAMPLES, headers=city(), json=request)
    assert drawn.status_code == 201, drawn.text
    sample = drawn.json()
    seed = sample["seed"]
    chosen = {UUID(r["record_id"]) for r in sample["records"]}
    assert chosen == expected_draw(population, seed, 3, 1)
    assert sample["population"] == len(population) == 11
    # Every county and every maker who made anything is in it.
    assert {(r["county_code"], r["maker"]) for r in sample["records"]} == {
        (r.county, r.maker) for r in population
    }
    per_county = {
        c: sum(r["county_code"] == c for r in sample["records"]) for c in (NANMING, YUNYAN)
    }
    assert per_county[YUNYAN] == 2 and 3 <= per_county[NANMING] <= 3 + 3
    # Masked, with what each was: a survey's phone, a new registrant's name.
    shown = {r["kind"]: r for r in sample["records"]}
    assert {i["item"]: i["value"] for i in shown["submission"]["items"]} == {"phone": "1391***5678"}
    assert shown["collection"]["person"]["name"] == "王*"
    assert shown["submission"]["deciders"] == [PLATFORM, COUNTY]
    assert all(r["check"] is None for r in sample["records"])

    again = await client.post(SAMPLES, headers=city(), json=request | {"seed": seed})
    assert {r["record_id"] for r in again.json()["records"]} == {
        r["record_id"] for r in sample["records"]
    }
    assert again.json()["sample_id"] != sample["sample_id"]
    other = await client.post(SAMPLES, headers=city(), json=request | {"seed": seed + 1})
    assert {UUID(r["record_id"]) for r in other.json()["records"]} == expected_draw(
        population, seed + 1, 3, 1
    )

    county_only = await client.post(
        SAMPLES,
        headers=city(),
        json=request | {"region_code": YUNYAN, "per_county": 1, "per_surveyor": 0},
    )
    assert [r["county_code"] for r in county_only.json()["records"]] == [YUNYAN]


async def test_a_sample_is_drawn_in_the_citys_own_region_only(
    client: httpx.AsyncClient, population: list[Record]
) -> None:
    request = {"region_code": "5203", "per_county": 1, "per_surveyor": 1, **JUNE}
    assert_problem(await client.post(SAMPLES, headers=city(), json=request), 403, "out-of-scope")
    backwards = request | {"region_code": "5201", "approved_from": "2025-07-01"}
    assert_problem(
        await client.post(SAMPLES, headers=city(), json=backwards), 422, "invalid-period"
    )
    platform = caller_headers("survey", username=PLATFORM, role="platform", scope="5201")
    refused = await client.post(SAMPLES, headers=platform, json=request | {"region_code": "5201"})
    assert_problem(refused, 403, "caller-not-allowed")
    drawn = await client.post(SAMPLES, headers=city(), json=request | {"region_code": "5201"})
    elsewhere = await client.get(
        f"{SAMPLES}/{drawn.json()['sample_id']}", headers=city(scope="5203")
    )
    assert_problem(elsewhere, 403, "out-of-scope")
    assert_problem(
        await client.get(f"{SAMPLES}/{uuid4()}", headers=city()), 404, "sample-not-found"
    )


async def test_each_record_is_rechecked_once_by_someone_who_neither_made_nor_decided_it(
    client: httpx.AsyncClient, survey_db: Database, population: list[Record]
) -> None:
    request = {"region_code": NANMING, "per_county": 0, "per_surveyor": 1, **JUNE}
    sample = (await client.post(SAMPLES, headers=city(), json=request)).json()
    [record] = [r for r in sample["records"] if r["maker"] == "surveyor-a"]
    path = f"{SAMPLES}/{sample['sample_id']}/checks/{record['record_id']}"
    wrong = {"result": "error", "wrong_items": ["phone"], "comment": "电话号码错一位"}

    # The city's own account that happened to decide it (a county member promoted since).
    for who in ("surveyor-a", COUNTY, PLATFORM):
        refused = await client.post(path, headers=city(who), json=wrong)
        assert_problem(refused, 409, "maker-checker")
    bad = await client.post(
        path, headers=city(), json={"result": "correct", "wrong_items": ["phone"]}
    )
    assert_problem(bad, 422, "invalid-request")
    assert (await client.post(path, headers=city(), json={"result": "error"})).status_code == 422
    checked = await client.post(path, headers=city(), json=wrong)
    assert checked.status_code == 201, checked.text
    assert checked.json() | {"checked_at": None} == {
        "record_id": record["record_id"],
        "county_code": NANMING,
        "person_id": record["person"]["person_id"],
        "result": "error",
        "wrong_items": ["phone"],
        "comment": "电话号码错一位",
        "checked_by": CHECKER,
        "checked_at": None,
    }
    twice = await client.post(path, headers=city(CHECKER2), json={"result": "correct"})
    assert assert_problem(twice, 409, "already-checked")["check"]["checked_by"] == CHECKER
    not_in = f"{SAMPLES}/{sample['sample_id']}/checks/{uuid4()}"
    assert_problem(
        await client.post(not_in, headers=city(), json=wrong), 404, "record-not-in-sample"
    )

    # The database holds both rules whatever the application does.
    [other] = [r for r in sample["records"] if r["maker"] == "surveyor-b"]
    row = {
        "sample_id": UUID(sample["sample_id"]),
        "record_id": UUID(other["record_id"]),
        "result": "correct",
        "wrong_items": [],
        "comment": "",
        "checked_at": datetime.now(UTC),
    }
    async with survey_db.engine.begin() as connection:
        with pytest.raises(DBAPIError, match="maker-checker"):
            await connection.execute(
                sa.insert(sample_checks).values(row | {"checked_by": "surveyor-b"})
            )
    for table in (sample_checks, sample_records):
        async with survey_db.engine.begin() as connection:
            with pytest.raises(DBAPIError, match="insert-only"):
                await connection.execute(sa.delete(table))


async def test_error_rates_are_exactly_the_checks_recorded(
    client: httpx.AsyncClient, population: list[Record]
) -> None:
    request = {"region_code": "5201", "per_county": 20, "per_surveyor": 0, **JUNE}
    first = (await client.post(SAMPLES, headers=city(), json=request)).json()
    second = (await client.post(SAMPLES, headers=city(CHECKER2), json=request)).json()
    assert len(first["records"]) == len(population)
    # In the first sample: every record of surveyor-a but one wrong, clerk-k's first wrong.
    results: dict[str, str] = {}
    a_records = [r for r in first["records"] if r["maker"] == "surveyor-a"]
    k_records = [r for r in first["records"] if r["maker"] == "clerk-k"]
    wrong = {r["record_id"] for r in a_records[1:]} | {k_records[0]["record_id"]}
    for record in first["records"]:
        result = "error" if record["record_id"] in wrong else "correct"
        body: dict[str, Any] = {"result": result}
        if result == "error":
            body["wrong_items"] = ["phone"]
        sent = await client.post(
            f"{SAMPLES}/{first['sample_id']}/checks/{record['record_id']}",
            headers=city(),
            json=body,
        )
        assert sent.status_code == 201, sent.text
        results[record["record_id"]] = result
    # In the second: two of Yunyan's, both correct; the rest unchecked.
    for record in [r for r in second["records"] if r["county_code"] == YUNYAN]:
        await client.post(
            f"{SAMPLES}/{second['sample_id']}/checks/{record['record_id']}",
            headers=city(),
            json={"result": "correct"},
        )

    view = (await client.get(f"{SAMPLES}/{first['sample_id']}", headers=city())).json()
    assert {r["record_id"]: r["check"]["result"] for r in view["records"]} == results
    rates = view["rates"]
    assert rates["overall"] == {"checked": 11, "errors": 5, "error_rate": round(5 / 11, 4)}
    assert rates["by_county"] == [
        {"county_code": NANMING, "checked": 9, "errors": 5, "error_rate": round(5 / 9, 4)},
        {"county_code": YUNYAN, "checked": 2, "errors": 0, "error_rate": 0.0},
    ]
    assert rates["by_maker"] == [
        {
            "county_code": NANMING,
            "maker": "clerk-k",
            "checked": 3,
            "errors": 1,
            "error_rate": round(1 / 3, 4),
        },
        {
            "county_code": NANMING,
            "maker": "surveyor-a",
            "checked": 5,
            "errors": 4,
            "error_rate": 0.8,
        },
        {
            "county_code": NANMING,
            "maker": "surveyor-b",
            "checked": 1,
            "errors": 0,
            "error_rate": 0.0,
        },
        {
            "county_code": YUNYAN,
            "maker": "surveyor-d",
            "checked": 2,
            "errors": 0,
            "error_rate": 0.0,
        },
    ]

    quality = await client.get(
        "/internal/survey/quality", headers=city(), params={"region": "5201"}
    )
    assert quality.status_code == 200, quality.text
    overall = quality.json()
    assert overall["samples"] == 2
    assert overall["overall"] == {"checked": 13, "errors": 5, "error_rate": round(5 / 13, 4)}
    assert overall["by_county"][1] == {
        "county_code": YUNYAN,
        "checked": 4,
        "errors": 0,
        "error_rate": 0.0,
    }
    today = datetime.now(ZoneInfo(sampling.LOCAL_TIME)).date().isoformat()
    nanming = await client.get(
        "/internal/survey/quality",
        headers=city(),
        params={"region": NANMING, "from": today, "to": today},
    )
    assert nanming.json()["overall"] == {"checked": 9, "errors": 5, "error_rate": 0.5556}
    before = await client.get(
        "/internal/survey/quality", headers=city(), params={"to": "2025-01-01"}
    )
    assert before.json()["overall"] == {"checked": 0, "errors": 0, "error_rate": None}
    assert_problem(
        await client.get("/internal/survey/quality", headers=city(), params={"region": "5203"}),
        403,
        "out-of-scope",
    )
