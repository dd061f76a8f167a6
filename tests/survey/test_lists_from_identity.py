"""A survey list made through survey's API from identity's real stream (POST
/internal/survey-subjects, in-process): the division's household members, sealed in survey, a task
for each who needs a survey, grouped by the household of the register."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from canbao_contracts.codes import SurveyReason
from canbao_identity.app import create as create_identity
from canbao_identity.settings import IdentitySettings
from canbao_platform.db import Database
from canbao_platform.messaging import Producer
from canbao_platform.service import Resources
from tests.conftest import caller_headers
from tests.identity.conftest import Harness, harness, identity_db  # noqa: F401 (fixtures)
from tests.identity.test_survey_subjects import CHILD, HEAD, SPOUSE, feed_division
from tests.survey.household import UNINSURED, Member, known, publish
from tests.survey.test_household_survey import client, producer, staff  # noqa: F401


def reviewer() -> dict[str, str]:
    """A service token is good for a minute: made when the call is."""
    return caller_headers("survey", username="platform-wu", role="platform", scope="5201")


def identity_token(scope: str = "5201") -> str:
    header = caller_headers("identity", username="platform-wu", role="platform", scope=scope)
    return header["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def with_identity(
    survey_app: FastAPI,
    identity_db: Database,  # noqa: F811
) -> AsyncIterator[FastAPI]:
    """Survey reaching identity's real application in-process, on the test's identity data."""
    settings = IdentitySettings(CANBAO_ENV="test", database_url=identity_db.url)
    identity = create_identity(settings)
    identity.state.resources = Resources(settings=settings, database=identity_db)
    survey_app.state.identity_transport = httpx.ASGITransport(app=identity)
    yield survey_app


async def test_a_list_takes_its_households_from_identity(
    harness: Harness,  # noqa: F811
    with_identity: FastAPI,
    client: httpx.AsyncClient,  # noqa: F811
    survey_db: Database,
    producer: Producer,  # noqa: F811
) -> None:
    people = await feed_division(harness)
    head = Member(
        "王伟",
        HEAD["sfzh"],
        person_id=people["head"],
        statuses=dict(UNINSURED),
        needs=(SurveyReason.UNINSURED,),
    )
    spouse = Member(
        SPOUSE["xm"],
        SPOUSE["sfzh"],
        person_id=people["spouse"],
        statuses=dict(UNINSURED),
        needs=(SurveyReason.UNINSURED,),
    )
    child = Member(CHILD["xm"], CHILD["sfzh"], person_id=people["child"])
    await publish(
        producer,
        [m.person() for m in (head, spouse, child)] + [m.verdict() for m in (head, spouse, child)],
    )
    await known(survey_db, [head, spouse, child])

    made = await client.post(
        "/internal/survey/lists",
        headers=reviewer() | {"Canbao-Identity-Token": identity_token()},
        json={"region_code": "520102"},
    )

    assert made.status_code == 201, made.text
    # 520102's living household members: head, spouse, child, two of another household, one
    # without a 户号 (not the deceased parent, not the migrant registered in Yunnan).
    assert {k: made.json()[k] for k in ("tasks", "households", "residents")} == {
        "tasks": 2,
        "households": 1,
        "residents": 6,
    }
    tasks = (await client.get("/internal/survey/tasks", headers=reviewer())).json()["items"]
    assert {t["person"]["name"] for t in tasks} == {"王*", SPOUSE["xm"][0] + "*"}
    [of_head] = [t for t in tasks if t["person"]["person_id"] == str(head.person_id)]
    assert of_head["person"]["id_number"] == HEAD["sfzh"][:4] + "*" * 10 + HEAD["sfzh"][-4:]
    detail = (
        await client.get(f"/internal/survey/tasks/{of_head['task_id']}", headers=reviewer())
    ).json()
    household = {m["person_id"]: m for m in detail["household_members"]}
    assert set(household) == {str(p) for p in (head.person_id, spouse.person_id, child.person_id)}
    assert household[str(child.person_id)]["complete"] is True
    assert household[str(head.person_id)]["relation"] == "01"
    elsewhere = await client.post(
        "/internal/survey/lists",
        headers=reviewer() | {"Canbao-Identity-Token": identity_token(scope="520103")},
        json={"region_code": "520102"},
    )
    assert elsewhere.status_code == 403, elsewhere.text  # identity refused the region: no list made
    assert elsewhere.json()["type"] == "/problems/out-of-scope"
