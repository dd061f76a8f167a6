"""The city's sampling checks on the public interface (抽查复核, Chongqing plan 四(二)): the gateway
in front of survey running for real, on records its counties approved. A sample is drawn in the
city's region, re-checked once per record by someone who neither made nor decided it, and the
error rates are those of the checks; every sample read and re-check is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.sealing import Sealer
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.services import collections_kafka as collections_kafka
from tests.gateway.services import gateway_over
from tests.survey import conftest as survey_fixtures
from tests.survey.conftest import survey_settings
from tests.survey.test_sampling import (
    COUNTY,
    JUNE,
    NANMING,
    YUNYAN,
    Record,
    approved_collection,
    approved_submission,
)

survey_url = survey_fixtures.survey_url
survey_db = survey_fixtures.survey_db
survey_app = survey_fixtures.survey_app
API = "/api/v1/survey"


@pytest.fixture
async def records(
    survey_url: str, survey_db: Database, collections_kafka: MockKafkaCluster
) -> list[Record]:
    """Approved records of June, sealed as survey seals them (its settings' key)."""
    sealer: Sealer = survey_settings(survey_url, collections_kafka).sealer()
    return [
        await approved_submission(survey_db, sealer, county=NANMING, maker="surveyor-a"),
        await approved_submission(survey_db, sealer, county=NANMING, maker="surveyor-a"),
        await approved_collection(survey_db, sealer, county=NANMING, clerk="clerk-k"),
        await approved_submission(survey_db, sealer, county=YUNYAN, maker="surveyor-d"),
    ]


@pytest.fixture
async def gateway(
    gateway_url: str, test_clock: Clock, survey_app: FastAPI, records: list[Record]
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in gateway_over(gateway_url, test_clock, survey=survey_app):
        yield client


def city(token_for: Any, username: str = "demo-city", scope: str = "5201") -> dict[str, str]:
    return bearer(token_for(Role.CITY, scope=scope, username=username))


async def test_a_sample_is_drawn_rechecked_once_and_its_error_rates_shown(
    gateway: httpx.AsyncClient, token_for: Any, gateway_db: Database, records: list[Record]
) -> None:
    request = {"region_code": "5201", "per_county": 5, "per_surveyor": 1, **JUNE}
    drawn = await gateway.post(f"{API}/samples", headers=city(token_for), json=request)
    assert drawn.status_code == 201, drawn.text
    sample = drawn.json()
    assert {r["record_id"] for r in sample["records"]} == {str(r.record_id) for r in records}
    assert sample["population"] == 4 and sample["rates"]["overall"]["checked"] == 0
    collection = next(r for r in sample["records"] if r["kind"] == "collection")
    assert collection["person"]["name"] == "王*" and collection["channel_label"] == "业务经办窗口"

    checks = f"{API}/samples/{sample['sample_id']}/checks"
    wrong = {"result": "error", "wrong_items": ["phone"], "comment": "电话空号"}
    first = next(r for r in sample["records"] if r["maker"] == "surveyor-a")
    decider = await gateway.post(
        f"{checks}/{first['record_id']}", json=wrong, headers=city(token_for, COUNTY)
    )
    assert_problem(decider, 409, "maker-checker")
    for record in sample["records"]:
        body = wrong if record is first else {"result": "correct"}
        sent = await gateway.post(
            f"{checks}/{record['record_id']}", json=body, headers=city(token_for)
        )
        assert sent.status_code == 201, sent.text
    again = await gateway.post(
        f"{checks}/{first['record_id']}",
        json={"result": "correct"},
        headers=city(token_for, "demo-city2"),
    )
    assert assert_problem(again, 409, "already-checked")["check"]["result"] == "error"

    view = await gateway.get(f"{API}/samples/{sample['sample_id']}", headers=city(token_for))
    assert view.json()["rates"]["by_maker"] == [
        {"county_code": NANMING, "maker": "clerk-k", "checked": 1, "errors": 0, "error_rate": 0.0},
        {
            "county_code": NANMING,
            "maker": "surveyor-a",
            "checked": 2,
            "errors": 1,
            "error_rate": 0.5,
        },
        {
            "county_code": YUNYAN,
            "maker": "surveyor-d",
            "checked": 1,
            "errors": 0,
            "error_rate": 0.0,
        },
    ]
    quality = await gateway.get(
        f"{API}/quality", headers=city(token_for), params={"region": NANMING}
    )
    assert quality.status_code == 200, quality.text
    assert quality.json()["overall"] == {"checked": 3, "errors": 1, "error_rate": 0.3333}
    assert quality.json()["region"] == NANMING and quality.json()["samples"] == 1

    async with gateway_db.engine.connect() as connection:
        rows = (await connection.execute(sa.select(audit_log).order_by(audit_log.c.id))).mappings()
        audited = [(r["endpoint"].split(" ", 1)[1], r["outcome"], r["person_region"]) for r in rows]
    check = f"{API}/samples/{{sample_id}}/checks/{{record_id}}"
    assert audited == [
        (f"{API}/samples", "ok", "5201"),
        (check, "rejected", None),  # the decider refused
        *[(check, "ok", r["county_code"]) for r in sample["records"]],
        (check, "rejected", None),  # checked already
        (f"{API}/samples/{{sample_id}}", "ok", "5201"),
    ]


async def test_only_the_city_samples_and_only_its_own_region(
    gateway: httpx.AsyncClient, token_for: Any
) -> None:
    request = {"region_code": "5203", "per_county": 1, "per_surveyor": 1, **JUNE}
    assert_problem(
        await gateway.post(f"{API}/samples", headers=city(token_for), json=request),
        403,
        "out-of-scope",
    )
    platform = bearer(token_for(Role.PLATFORM, scope="5201", username="demo-platform"))
    mine = request | {"region_code": "5201"}
    assert_problem(
        await gateway.post(f"{API}/samples", headers=platform, json=mine), 403, "role-not-allowed"
    )
    backwards = mine | {"approved_from": "2025-07-01"}
    assert_problem(
        await gateway.post(f"{API}/samples", headers=city(token_for), json=backwards),
        422,
        "invalid-period",
    )
    assert_problem(
        await gateway.get(f"{API}/quality", headers=city(token_for), params={"region": "5203"}),
        403,
        "out-of-scope",
    )
