"""The household survey (入户调查, 44号 §15-19) in the survey service, on real PostgreSQL and the
real broker: survey learns who needs a survey from registry.persons and registry.statuses, lists
them by household, a county's roster makes teams, surveyors submit (twice, late), the platform
does 初审 and the county 审定 with maker-checker held by the database, and only the approved
submission is published on registry.collections."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy.exc import DBAPIError

from canbao_contracts.codes import Insurance, StatusCode, SurveyReason
from canbao_contracts.events.vocabulary import Channel
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import Producer
from canbao_survey import lists, survey_views
from canbao_survey.metrics import ProgressMetrics
from canbao_survey.settings import SurveySettings
from canbao_survey.tables import decisions, submissions, tasks
from tests.conftest import Observed, caller_headers
from tests.survey.conftest import Published, assert_problem
from tests.survey.household import (
    OTHER_REGION,
    REGION,
    Member,
    family,
    known,
    publish,
    stream_of,
)

SURVEYOR, SURVEYOR2, OUTSIDER = "surveyor-zhang", "surveyor-li", "surveyor-zhao"
PLATFORM, COUNTY, COUNTY2 = "platform-wu", "county-chen", "county-sun"


def staff(username: str, role: str, scope: str = "5201") -> dict[str, str]:
    return caller_headers("survey", username=username, role=role, scope=scope)


@pytest.fixture
async def producer(collections_kafka: MockKafkaCluster) -> AsyncIterator[Producer]:
    producer = Producer(collections_kafka.bootstrap_servers, client_id="tests")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def client(survey_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with survey_app.router.lifespan_context(survey_app):
        transport = httpx.ASGITransport(app=survey_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://survey") as client:
            yield client


@pytest.fixture
def settings(survey_app: FastAPI) -> SurveySettings:
    settings = survey_app.state.resources.settings
    assert isinstance(settings, SurveySettings)
    return settings


async def roster(client: httpx.AsyncClient, *usernames: str, county: str = REGION) -> None:
    for n, username in enumerate(usernames):
        response = await client.put(
            f"/internal/survey/surveyors/{username}",
            headers=staff(COUNTY, "county"),
            json={
                "username": username,
                "name": f"调查员{n}",
                "county_code": county,
                "certificate_number": f"DC-{county}-{username[-4:]}",
                "contracted": n == 1,
            },
        )
        assert response.status_code == 200, response.text


async def listed(
    client: httpx.AsyncClient,
    database: Database,
    settings: SurveySettings,
    producer: Producer,
    members: list[Member],
) -> lists.ListMade:
    """The members known to survey (their person and verdict published), then a list made for
    the region with identity's stream of them."""
    await publish(producer, [m.person() for m in members] + [m.verdict() for m in members])
    await known(database, members)
    return await lists.make_list(
        database,
        settings.sealer(),
        region_code=REGION,
        created_by=PLATFORM,
        now=datetime.now(UTC),
        subjects_stream=stream_of(members),
    )


async def task_of(client: httpx.AsyncClient, member: Member) -> dict[str, Any]:
    response = await client.get(
        "/internal/survey/tasks", params={"region": REGION}, headers=staff(PLATFORM, "platform")
    )
    assert response.status_code == 200, response.text
    [item] = [
        i for i in response.json()["items"] if i["person"]["person_id"] == str(member.person_id)
    ]
    return item


def submission(**fields: Any) -> dict[str, Any]:
    return {
        "client_id": str(uuid4()),
        "visited_at": datetime.now(UTC).isoformat(),
        "items": {"phone": "13912345678"},
        "declaration": {"signed_by": "self", "signed_on": date.today().isoformat()},
        **fields,
    }


async def test_a_list_takes_who_needs_a_survey_by_household_and_only_once(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    father, mother, son = family()
    elsewhere = Member(
        "赵六",
        "520302198001010016",
        needs=(SurveyReason.UNINSURED,),
        region_code=OTHER_REGION,
        household_number="H9",
    )

    made = await listed(client, survey_db, settings, producer, [father, mother, son, elsewhere])

    assert (made.tasks, made.households) == (2, 1)
    item = await task_of(client, father)
    assert item["person"]["name"] == "王**" and item["person"]["id_number"] == "5201**********0017"
    assert item["person"]["address"].endswith("****") and "501" not in item["person"]["address"]
    assert item["survey_reasons"] == ["uninsured", "missing_info"]
    assert item["missing"] == [{"item": "phone", "code": "AAE005", "label": "联系电话"}]
    assert item["state"] == "open" and item["channel"] == "survey"
    detail = (
        await client.get(
            f"/internal/survey/tasks/{item['task_id']}", headers=staff(PLATFORM, "platform")
        )
    ).json()
    members = {m["person_id"]: m for m in detail["household_members"]}
    assert members[str(son.person_id)]["complete"] is True  # 户不漏人: the son is done
    assert members[str(mother.person_id)]["task_state"] == "open"
    again = await lists.make_list(
        survey_db,
        settings.sealer(),
        region_code=REGION,
        created_by=PLATFORM,
        now=datetime.now(UTC),
        subjects_stream=stream_of([father, mother, son]),
    )
    assert again.tasks == 0
    newcomer = Member(
        "孙七", "520102199002020029", needs=(SurveyReason.UNINSURED,), household_number="H0002"
    )
    third = await listed(client, survey_db, settings, producer, [newcomer])
    assert third.tasks == 1


async def test_people_identity_did_not_stream_are_each_a_household_of_their_own(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    # Matching says they need a survey, but identity no longer streams them for the division
    # (moved, or no longer household-registered there): survey has no household for them, and
    # the list counts each as one, as it does a member without a 户号.
    strangers = [
        Member(
            "钱八", "520102198503030030", needs=(SurveyReason.UNINSURED,), household_number="H7"
        ),
        Member(
            "孙九", "520102198604040043", needs=(SurveyReason.UNINSURED,), household_number="H7"
        ),
    ]
    await publish(producer, [m.person() for m in strangers] + [m.verdict() for m in strangers])
    await known(survey_db, strangers)

    made = await lists.make_list(
        survey_db,
        settings.sealer(),
        region_code=REGION,
        created_by=PLATFORM,
        now=datetime.now(UTC),
        subjects_stream=stream_of([]),
    )

    assert (made.tasks, made.households, made.residents) == (2, 2, 0)
    async with survey_db.engine.connect() as connection:
        keys = (await connection.execute(sa.select(tasks.c.household_key))).scalars().all()
    assert keys == [None, None]


async def test_the_survey_from_assignment_to_approval_publishes_one_collection(
    client: httpx.AsyncClient,
    survey_db: Database,
    settings: SurveySettings,
    producer: Producer,
    published: Published,
) -> None:
    father, mother, son = family()
    await listed(client, survey_db, settings, producer, [father, mother, son])
    await roster(client, SURVEYOR, SURVEYOR2)
    task = await task_of(client, father)

    assigned = await client.post(
        f"/internal/survey/tasks/{task['task_id']}/assign",
        headers=staff(PLATFORM, "platform"),
        json={"team": [SURVEYOR, SURVEYOR2]},
    )
    assert assigned.status_code == 200, assigned.text
    assert len(assigned.json()["assigned"]) == 2  # the household: father and mother
    mine = await client.get("/internal/survey/tasks", headers=staff(SURVEYOR, "surveyor"))
    assert {i["person"]["person_id"] for i in mine.json()["items"]} == {
        str(father.person_id),
        str(mother.person_id),
    }
    visit = await client.get(
        f"/internal/survey/tasks/{task['task_id']}", headers=staff(SURVEYOR, "surveyor")
    )
    assert {p["item"]: p["value"] for p in visit.json()["prefill"]}["name"] == "王建国"

    body = submission(verified_reason="93", contact="phone")
    first = await client.post(
        f"/internal/survey/tasks/{task['task_id']}/submit",
        headers=staff(SURVEYOR, "surveyor"),
        json=body,
    )
    synced_again = await client.post(
        f"/internal/survey/tasks/{task['task_id']}/submit",
        headers=staff(SURVEYOR, "surveyor"),
        json=body,
    )
    assert first.status_code == 201, first.text
    assert synced_again.status_code == 200 and synced_again.headers["Idempotent-Replayed"]
    assert synced_again.json() == first.json()
    # Whom it is about, for the gateway's audit log: identity's id and the division, no value.
    subject = {"person_id": str(father.person_id), "region_code": REGION}
    assert {k: first.json()[k] for k in subject} == subject

    path = f"/internal/survey/tasks/{task['task_id']}"
    too_early = await client.post(
        f"{path}/approve", headers=staff(COUNTY, "county"), json={"decision": "approve"}
    )
    assert_problem(too_early, 409, "task-changed")
    passed = await client.post(
        f"{path}/review", headers=staff(PLATFORM, "platform"), json={"decision": "pass"}
    )
    assert passed.json()["state"] == "first_reviewed"
    # The first reviewer, and the surveyor, acting as approvers: maker-checker.
    for who in (PLATFORM, SURVEYOR):
        refused = await client.post(
            f"{path}/approve", headers=staff(who, "county"), json={"decision": "approve"}
        )
        assert_problem(refused, 409, "maker-checker")
    assert not published.of_person(father.person_id)
    approved = await client.post(
        f"{path}/approve",
        headers=staff(COUNTY, "county"),
        json={"decision": "approve", "comment": "核实无误"},
    )
    assert approved.json() == {"task_id": task["task_id"], "state": "approved", **subject}

    await published.until(lambda seen: bool(published.of_person(father.person_id)))
    [event] = published.of_person(father.person_id)
    assert event.channel is Channel.SURVEY
    assert (event.handler, event.first_reviewer, event.reviewer) == (SURVEYOR, PLATFORM, COUNTY)
    assert event.items == {"phone": "13912345678"}
    assert {(v.insurance, v.status) for v in event.verified_statuses} == {
        (Insurance.PENSION, StatusCode("93")),
        (Insurance.MEDICAL, StatusCode("93")),
    }
    assert set(event.resolved_reasons) == {SurveyReason.UNINSURED, SurveyReason.MISSING_INFO}
    async with survey_db.engine.connect() as connection:
        ledger = (await connection.execute(sa.select(decisions))).mappings().all()
    assert [(d["stage"], d["decision"], d["decided_by"]) for d in ledger] == [
        ("review", "pass", PLATFORM),
        ("approve", "approve", COUNTY),
    ]


async def test_the_database_itself_refuses_a_decision_by_the_maker_or_a_reviewer(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    father, *_ = family()
    await listed(client, survey_db, settings, producer, [father])
    await roster(client, SURVEYOR)
    task = await task_of(client, father)
    path = f"/internal/survey/tasks/{task['task_id']}"
    await client.post(
        f"{path}/assign", headers=staff(PLATFORM, "platform"), json={"team": [SURVEYOR]}
    )
    sent = await client.post(
        f"{path}/submit", headers=staff(SURVEYOR, "surveyor"), json=submission()
    )
    submission_id = UUID(sent.json()["submission_id"])
    row = {
        "submission_id": submission_id,
        "stage": "review",
        "decision": "pass",
        "decided_at": datetime.now(UTC),
        "comment": "",
    }

    async def insert(**values: Any) -> None:
        async with survey_db.engine.begin() as connection:
            await connection.execute(sa.insert(decisions).values(row | values))

    with pytest.raises(DBAPIError, match="maker-checker"):
        await insert(decided_by=SURVEYOR)
    await insert(decided_by=PLATFORM)
    with pytest.raises(DBAPIError, match="maker-checker"):
        await insert(decided_by=PLATFORM, stage="approve", decision="approve")
    with pytest.raises(DBAPIError, match="out of order"):
        await insert(decided_by=COUNTY2, stage="review")  # 初审 happens once
    async with survey_db.engine.begin() as connection:
        with pytest.raises(DBAPIError, match="insert-only"):
            await connection.execute(sa.update(decisions).values(decided_by=COUNTY))


async def test_an_assignment_that_deadlocks_with_a_verdict_update_is_run_again(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    """The consumer saving a batch of verdicts updates the mother's task, then the father's; an
    assignment of the father's household locks his task, then the mother's. PostgreSQL breaks the
    deadlock by aborting the assignment (its deadlock timer runs first), which is run again once
    the batch commits: the platform sees its assignment, never the race."""
    father, mother, _ = family()
    await listed(client, survey_db, settings, producer, [father, mother])
    await roster(client, SURVEYOR, SURVEYOR2)
    task, other = await task_of(client, father), await task_of(client, mother)
    touch = "UPDATE tasks SET survey_reasons = survey_reasons WHERE task_id = :id"

    async def deadlocks() -> int:
        async with survey_db.engine.connect() as connection:
            query = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            return int((await connection.execute(sa.text(query))).scalar_one())

    async def assignment_waits() -> bool:
        query = """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                   AND wait_event_type = 'Lock' AND query LIKE 'UPDATE tasks SET state%'"""
        async with survey_db.engine.connect() as connection:
            return bool((await connection.execute(sa.text(query))).scalar_one())

    before = await deadlocks()
    async with survey_db.engine.connect() as batch:
        await batch.execute(sa.text("SET deadlock_timeout = '30s'"))  # never the victim
        await batch.execute(sa.text(touch), {"id": other["task_id"]})
        assigning = asyncio.create_task(
            client.post(
                f"/internal/survey/tasks/{task['task_id']}/assign",
                headers=staff(PLATFORM, "platform"),
                json={"team": [SURVEYOR, SURVEYOR2]},
            )
        )
        for _ in range(300):
            if await assignment_waits():
                break
            await _pause()
        await batch.execute(sa.text(touch), {"id": task["task_id"]})  # the cycle closes
        await batch.commit()
    assigned = await assigning

    assert assigned.status_code == 200, assigned.text
    assert sorted(assigned.json()["assigned"]) == sorted([task["task_id"], other["task_id"]])
    assert await deadlocks() == before + 1


async def test_a_rejection_returns_the_task_to_its_team_with_the_comment(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    father, *_ = family()
    await listed(client, survey_db, settings, producer, [father])
    await roster(client, SURVEYOR)
    path = f"/internal/survey/tasks/{(await task_of(client, father))['task_id']}"
    await client.post(
        f"{path}/assign", headers=staff(PLATFORM, "platform"), json={"team": [SURVEYOR]}
    )
    await client.post(f"{path}/submit", headers=staff(SURVEYOR, "surveyor"), json=submission())
    without_reason = await client.post(
        f"{path}/review", headers=staff(PLATFORM, "platform"), json={"decision": "reject"}
    )
    assert_problem(without_reason, 422, "invalid-request")
    rejected = await client.post(
        f"{path}/review",
        headers=staff(PLATFORM, "platform"),
        json={"decision": "reject", "comment": "电话号码请本人确认"},
    )
    assert rejected.json()["state"] == "assigned"
    task = (await client.get(path, headers=staff(SURVEYOR, "surveyor"))).json()
    assert task["comment"] == "电话号码请本人确认" and task["state"] == "assigned"
    again = await client.post(
        f"{path}/submit",
        headers=staff(SURVEYOR, "surveyor"),
        json=submission(items={"phone": "13912340000"}),
    )
    assert again.status_code == 201 and again.json()["state"] == "submitted"
    # The reviewer who rejected the first submission may review the new one.
    passed = await client.post(
        f"{path}/review", headers=staff(PLATFORM, "platform"), json={"decision": "pass"}
    )
    assert passed.json()["state"] == "first_reviewed"


async def test_a_late_sync_for_a_reassigned_task_is_kept_and_answered_409(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    father, *_ = family()
    await listed(client, survey_db, settings, producer, [father])
    await roster(client, SURVEYOR, SURVEYOR2)
    path = f"/internal/survey/tasks/{(await task_of(client, father))['task_id']}"
    await client.post(
        f"{path}/assign", headers=staff(PLATFORM, "platform"), json={"team": [SURVEYOR]}
    )
    await client.post(
        f"{path}/assign", headers=staff(PLATFORM, "platform"), json={"team": [SURVEYOR2]}
    )
    offline = submission(visited_at=(datetime.now(UTC) - timedelta(hours=6)).isoformat())

    late = await client.post(f"{path}/submit", headers=staff(SURVEYOR, "surveyor"), json=offline)
    twice = await client.post(f"{path}/submit", headers=staff(SURVEYOR, "surveyor"), json=offline)

    body = assert_problem(late, 409, "task-changed")
    assert body["task"]["team"] == [SURVEYOR2] and body["task"]["state"] == "assigned"
    assert assert_problem(twice, 409, "task-changed")["submission_id"] == body["submission_id"]
    async with survey_db.engine.connect() as connection:
        kept = (await connection.execute(sa.select(submissions))).mappings().all()
    assert [(k["state"], k["submitted_by"]) for k in kept] == [("unattached", SURVEYOR)]
    reused = await client.post(
        f"{path}/submit",
        headers=staff(SURVEYOR2, "surveyor"),
        json=offline | {"visited_at": datetime.now(UTC).isoformat()},
    )
    assert_problem(reused, 409, "task-changed")  # the same client_id: what was kept, kept
    fresh = await client.post(
        f"{path}/submit", headers=staff(SURVEYOR2, "surveyor"), json=submission()
    )
    assert fresh.status_code == 201


async def test_a_task_closes_itself_when_its_person_no_longer_needs_a_survey(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    father, mother, _ = family()
    await listed(client, survey_db, settings, producer, [father, mother])
    # A counter collection fixed the father meanwhile; the mother moved to Zunyi.
    later = datetime.now(UTC) + timedelta(seconds=1)
    moved = mother.person().model_copy(update={"region_code": OTHER_REGION})
    await publish(producer, [father.verdict(needs=(), at=later), moved])

    async def states() -> dict[str, tuple[str, str | None]]:
        async with survey_db.engine.connect() as connection:
            rows = (await connection.execute(sa.select(tasks))).mappings().all()
        return {str(r["person_id"]): (r["state"], r["closed_reason"]) for r in rows}

    for _ in range(300):
        if all(state == "closed" for state, _ in (await states()).values()):
            break
        await _pause()
    assert await states() == {
        str(father.person_id): ("closed", "resolved"),
        str(mother.person_id): ("closed", "moved_out"),
    }


async def test_a_surveyor_sees_only_the_tasks_of_their_team(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    father, *_ = family()
    await listed(client, survey_db, settings, producer, [father])
    await roster(client, SURVEYOR, OUTSIDER)
    task = await task_of(client, father)
    await client.post(
        f"/internal/survey/tasks/{task['task_id']}/assign",
        headers=staff(PLATFORM, "platform"),
        json={"team": [SURVEYOR]},
    )

    others = await client.get("/internal/survey/tasks", headers=staff(OUTSIDER, "surveyor"))
    peek = await client.get(
        f"/internal/survey/tasks/{task['task_id']}", headers=staff(OUTSIDER, "surveyor")
    )
    submit = await client.post(
        f"/internal/survey/tasks/{task['task_id']}/submit",
        headers=staff(OUTSIDER, "surveyor"),
        json=submission(),
    )

    assert others.json()["items"] == []
    assert_problem(peek, 404, "task-not-found")
    assert_problem(submit, 409, "task-changed")
    as_self = await client.post(
        f"/internal/survey/tasks/{task['task_id']}/submit",
        headers=staff(SURVEYOR, "surveyor"),
        json=submission(contact="self"),
    )
    assert_problem(as_self, 422, "invalid-contact")  # 自助 is the citizen's own channel
    unknown = await client.post(
        f"/internal/survey/tasks/{task['task_id']}/assign",
        headers=staff(PLATFORM, "platform"),
        json={"team": ["not-on-roster"]},
    )
    assert assert_problem(unknown, 422, "surveyor-not-in-roster")["usernames"] == ["not-on-roster"]
    wrong_role = await client.post(
        f"/internal/survey/tasks/{task['task_id']}/assign",
        headers=staff(SURVEYOR, "surveyor"),
        json={"team": [SURVEYOR]},
    )
    assert_problem(wrong_role, 403, "caller-not-allowed")
    elsewhere = await client.get(
        f"/internal/survey/tasks/{task['task_id']}",
        headers=staff(PLATFORM, "platform", scope="5203"),
    )
    assert_problem(elsewhere, 403, "out-of-scope")


async def test_a_discovered_person_is_checked_like_a_new_registration(
    client: httpx.AsyncClient, published: Published
) -> None:
    newcomer = {
        "name": "陈小梅",
        "gender": "2",
        "id_number": "520102199505050021",
        "birth_date": "19950505",
        "household_place": "贵州省贵阳市南明区",
        "residence_address": "贵州省贵阳市南明区新华路8号",
        "phone": "13698765432",
    }
    broken = newcomer | {"id_number": "520102199505050025", "phone": "12345"}

    refused = await client.post(
        "/internal/survey/discoveries",
        headers=staff(SURVEYOR, "surveyor"),
        json=submission(items=broken, region_code=REGION),
    )
    errors = {e["item"]: e["kind"] for e in assert_problem(refused, 422, "invalid-items")["errors"]}
    assert set(errors) == {"id_number", "phone"}
    found = await client.post(
        "/internal/survey/discoveries",
        headers=staff(SURVEYOR, "surveyor"),
        json=submission(items=newcomer, region_code=REGION),
    )
    assert found.status_code == 201 and found.json()["state"] == "submitted"
    path = f"/internal/survey/tasks/{found.json()['task_id']}"
    await client.post(
        f"{path}/review", headers=staff(PLATFORM, "platform"), json={"decision": "pass"}
    )
    await client.post(
        f"{path}/approve", headers=staff(COUNTY, "county"), json={"decision": "approve"}
    )
    await published.until(
        lambda seen: any(e.person_id is None and e.channel is Channel.SURVEY for e in seen)
    )
    [event] = [e for e in published.seen if e.person_id is None and e.channel is Channel.SURVEY]
    assert event.items["id_number"] == "520102199505050021" and event.region_code == REGION


async def test_progress_counts_the_survey_rate_and_open_tasks_per_team(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    father, mother, son = family()
    await listed(client, survey_db, settings, producer, [father, mother, son])
    await roster(client, SURVEYOR)
    path = f"/internal/survey/tasks/{(await task_of(client, father))['task_id']}"
    await client.post(
        f"{path}/assign", headers=staff(PLATFORM, "platform"), json={"team": [SURVEYOR]}
    )
    await client.post(f"{path}/submit", headers=staff(SURVEYOR, "surveyor"), json=submission())

    progress = (
        await client.get(
            "/internal/survey/progress", params={"region": REGION}, headers=staff(COUNTY, "county")
        )
    ).json()

    assert (progress["needing_survey"], progress["surveyed"]) == (2, 1)
    assert progress["survey_rate"] == 0.5
    assert progress["open_tasks_by_team"] == [{"team": [SURVEYOR], "open_tasks": 1}]


async def _pause() -> None:
    await asyncio.sleep(0.1)


async def test_the_form_and_the_ledger_open_and_read_back(
    client: httpx.AsyncClient, survey_db: Database, settings: SurveySettings, producer: Producer
) -> None:
    father, mother, son = family()
    await listed(client, survey_db, settings, producer, [father, mother, son])
    await roster(client, SURVEYOR)
    task = await task_of(client, father)
    path = f"/internal/survey/tasks/{task['task_id']}"
    await client.post(
        f"{path}/assign", headers=staff(PLATFORM, "platform"), json={"team": [SURVEYOR]}
    )
    await client.post(
        f"{path}/submit", headers=staff(SURVEYOR, "surveyor"), json=submission(verified_reason="91")
    )

    form = await client.get(f"{path}/form.pdf", headers=staff(SURVEYOR, "surveyor"))
    assert (form.headers["Canbao-Person-Id"], form.headers["Canbao-Region-Code"]) == (
        str(father.person_id),
        REGION,
    )  # for the gateway's audit log
    pdf = await client.get(
        f"/internal/survey/ledger/{REGION}",
        params={"format": "pdf"},
        headers=staff(PLATFORM, "platform"),
    )
    xlsx = await client.get(
        f"/internal/survey/ledger/{REGION}",
        params={"format": "xlsx"},
        headers=staff(PLATFORM, "platform"),
    )
    ledger = await client.get(
        f"/internal/survey/ledger/{REGION}", headers=staff(PLATFORM, "platform")
    )

    assert form.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(form.content)).pages)
    assert "全民参保登记表" in text and "王建国" in text and "520102197503120017" in text
    ledger_text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "全民参保登记个人信息汇总表" in ledger_text and "李秀英" in ledger_text
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    cells = [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c]
    assert {"王建国", "李秀英", "王磊"} <= set(cells)
    rows = {r["name"]: r for r in ledger.json()["rows"]}
    assert rows["王磊"]["survey_state"] == "无需调查"
    assert rows["王建国"]["survey_state"] == "待初审"
    assert rows["王建国"]["outcome"].startswith("核实未参保原因：91")
    assert ledger.json()["summary"] == {
        "people": 3,
        "needing_survey": 2,
        "surveyed": 1,
        "approved": 0,
        "survey_rate": 0.5,
    }
    outsider = await client.get(f"{path}/form.pdf", headers=staff(OUTSIDER, "surveyor"))
    assert_problem(outsider, 404, "task-not-found")


async def test_progress_is_served_as_metrics_per_county_and_team(
    client: httpx.AsyncClient,
    survey_db: Database,
    settings: SurveySettings,
    producer: Producer,
    observed: Observed,
) -> None:
    father, mother, son = family()
    await listed(client, survey_db, settings, producer, [father, mother, son])
    await roster(client, SURVEYOR)
    path = f"/internal/survey/tasks/{(await task_of(client, father))['task_id']}"
    await client.post(
        f"{path}/assign", headers=staff(PLATFORM, "platform"), json={"team": [SURVEYOR]}
    )
    await client.post(f"{path}/submit", headers=staff(SURVEYOR, "surveyor"), json=submission())
    progress = ProgressMetrics(survey_db)

    await progress.refresh()

    # Other tests' survey apps may still report (one meter per process): ours is among them.
    assert 0.5 in gauges(observed, "canbao.survey.survey_rate", region_code=REGION)
    assert 2 in gauges(observed, "canbao.survey.needing_survey", region_code=REGION)
    assert 1 in gauges(observed, "canbao.survey.open_tasks", team=SURVEYOR)


def gauges(observed: Observed, name: str, **attributes: str) -> list[float]:
    data = observed.metrics.get_metrics_data()
    assert data is not None
    values = [
        point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if all(point.attributes.get(k) == v for k, v in attributes.items())
    ]
    return [float(value) for value in values]


async def test_a_self_service_correction_waits_for_the_same_review(
    client: httpx.AsyncClient, published: Published
) -> None:
    person = uuid4()
    correction = {
        "client_id": str(uuid4()),
        "person_id": str(person),
        "region_code": REGION,
        "origin": "kiosk",
        "items": {"phone": "13700001111"},
    }
    citizen = caller_headers("survey", username="kiosk:demo-kiosk", role="self", scope="52")

    sent = await client.post("/internal/survey/corrections", headers=citizen, json=correction)
    again = await client.post("/internal/survey/corrections", headers=citizen, json=correction)
    bad = await client.post(
        "/internal/survey/corrections",
        headers=citizen,
        json=correction | {"client_id": str(uuid4()), "items": {"phone": "123"}},
    )

    assert sent.status_code == 201 and sent.json()["state"] == "submitted"
    assert again.status_code == 200 and again.json()["task_id"] == sent.json()["task_id"]
    assert_problem(bad, 422, "invalid-items")
    queue = await client.get(
        "/internal/survey/tasks", params={"channel": "self"}, headers=staff(PLATFORM, "platform")
    )
    assert [t["task_id"] for t in queue.json()["items"]] == [sent.json()["task_id"]]
    path = f"/internal/survey/tasks/{sent.json()['task_id']}"
    await client.post(
        f"{path}/review", headers=staff(PLATFORM, "platform"), json={"decision": "pass"}
    )
    mine = await client.get(
        "/internal/survey/corrections", params={"person_id": str(person)}, headers=citizen
    )
    assert [(c["state"], c["items"][0]["item"]) for c in mine.json()] == [
        ("first_reviewed", "phone")
    ]
    assert not published.of_person(person)  # nothing applies before 审定
    await client.post(
        f"{path}/approve", headers=staff(COUNTY, "county"), json={"decision": "approve"}
    )
    await published.until(lambda seen: bool(published.of_person(person)))
    [event] = published.of_person(person)
    assert event.channel is Channel.KIOSK and event.items == {"phone": "13700001111"}
    assert (event.handler, event.reviewer) == ("kiosk:demo-kiosk", COUNTY)


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("贵州省贵阳市南明区中华南路12号3栋501室", "贵州省贵阳市南明区中华****"),
        ("贵阳市南明区某路1号", "贵阳市南明****"),  # short: at most half of it
        ("南明区1号", "南明****"),  # never the house number
        ("1号", "****"),
    ],
)
def test_an_address_is_masked_past_its_street_however_short(address: str, shown: str) -> None:
    assert survey_views.mask_address(address) == shown


async def test_a_countys_roster_includes_the_teams_certified_above_it(
    client: httpx.AsyncClient,
) -> None:
    """A shorter county_code puts a surveyor on every county's roster under it (roster.py):
    listed there as assignment there takes them."""
    province = staff(COUNTY, "county", scope="52")
    for n, (username, county) in enumerate(
        [
            ("surveyor-nanming", REGION),
            ("surveyor-guiyang", "5201"),
            ("surveyor-zunyi", OTHER_REGION),
            ("surveyor-prov", "52"),
        ]
    ):
        entry = {
            "username": username,
            "name": f"调查员{n}",
            "county_code": county,
            "certificate_number": f"DC-{county}-000{n}",
        }
        put = await client.put(
            f"/internal/survey/surveyors/{username}", headers=province, json=entry
        )
        assert put.status_code == 200, put.text

    async def names_on(region: str) -> list[str]:
        response = await client.get(
            "/internal/survey/surveyors", params={"region": region}, headers=province
        )
        assert response.status_code == 200, response.text
        return sorted(s["username"] for s in response.json())

    assert await names_on(REGION) == ["surveyor-guiyang", "surveyor-nanming", "surveyor-prov"]
    assert await names_on("5201") == ["surveyor-guiyang", "surveyor-nanming", "surveyor-prov"]
    assert await names_on("52") == [
        "surveyor-guiyang",
        "surveyor-nanming",
        "surveyor-prov",
        "surveyor-zunyi",
    ]
