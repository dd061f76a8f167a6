"""The household survey on the public interface (api.md "Survey"): the gateway in front of the real
survey application (its database, outbox and consumer on a broker of its own) and identity's real
application (its survey-subjects stream), both in-process over ASGI. Roles and region scopes are
checked at the gateway and again in survey; survey's problems reach the client unchanged; every
read or change of personal data has its row in the audit log; survey masks what a role does not
need in clear."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from openpyxl import load_workbook
from pypdf import PdfReader

from canbao_contracts.codes import RegistrationItem, SurveyReason
from canbao_contracts.topics import COLLECTIONS, PERSONS, STATUSES
from canbao_gateway.app import create
from canbao_gateway.clock import clock
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log, staff_accounts
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import free_port
from canbao_platform.messaging import Producer
from canbao_platform.service import create_app
from canbao_survey.tables import submissions
from tests.gateway.conftest import Clock, assert_problem, bearer, serve, settings_for
from tests.gateway.services import gateway_over, identity_app
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.identity.test_survey_subjects import CHILD, HEAD, SPOUSE, feed_division
from tests.survey import conftest as survey_fixtures
from tests.survey.conftest import NEW_PERSON, TEST_SERVICE, Published, survey_settings
from tests.survey.household import UNINSURED, Member, known, publish

survey_url = survey_fixtures.survey_url
survey_db = survey_fixtures.survey_db
survey_app = survey_fixtures.survey_app
published = survey_fixtures.published

NANMING, YUNYAN = "520102", "520103"
API = "/api/v1/survey"
SURVEYOR, SURVEYOR2, OUTSIDER = "surveyor-zhang", "surveyor-li", "surveyor-zhao"
PLATFORM, COUNTY = "platform-wu", "county-chen"


@pytest.fixture(scope="module")
def collections_kafka() -> Iterator[MockKafkaCluster]:
    """Survey's broker: what it reads (registry.persons, registry.statuses) and writes."""
    with MockKafkaCluster(brokers=3) as cluster:
        cluster.create_topics([COLLECTIONS, PERSONS, STATUSES])
        yield cluster


@pytest.fixture
async def producer(collections_kafka: MockKafkaCluster) -> AsyncIterator[Producer]:
    producer = Producer(collections_kafka.bootstrap_servers, client_id="tests")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def family(harness: Harness) -> list[Member]:
    """The Wangs of Nanming in identity's register (tests/identity's division), and as matching
    judged them: the father uninsured without a phone, the mother uninsured, their son done."""
    people = await feed_division(harness)
    return [
        Member(
            HEAD["xm"],
            HEAD["sfzh"],
            "01",
            person_id=people["head"],
            needs=(SurveyReason.UNINSURED, SurveyReason.MISSING_INFO),
            statuses=dict(UNINSURED),
            missing=(RegistrationItem.PHONE,),
            phone=None,
        ),
        Member(
            SPOUSE["xm"],
            SPOUSE["sfzh"],
            "02",
            person_id=people["spouse"],
            needs=(SurveyReason.UNINSURED,),
            statuses=dict(UNINSURED),
        ),
        Member(CHILD["xm"], CHILD["sfzh"], "10", person_id=people["child"]),
    ]


@pytest.fixture
async def gateway(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    survey_app: FastAPI,
    survey_db: Database,
    producer: Producer,
    family: list[Member],
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway before survey and identity; survey knows the family's verdicts."""
    identity = identity_app(harness)
    survey_app.state.identity_transport = httpx.ASGITransport(app=identity)  # lists stream it
    async for client in gateway_over(gateway_url, test_clock, identity=identity, survey=survey_app):
        await publish(producer, [m.person() for m in family] + [m.verdict() for m in family])
        await known(survey_db, family)
        yield client


@pytest.fixture
def staff(token_for: Any) -> Any:
    """Headers of a member of staff: `staff(Role.PLATFORM, "platform-wu", scope="5201")`."""

    def headers(role: Role, username: str, scope: str = "5201") -> dict[str, str]:
        return bearer(token_for(role, scope=scope, username=username))

    return headers


def submission(**fields: Any) -> dict[str, Any]:
    return {
        "client_id": str(uuid4()),
        "visited_at": datetime.now(UTC).isoformat(),
        "items": {"phone": "13912345678"},
        "verified_reason": "91",
        "declaration": {"signed_by": "self", "signed_on": date.today().isoformat()},
        **fields,
    }


async def audit_rows(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        return [dict(r) for r in (await connection.execute(query)).mappings().all()]


def described(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["endpoint"], r["staff"], r["purpose"], r["outcome"]) for r in rows]


async def listed_and_assigned(gateway: httpx.AsyncClient, staff: Any) -> dict[str, Any]:
    """As the county: two surveyors on the roster; as the platform: Nanming's list, and the
    Wangs' household assigned to them. The father's task."""
    county, platform = staff(Role.COUNTY, COUNTY), staff(Role.PLATFORM, PLATFORM)
    for n, username in enumerate((SURVEYOR, SURVEYOR2)):
        entry = {
            "username": username,
            "name": f"调查员{n}",
            "county_code": NANMING,
            "certificate_number": f"DC-{NANMING}-000{n}",
        }
        put = await gateway.put(f"{API}/surveyors/{username}", json=entry, headers=county)
        assert put.status_code == 200, put.text
    made = await gateway.post(f"{API}/lists", json={"region_code": NANMING}, headers=platform)
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("region_code", "tasks", "households")} == {
        "region_code": NANMING,
        "tasks": 2,
        "households": 1,
    }
    page = (await gateway.get(f"{API}/tasks", params={"region": NANMING}, headers=platform)).json()
    [father] = [t for t in page["items"] if t["person"]["name"] == "王*"]
    team = {"team": [SURVEYOR, SURVEYOR2]}
    assigned = await gateway.post(
        f"{API}/tasks/{father['task_id']}/assign", json=team, headers=platform
    )
    assert assigned.status_code == 200, assigned.text
    assert len(assigned.json()["assigned"]) == 2  # the household: father and mother
    return dict(father)


async def test_a_household_survey_from_list_to_approval_through_the_gateway(
    gateway: httpx.AsyncClient,
    staff: Any,
    gateway_db: Database,
    survey_db: Database,
    published: Published,
    family: list[Member],
) -> None:
    father = await listed_and_assigned(gateway, staff)
    task = f"{API}/tasks/{father['task_id']}"
    surveyor = staff(Role.SURVEYOR, SURVEYOR)

    mine = await gateway.get(f"{API}/tasks", headers=surveyor)
    assert {t["person"]["name"] for t in mine.json()["items"]} == {"王*", SPOUSE["xm"][0] + "*"}
    detail = await gateway.get(task, headers=surveyor)
    prefill = {p["item"]: p["value"] for p in detail.json()["prefill"]}
    assert (prefill["name"], prefill["id_number"]) == (HEAD["xm"], HEAD["sfzh"])  # the team's
    form = await gateway.get(f"{task}/form.pdf", headers=surveyor)
    assert form.headers["content-type"] == "application/pdf"
    assert not any(h.lower().startswith("canbao-") for h in form.headers)  # survey's, not ours
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(form.content)).pages)
    assert "全民参保登记表" in text and HEAD["xm"] in text

    body = submission()
    first = await gateway.post(f"{task}/submit", json=body, headers=surveyor)
    again = await gateway.post(f"{task}/submit", json=body, headers=surveyor)  # synced twice
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.json() == again.json() and first.json()["state"] == "submitted"
    async with survey_db.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(submissions)) == 1

    assert_problem(
        await gateway.post(f"{task}/review", json={"decision": "pass"}, headers=surveyor),
        403,
        "role-not-allowed",
    )
    reviewed = await gateway.post(
        f"{task}/review", json={"decision": "pass"}, headers=staff(Role.PLATFORM, PLATFORM)
    )
    assert reviewed.json() == {"task_id": father["task_id"], "state": "first_reviewed"}
    county = staff(Role.COUNTY, COUNTY)
    approved = await gateway.post(f"{task}/approve", json={"decision": "approve"}, headers=county)
    assert approved.json() == {"task_id": father["task_id"], "state": "approved"}
    twice = await gateway.post(f"{task}/approve", json={"decision": "approve"}, headers=county)
    conflict = assert_problem(twice, 409, "task-changed")
    assert conflict["task"]["state"] == "approved"  # survey's extension, passed on

    head = family[0].person_id
    await published.until(lambda seen: bool(published.of_person(head)))
    [event] = published.of_person(head)
    assert (event.handler, event.first_reviewer, event.reviewer) == (SURVEYOR, PLATFORM, COUNTY)
    rows = await audit_rows(gateway_db)
    assert [
        r
        for r in described(rows)
        if r[0].endswith(("/submit", "/review", "/approve", "form.pdf", "{task_id}"))
    ] == [
        (f"GET {API}/tasks/{{task_id}}", SURVEYOR, "survey", "ok"),
        (f"GET {API}/tasks/{{task_id}}/form.pdf", SURVEYOR, "survey", "ok"),
        (f"POST {API}/tasks/{{task_id}}/submit", SURVEYOR, "survey", "ok"),
        (f"POST {API}/tasks/{{task_id}}/submit", SURVEYOR, "survey", "ok"),  # the replay, read
        (f"POST {API}/tasks/{{task_id}}/review", PLATFORM, "review", "ok"),
        (f"POST {API}/tasks/{{task_id}}/approve", COUNTY, "review", "ok"),
        (f"POST {API}/tasks/{{task_id}}/approve", COUNTY, "review", "rejected"),
    ]
    about_the_father = [r for r in rows if r["person_id"] == head]
    assert len(about_the_father) == 6 and {r["person_region"] for r in about_the_father} == {
        NANMING
    }
    assert all(HEAD["sfzh"] not in repr(r) for r in rows)
    listing = [r for r in rows if r["endpoint"] in (f"POST {API}/lists", f"GET {API}/tasks")]
    assert [(r["staff"], r["person_region"], r["person_id"]) for r in listing] == [
        (PLATFORM, NANMING, None),
        (PLATFORM, NANMING, None),
        (SURVEYOR, "5201", None),
    ]


async def test_maker_checker_from_survey_reaches_the_client_unchanged(
    gateway: httpx.AsyncClient, staff: Any, gateway_db: Database, token_for: Any
) -> None:
    """No account holds two roles; a reviewer who moves to the county agency keeps her account
    (manage.py move-staff), and may not approve what she reviewed (经办规程 §17-18)."""
    father = await listed_and_assigned(gateway, staff)
    task = f"{API}/tasks/{father['task_id']}"
    await gateway.post(f"{task}/submit", json=submission(), headers=staff(Role.SURVEYOR, SURVEYOR))
    reviewed = await gateway.post(
        f"{task}/review", json={"decision": "pass"}, headers=staff(Role.PLATFORM, PLATFORM)
    )
    assert reviewed.status_code == 200, reviewed.text
    async with gateway_db.engine.begin() as connection:  # as move-staff does
        await connection.execute(
            sa.update(staff_accounts)
            .where(staff_accounts.c.username == PLATFORM)
            .values(role="county")
        )

    refused = await gateway.post(
        f"{task}/approve", json={"decision": "approve"}, headers=staff(Role.COUNTY, PLATFORM)
    )

    problem = assert_problem(refused, 409, "maker-checker")
    assert problem["title"] == "不得审核本人提交或已审核过的调查结果 (maker-checker)"
    assert "经办规程第十七、十八条" in problem["detail"]
    assert problem["instance"] == f"{task}/approve"  # the gateway's path, not survey's
    [row] = [r for r in await audit_rows(gateway_db) if r["endpoint"].endswith("/approve")]
    assert (row["staff"], row["role"], row["outcome"]) == (PLATFORM, "county", "rejected")
    approved = await gateway.post(
        f"{task}/approve", json={"decision": "approve"}, headers=staff(Role.COUNTY, COUNTY)
    )
    assert approved.json()["state"] == "approved"


async def test_a_reviewer_reads_the_task_masked_and_a_surveyor_outside_the_team_not_at_all(
    gateway: httpx.AsyncClient, staff: Any, gateway_db: Database, family: list[Member]
) -> None:
    father = await listed_and_assigned(gateway, staff)
    task = f"{API}/tasks/{father['task_id']}"
    assert father["person"]["id_number"] == HEAD["sfzh"][:4] + "*" * 10 + HEAD["sfzh"][-4:]
    assert father["person"]["address"].endswith("****")
    for reviewer in (staff(Role.PLATFORM, PLATFORM), staff(Role.COUNTY, COUNTY)):
        detail = (await gateway.get(task, headers=reviewer)).json()
        prefill = {p["item"]: p["value"] for p in detail["prefill"]}
        assert prefill["name"] == HEAD["xm"][0] + "*" and HEAD["sfzh"] not in str(detail)
        members = {m["relation"]: m["name"] for m in detail["household_members"]}
        assert members["02"] == SPOUSE["xm"][0] + "*"
    outsider = staff(Role.SURVEYOR, OUTSIDER)
    assert (await gateway.get(f"{API}/tasks", headers=outsider)).json()["items"] == []
    assert_problem(await gateway.get(task, headers=outsider), 404, "task-not-found")
    assert_problem(await gateway.get(f"{task}/form.pdf", headers=outsider), 404, "task-not-found")
    refusals = [r for r in await audit_rows(gateway_db) if r["staff"] == OUTSIDER]
    assert [r["outcome"] for r in refusals] == ["ok", "not_found", "not_found"]


async def test_staff_of_another_county_are_refused_and_the_attempts_audited(
    gateway: httpx.AsyncClient, staff: Any, gateway_db: Database
) -> None:
    father = await listed_and_assigned(gateway, staff)
    task = f"{API}/tasks/{father['task_id']}"
    yunyan = staff(Role.PLATFORM, "platform-yunyan", scope=YUNYAN)
    list_there = await gateway.post(f"{API}/lists", json={"region_code": NANMING}, headers=yunyan)
    assert assert_problem(list_there, 403, "out-of-scope")["region_code"] == NANMING
    assert_problem(
        await gateway.get(f"{API}/tasks", params={"region": NANMING}, headers=yunyan),
        403,
        "out-of-scope",
    )
    # The task's division is survey's to know: its refusal, passed on.
    assert (
        assert_problem(await gateway.get(task, headers=yunyan), 403, "out-of-scope")["region_code"]
        == NANMING
    )
    assert_problem(
        await gateway.get(f"{API}/ledger/{NANMING}", headers=yunyan), 403, "out-of-scope"
    )
    assert_problem(
        await gateway.get(f"{API}/progress", params={"region": NANMING}, headers=yunyan),
        403,
        "out-of-scope",
    )
    county = staff(Role.COUNTY, "county-yunyan", scope=YUNYAN)
    entry = {"username": "x", "name": "某", "county_code": NANMING, "certificate_number": "DC-1"}
    assert_problem(
        await gateway.put(f"{API}/surveyors/x", json=entry, headers=county), 403, "out-of-scope"
    )
    rows = [r for r in await audit_rows(gateway_db) if r["staff"] == "platform-yunyan"]
    assert [(r["outcome"], r["person_region"]) for r in rows] == [("out_of_scope", NANMING)] * 4


async def test_the_ledger_in_three_formats_and_the_progress_of_the_county(
    gateway: httpx.AsyncClient, staff: Any, gateway_db: Database
) -> None:
    father = await listed_and_assigned(gateway, staff)
    county = staff(Role.COUNTY, COUNTY)
    ledger = (await gateway.get(f"{API}/ledger/{NANMING}", headers=county)).json()
    assert ledger["summary"]["needing_survey"] == 2 and ledger["division"] == NANMING
    assert HEAD["sfzh"] not in str(ledger)  # numbers masked
    xlsx = await gateway.get(f"{API}/ledger/{NANMING}", params={"format": "xlsx"}, headers=county)
    assert xlsx.headers["content-disposition"] == f'attachment; filename="ledger-{NANMING}.xlsx"'
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    cells = {str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None}
    assert HEAD["xm"] in cells
    pdf = await gateway.get(f"{API}/ledger/{NANMING}", params={"format": "pdf"}, headers=county)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "全民参保登记个人信息汇总表" in text
    assert_problem(
        await gateway.get(f"{API}/ledger/{NANMING}", headers=staff(Role.SURVEYOR, SURVEYOR)),
        403,
        "role-not-allowed",
    )
    progress = (
        await gateway.get(f"{API}/progress", params={"region": "5201"}, headers=county)
    ).json()
    assert (progress["needing_survey"], progress["surveyed"]) == (2, 0)
    assert progress["open_tasks_by_team"] == [{"team": [SURVEYOR, SURVEYOR2], "open_tasks": 2}]
    roster = (await gateway.get(f"{API}/surveyors", headers=county)).json()
    assert sorted(s["username"] for s in roster) == sorted([SURVEYOR, SURVEYOR2])
    ledger_rows = [
        r
        for r in await audit_rows(gateway_db)
        if r["endpoint"] == f"GET {API}/ledger/{{community_code}}"
    ]
    assert [(r["staff"], r["person_region"]) for r in ledger_rows] == [(COUNTY, NANMING)] * 3
    assert father["state"] == "open"


async def test_a_rejection_returns_the_task_to_the_team_with_its_comment(
    gateway: httpx.AsyncClient, staff: Any
) -> None:
    father = await listed_and_assigned(gateway, staff)
    task = f"{API}/tasks/{father['task_id']}"
    surveyor, platform = staff(Role.SURVEYOR, SURVEYOR2), staff(Role.PLATFORM, PLATFORM)
    await gateway.post(f"{task}/submit", json=submission(), headers=surveyor)
    no_reason = await gateway.post(f"{task}/review", json={"decision": "reject"}, headers=platform)
    assert_problem(no_reason, 422, "invalid-request")  # survey's rule: a rejection says why
    reject = {"decision": "reject", "comment": "电话号码请再核实"}
    rejected = await gateway.post(f"{task}/review", json=reject, headers=platform)
    assert rejected.json()["state"] == "assigned"
    mine = (await gateway.get(task, headers=surveyor)).json()
    assert (mine["state"], mine["comment"]) == ("assigned", "电话号码请再核实")


async def test_a_surveyor_reports_a_person_the_registry_does_not_know(
    gateway: httpx.AsyncClient, staff: Any, gateway_db: Database
) -> None:
    surveyor = staff(Role.SURVEYOR, SURVEYOR)
    found = submission(items=NEW_PERSON, verified_reason=None, region_code=NANMING)
    response = await gateway.post(f"{API}/discoveries", json=found, headers=surveyor)
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "submitted"
    [row] = [r for r in await audit_rows(gateway_db) if r["endpoint"].endswith("discoveries")]
    assert (row["outcome"], row["person_region"]) == ("ok", NANMING) and row["id_number_hash"]
    elsewhere = submission(items=NEW_PERSON, region_code="520302")
    assert_problem(
        await gateway.post(f"{API}/discoveries", json=elsewhere, headers=surveyor),
        403,
        "out-of-scope",
    )
    invalid = submission(items={**NEW_PERSON, "gender": "7"}, region_code=NANMING)
    body = assert_problem(
        await gateway.post(f"{API}/discoveries", json=invalid, headers=surveyor),
        422,
        "invalid-items",
    )
    assert [e["item"] for e in body["errors"]] == ["gender"]  # survey's, passed on


async def test_a_submission_may_carry_the_signed_forms_scan(
    gateway: httpx.AsyncClient, staff: Any
) -> None:
    """Over the gateway's default body limit (1 MiB), under survey's (2 MiB of scan)."""
    father = await listed_and_assigned(gateway, staff)
    scan = base64.b64encode(b"\xff\xd8" + bytes(1_500_000)).decode()
    body = submission(signed_form={"content_type": "image/jpeg", "data": scan})
    response = await gateway.post(
        f"{API}/tasks/{father['task_id']}/submit", json=body, headers=staff(Role.SURVEYOR, SURVEYOR)
    )
    assert response.status_code == 201, response.text[:500]


async def test_survey_away_is_503(gateway_url: str, test_clock: Clock, token_for: Any) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = create(settings_for(gateway_url, survey_url=nobody))
    app.dependency_overrides[clock] = lambda: test_clock
    async with serve(app) as client:
        headers = bearer(token_for(Role.PLATFORM, scope="5201"))
        response = await client.get(f"{API}/tasks", headers=headers)
    assert_problem(response, 503, "survey-unavailable")


async def test_identity_away_while_a_list_is_made_reaches_the_client_as_such(
    gateway_url: str,
    test_clock: Clock,
    token_for: Any,
    survey_url: str,
    collections_kafka: MockKafkaCluster,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    survey = create_app(
        TEST_SERVICE, survey_settings(survey_url, collections_kafka, identity_url=nobody)
    )
    async for client in gateway_over(gateway_url, test_clock, survey=survey):
        headers = bearer(token_for(Role.PLATFORM, scope="5201"))
        response = await client.post(f"{API}/lists", json={"region_code": NANMING}, headers=headers)
    assert_problem(response, 503, "identity-unavailable")
