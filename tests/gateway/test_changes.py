"""变更登记 at the grass-roots platform on the public interface (44号 Art.5, Art.21): the gateway in
front of identity, matching and survey running for real. The platform looks a walk-in up (masked,
audited, within its division), records the change with the documents seen; another member of the
platform does 初审, the county 审定, and only then is it published, channel platform."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from canbao_contracts.events.vocabulary import Channel
from canbao_contracts.topics import COLLECTIONS, PERSONS, STATUSES
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.people import NANMING, YUNYAN, ZUNYI_HONGHUAGANG, citizen
from tests.gateway.services import gateway_over, hukou, identity_app, matching_app
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.matching.conftest import matching_db as matching_db
from tests.survey import conftest as survey_fixtures
from tests.survey.conftest import Published

survey_url = survey_fixtures.survey_url
survey_db = survey_fixtures.survey_db
survey_app = survey_fixtures.survey_app
published = survey_fixtures.published

API = "/api/v1/survey"
RECORDER, PLATFORM2, COUNTY = "demo-platform", "demo-platform2", "demo-county"
PERSON = citizen(ZUNYI_HONGHUAGANG, "19800101", "011")  # born in Zunyi, lives in Nanming
ELSEWHERE = citizen(NANMING, "19800202", "021")  # lives in Yunyan
UNREGISTERED = citizen(NANMING, "19700707", "041")


@pytest.fixture(scope="module")
def collections_kafka() -> Iterator[MockKafkaCluster]:
    with MockKafkaCluster(brokers=3) as cluster:
        cluster.create_topics([COLLECTIONS, PERSONS, STATUSES])
        yield cluster


@pytest.fixture
async def people(harness: Harness) -> dict[str, UUID]:
    await harness.apply([hukou(PERSON, NANMING), hukou(ELSEWHERE, YUNYAN, name="李娜")])
    found = {n: await harness.person_of(n) for n in (PERSON, ELSEWHERE)}
    return {n: p for n, p in found.items() if p is not None}


@pytest.fixture
async def gateway(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    matching_db: Database,
    survey_app: FastAPI,
    people: dict[str, UUID],
) -> AsyncIterator[httpx.AsyncClient]:
    apps = {
        "identity": identity_app(harness),
        "matching": matching_app(matching_db),
        "survey": survey_app,
    }
    async for client in gateway_over(gateway_url, test_clock, **apps):
        yield client


def staff(token_for: Any, role: Role, username: str, scope: str = "5201") -> dict[str, str]:
    return bearer(token_for(role, scope=scope, username=username))


def change(number: str = PERSON, **fields: Any) -> dict[str, Any]:
    return {
        "client_id": str(uuid4()),
        "id_number": number,
        "items": {"phone": "13700001111"},
        "documents": ["id_card", "social_security_card"],
        "reason": "更换手机号码",
        **fields,
    }


async def audit_rows(database: Database) -> list[tuple[str, str, str, str]]:
    async with database.engine.connect() as connection:
        rows = (await connection.execute(sa.select(audit_log).order_by(audit_log.c.id))).mappings()
        return [(r["endpoint"], r["staff"], r["purpose"], r["outcome"]) for r in rows]


async def test_a_walk_in_is_looked_up_and_the_change_goes_first_review_then_approval(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    published: Published,
    people: dict[str, UUID],
) -> None:
    recorder = staff(token_for, Role.PLATFORM, RECORDER)
    found = await gateway.get(f"{API}/changes/lookup/{PERSON}", headers=recorder)
    assert found.status_code == 200, found.text
    record = found.json()
    assert record["person_id"] == str(people[PERSON])
    assert record["id_number"] != PERSON and "*" in record["id_number"]  # masked

    body = change()
    sent = await gateway.post(f"{API}/changes", headers=recorder, json=body)
    again = await gateway.post(f"{API}/changes", headers=recorder, json=body)
    assert sent.status_code == 201, sent.text
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert sent.json() == again.json() and sent.json()["state"] == "submitted"
    task = f"{API}/tasks/{sent.json()['task_id']}"

    queue = await gateway.get(
        f"{API}/tasks",
        params={"channel": "change"},
        headers=staff(token_for, Role.PLATFORM, PLATFORM2),
    )
    assert [(t["task_id"], t["channel"]) for t in queue.json()["items"]] == [
        (sent.json()["task_id"], "change")
    ]
    detail = (await gateway.get(task, headers=staff(token_for, Role.PLATFORM, PLATFORM2))).json()
    assert [d["label"] for d in detail["submission"]["documents"]] == ["居民身份证", "社会保障卡"]
    assert detail["submission"]["reason"] == "更换手机号码"

    own = await gateway.post(f"{task}/review", headers=recorder, json={"decision": "pass"})
    assert_problem(own, 409, "maker-checker")
    passed = await gateway.post(
        f"{task}/review",
        json={"decision": "pass"},
        headers=staff(token_for, Role.PLATFORM, PLATFORM2),
    )
    assert passed.json()["state"] == "first_reviewed", passed.text
    approved = await gateway.post(
        f"{task}/approve",
        json={"decision": "approve"},
        headers=staff(token_for, Role.COUNTY, COUNTY),
    )
    assert approved.json()["state"] == "approved", approved.text

    person = people[PERSON]
    await published.until(lambda seen: bool(published.of_person(person)))
    [event] = published.of_person(person)
    assert event.channel is Channel.PLATFORM
    assert (event.handler, event.first_reviewer, event.reviewer) == (RECORDER, PLATFORM2, COUNTY)
    assert event.items == {"phone": "13700001111"}
    rows = await audit_rows(gateway_db)
    assert rows[:4] == [
        (f"GET {API}/changes/lookup/{{id_number}}", RECORDER, "change_registration", "ok"),
        (f"POST {API}/changes", RECORDER, "change_registration", "ok"),
        (f"POST {API}/changes", RECORDER, "change_registration", "ok"),  # the replay: a change
        (f"GET {API}/tasks", PLATFORM2, "review", "ok"),
    ]
    assert (f"POST {API}/tasks/{{task_id}}/review", RECORDER, "review", "rejected") in rows


async def test_the_platform_serves_its_own_division_and_registered_people_only(
    gateway: httpx.AsyncClient, token_for: Any, gateway_db: Database
) -> None:
    nanming = staff(token_for, Role.PLATFORM, RECORDER, scope=NANMING)
    for path in (f"{API}/changes/lookup/{ELSEWHERE}",):
        assert_problem(await gateway.get(path, headers=nanming), 403, "out-of-scope")
    assert_problem(
        await gateway.post(f"{API}/changes", headers=nanming, json=change(ELSEWHERE)),
        403,
        "out-of-scope",
    )
    assert_problem(
        await gateway.get(f"{API}/changes/lookup/{UNREGISTERED}", headers=nanming),
        404,
        "not-registered",
    )
    bad = await gateway.post(f"{API}/changes", headers=nanming, json=change(items={"phone": "123"}))
    assert_problem(bad, 422, "invalid-items")
    none_seen = await gateway.post(f"{API}/changes", headers=nanming, json=change(documents=[]))
    assert_problem(none_seen, 422, "invalid-request")
    # A township's platform serves its county's residents (auth.person_in_scope).
    township = staff(token_for, Role.PLATFORM, RECORDER, scope=NANMING + "003")
    assert (
        await gateway.post(f"{API}/changes", headers=township, json=change())
    ).status_code == 201
    pending = await gateway.post(f"{API}/changes", headers=township, json=change())
    assert_problem(pending, 409, "change-pending")
    outcomes = [
        (e.rsplit(" ", 1)[-1], o)
        for e, _, p, o in await audit_rows(gateway_db)
        if p == "change_registration"
    ]
    assert outcomes == [
        ("/api/v1/survey/changes/lookup/{id_number}", "out_of_scope"),
        ("/api/v1/survey/changes", "out_of_scope"),
        ("/api/v1/survey/changes/lookup/{id_number}", "not_found"),
        ("/api/v1/survey/changes", "rejected"),
        ("/api/v1/survey/changes", "ok"),
        ("/api/v1/survey/changes", "ok"),  # recorded, then refused by survey:
        ("/api/v1/survey/changes", "rejected"),
    ]
