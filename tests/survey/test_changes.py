"""Change registration at the grass-roots platform (变更登记, 44号 Art.5, Art.21) in the survey
service, on real PostgreSQL and the real broker: the platform records a change for a registered
person with the documents it saw, another member of the platform does 初审, the county 审定, and
only then is it published on registry.collections (channel platform, with its first reviewer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from canbao_contracts.codes import ChangeDocument
from canbao_contracts.events.vocabulary import Channel
from canbao_platform.db import Database
from canbao_survey.tables import decisions, tasks
from canbao_survey.tasks import ChangeRegistration, Contact, TaskChannel
from tests.conftest import caller_headers
from tests.survey.conftest import Published, assert_problem

REGION = "520102"
RECORDER, PLATFORM2, COUNTY = "platform-wu", "platform-zheng", "county-chen"
CHANGES, TASKS = "/internal/survey/changes", "/internal/survey/tasks"


def staff(username: str, role: str, scope: str = "5201") -> dict[str, str]:
    return caller_headers("survey", username=username, role=role, scope=scope)


@pytest.fixture
async def client(survey_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with survey_app.router.lifespan_context(survey_app):
        transport = httpx.ASGITransport(app=survey_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://survey") as client:
            yield client


def change(person: UUID, **fields: Any) -> dict[str, Any]:
    return {
        "client_id": str(uuid4()),
        "person_id": str(person),
        "region_code": REGION,
        "items": {"phone": "13700001111", "residence_address": "贵州省贵阳市南明区花果园街道9号"},
        "documents": ["id_card", "household_register"],
        "reason": "更换手机号码，搬迁新址",
        **fields,
    }


def test_a_change_is_kept_as_a_walk_in_signed_by_the_person_with_its_documents() -> None:
    body = ChangeRegistration.model_validate(change(uuid4(), documents=["id_card", "id_card"]))
    at = datetime(2025, 6, 20, 3, tzinfo=UTC)
    record = body.as_record(at)
    assert record.contact is Contact.WALK_IN and record.visited_at == at
    assert record.documents == [ChangeDocument.ID_CARD]  # seen once is once
    assert record.declaration is not None and record.declaration.signed_on == at.date()
    assert "13700001111" not in repr(body) + repr(record)
    assert ChangeDocument.DEATH_CERTIFICATE.label == "死亡证明"
    for bad in ({"documents": []}, {"reason": "  "}, {"items": {}}):
        with pytest.raises(ValueError):
            ChangeRegistration.model_validate(change(uuid4(), **bad))


async def test_a_change_goes_first_review_by_another_member_then_approval(
    client: httpx.AsyncClient, survey_db: Database, published: Published
) -> None:
    person = uuid4()
    body = change(person)
    recorder = staff(RECORDER, "platform")

    sent = await client.post(CHANGES, headers=recorder, json=body)
    again = await client.post(CHANGES, headers=recorder, json=body)

    assert sent.status_code == 201, sent.text
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == sent.json()
    assert sent.json() | {"task_id": None, "submission_id": None} == {
        "task_id": None,
        "submission_id": None,
        "state": "submitted",
        "person_id": str(person),
        "region_code": REGION,
    }
    task = sent.json()["task_id"]
    queue = await client.get(TASKS, params={"channel": "change"}, headers=recorder)
    assert [t["task_id"] for t in queue.json()["items"]] == [task]
    assert queue.json()["items"][0]["channel"] == "change"
    for other in ("survey", "self"):
        listed = await client.get(TASKS, params={"channel": other}, headers=recorder)
        assert listed.json()["items"] == []
    detail = (await client.get(f"{TASKS}/{task}", headers=staff(PLATFORM2, "platform"))).json()
    shown = detail["submission"]
    assert (shown["submitted_by"], shown["contact"], shown["reason"]) == (
        RECORDER,
        "walk_in",
        "更换手机号码，搬迁新址",
    )
    assert shown["documents"] == [
        {"code": "id_card", "label": "居民身份证"},
        {"code": "household_register", "label": "户口簿"},
    ]
    assert {i["item"]: i["value"] for i in shown["items"]}["phone"] == "1370***1111"

    # The recorder cannot do the 初审 of their own change (maker-checker).
    own = await client.post(f"{TASKS}/{task}/review", headers=recorder, json={"decision": "pass"})
    assert_problem(own, 409, "maker-checker")
    passed = await client.post(
        f"{TASKS}/{task}/review", headers=staff(PLATFORM2, "platform"), json={"decision": "pass"}
    )
    assert passed.json()["state"] == "first_reviewed", passed.text
    assert not published.of_person(person)  # nothing applies before 审定
    approved = await client.post(
        f"{TASKS}/{task}/approve", headers=staff(COUNTY, "county"), json={"decision": "approve"}
    )
    assert approved.json()["state"] == "approved", approved.text

    await published.until(lambda seen: bool(published.of_person(person)))
    [event] = published.of_person(person)
    assert event.channel is Channel.PLATFORM
    assert (event.handler, event.first_reviewer, event.reviewer) == (RECORDER, PLATFORM2, COUNTY)
    assert event.first_reviewed_at is not None
    assert event.items == {
        "phone": "13700001111",
        "residence_address": "贵州省贵阳市南明区花果园街道9号",
    }
    async with survey_db.engine.connect() as connection:
        ledger = (await connection.execute(sa.select(decisions))).mappings().all()
        row = (await connection.execute(sa.select(tasks))).mappings().one()
    assert [(d["stage"], d["decided_by"]) for d in ledger] == [
        ("review", PLATFORM2),
        ("approve", COUNTY),
    ]
    assert (row["channel"], row["origin"], row["team"]) == ("change", "platform", [RECORDER])


async def test_a_change_is_checked_like_a_collection_and_kept_to_the_platforms_division(
    client: httpx.AsyncClient,
) -> None:
    person, recorder = uuid4(), staff(RECORDER, "platform")
    bad_phone = change(person, items={"phone": "123"})
    assert_problem(
        await client.post(CHANGES, headers=recorder, json=bad_phone), 422, "invalid-items"
    )
    no_documents = await client.post(CHANGES, headers=recorder, json=change(person, documents=[]))
    assert no_documents.status_code == 422
    unknown = await client.post(CHANGES, headers=recorder, json=change(person, documents=["x"]))
    assert unknown.status_code == 422
    zunyi = staff(RECORDER, "platform", scope="5203")
    refused = assert_problem(
        await client.post(CHANGES, headers=zunyi, json=change(person)), 403, "out-of-scope"
    )
    assert refused["region_code"] == REGION
    # A township's platform serves the residents of its county (the gateway's rule for a person).
    township = staff(RECORDER, "platform", scope="520102003")
    assert (await client.post(CHANGES, headers=township, json=change(person))).status_code == 201
    county = await client.post(CHANGES, headers=staff(COUNTY, "county"), json=change(uuid4()))
    assert_problem(county, 403, "caller-not-allowed")


async def test_one_change_waits_per_person_and_a_returned_one_is_recorded_again(
    client: httpx.AsyncClient, survey_db: Database
) -> None:
    person, recorder = uuid4(), staff(RECORDER, "platform")
    # The person is on a survey list too: the change waits beside the survey task.
    async with survey_db.engine.begin() as connection:
        now = datetime.now(UTC)
        await connection.execute(
            sa.insert(tasks).values(
                task_id=uuid4(),
                channel=TaskChannel.SURVEY.value,
                origin="survey",
                person_id=person,
                region_code=REGION,
                survey_reasons=[],
                missing=[],
                inaccurate=[],
                state="open",
                team=[],
                version=0,
                created_at=now,
                updated_at=now,
            )
        )
    body = change(person)
    first = await client.post(CHANGES, headers=recorder, json=body)
    assert first.status_code == 201, first.text
    task = first.json()["task_id"]

    second = await client.post(CHANGES, headers=recorder, json=change(person))
    pending = assert_problem(second, 409, "change-pending")
    assert pending["task"]["task_id"] == task
    other_person = change(uuid4(), client_id=body["client_id"])
    assert_problem(
        await client.post(CHANGES, headers=recorder, json=other_person), 409, "client-id-reused"
    )

    returned = await client.post(
        f"{TASKS}/{task}/review",
        headers=staff(PLATFORM2, "platform"),
        json={"decision": "reject", "comment": "缺少户口簿原件"},
    )
    assert returned.json()["state"] == "assigned"
    again = await client.post(CHANGES, headers=recorder, json=change(person))
    assert again.status_code == 201, again.text
    assert (again.json()["task_id"], again.json()["state"]) == (task, "submitted")
    assert again.json()["submission_id"] != first.json()["submission_id"]
    # The new submission is reviewed afresh: the one who returned the first may pass this one.
    passed = await client.post(
        f"{TASKS}/{task}/review", headers=staff(PLATFORM2, "platform"), json={"decision": "pass"}
    )
    assert passed.json()["state"] == "first_reviewed", passed.text


async def test_a_surveyor_cannot_claim_a_walk_in(client: httpx.AsyncClient) -> None:
    body = {
        "client_id": str(uuid4()),
        "visited_at": datetime.now(UTC).isoformat(),
        "contact": "walk_in",
        "items": {"phone": "13700001111"},
        "declaration": {"signed_by": "self", "signed_on": "2025-06-20"},
        "region_code": REGION,
        "document_type": "01",
    }
    sent = await client.post(
        "/internal/survey/discoveries", json=body, headers=staff("surveyor-zhang", "surveyor")
    )
    assert_problem(sent, 422, "invalid-contact")
