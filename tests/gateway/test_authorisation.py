"""Roles and region scopes on every endpoint built so far (api.md "Who calls"), and the
problem+json of each refusal. `/test/persons/{id_number}` stands in for the popup: a
personal-data read behind `require(..., person=person_by_id_number)` and the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute

from canbao_gateway import tokens
from canbao_gateway.app import SERVICE
from canbao_gateway.auth import person_by_id_number, require
from canbao_gateway.clients import Client, ClientKind
from canbao_gateway.report_page import plotly_version
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_platform.db import Database
from tests.gateway.conftest import (
    PERSONAL_DATA_ROLES,
    Clock,
    assert_problem,
    bearer,
    settings_for,
)
from tests.gateway.people import (
    KUNMING_WUHUA,
    NANMING,
    YUNYAN,
    ZUNYI_HONGHUAGANG,
    citizen,
    legacy_15,
)
from tests.gateway.services import collections_kafka as collections_kafka
from tests.gateway.services import gateway_over, hukou, identity_app, matching_app
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's, matching's, survey's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.matching.conftest import matching_db as matching_db
from tests.survey.conftest import survey_app as survey_app
from tests.survey.conftest import survey_url as survey_url

PERSON = f"/test/persons/{citizen(NANMING)}"
# endpoint → the roles that may use it
ENDPOINTS: dict[str, frozenset[Role]] = {
    "/api/v1/auth/me": frozenset(Role),
    "/api/v1/audit": frozenset({Role.AUDITOR}),
    PERSON: frozenset(PERSONAL_DATA_ROLES),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("path", list(ENDPOINTS))
async def test_every_role_on_every_endpoint(
    client: httpx.AsyncClient, token_for: Callable[..., str], role: Role, path: str
) -> None:
    response = await client.get(path, headers=bearer(token_for(role, scope="52")))
    if role in ENDPOINTS[path]:
        assert response.status_code == 200, response.text
    else:
        body = assert_problem(response, 403, "role-not-allowed")
        assert body["role"] == role.value


@pytest.mark.parametrize("path", list(ENDPOINTS))
async def test_every_endpoint_wants_a_token(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(path), 401, "unauthenticated")


@pytest.mark.parametrize("role", PERSONAL_DATA_ROLES)
@pytest.mark.parametrize(
    ("scope", "region", "allowed"),
    [
        ("52", NANMING, True),  # province: all of Guizhou
        ("52", KUNMING_WUHUA, False),  # ... but not Yunnan
        ("5201", YUNYAN, True),  # Guiyang city: its districts
        ("5201", ZUNYI_HONGHUAGANG, False),  # ... not Zunyi
        ("520102", NANMING, True),  # Nanming district: its own people
        ("520102", YUNYAN, False),  # ... not the next district's
        # A township service centre of Nanming (9 digits; our convention, auth.py): the
        # residents of its county, whose region identity knows only to the county.
        ("520102003", NANMING, True),
        ("520102003", YUNYAN, False),  # ... not the next district's
        ("520102003001", NANMING, True),  # a community (12 digits) likewise
    ],
)
async def test_staff_see_people_of_their_region_only(
    client: httpx.AsyncClient,
    token_for: Callable[..., str],
    role: Role,
    scope: str,
    region: str,
    allowed: bool,
) -> None:
    token = token_for(role, scope=scope)
    response = await client.get(f"/test/persons/{citizen(region)}", headers=bearer(token))
    if allowed:
        assert response.status_code == 200, response.text
        assert response.json()["region"] == region
    else:
        assert_problem(response, 403, "out-of-scope")


async def test_the_number_is_accepted_in_any_valid_form(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    token = token_for(Role.COUNTER, scope=NANMING)
    number = citizen(NANMING, sequence="001")  # check character
    for form in (number, number.lower(), legacy_15(NANMING)):
        response = await client.get(f"/test/persons/{form}", headers=bearer(token))
        assert response.status_code == 200, (form, response.text)


async def test_an_invalid_number_says_what_is_wrong(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    good = citizen(NANMING)
    typo = good[:-1] + ("0" if good[-1] != "0" else "1")
    response = await client.get(f"/test/persons/{typo}", headers=bearer(token_for(Role.COUNTER)))
    body = assert_problem(response, 422, "invalid-id-number")
    assert [defect["code"] for defect in body["defects"]] == ["bad_check_digit"]
    assert body["detail"]  # in Chinese, for the clerk


async def test_authentication_comes_before_checking_the_number(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/test/persons/123"), 401, "unauthenticated")


async def test_the_clerk_of_one_county_reads_her_own_identity(
    client: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    token = token_for(Role.COUNTER, scope=NANMING, username="wang-li")
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.json() == {"username": "wang-li", "role": "counter", "scope": NANMING}


def test_a_scoped_endpoint_must_say_why_it_reads() -> None:
    with pytest.raises(TypeError, match="purpose"):
        require(Role.COUNTER, person=person_by_id_number)


# -- The authorisation matrix: every role × a person of the staff's own region, of another
# region, or unknown to identity × every gateway route, with identity, matching and survey
# running for real behind the gateway (tests/gateway/services.py). Every member of staff is
# scoped to Nanming. Who may use what: api.md "Who calls" and persons.py's RECORD_ROLES.

STAFF_SCOPE = NANMING
# Born in Zunyi, living in Nanming: Nanming's person (the number's region says otherwise).
OWN = citizen(ZUNYI_HONGHUAGANG, "19800101", "011")
# Born in Nanming, living in Yunyan: not Nanming's (the number's region says otherwise).
OTHER = citizen(NANMING, "19800202", "021")
UNREGISTERED = citizen(NANMING, "19700707", "041")
SUBJECTS = {"own-region": OWN, "other-region": OTHER, "unregistered": UNREGISTERED}
PHONE = {"phone": "13812345678"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the route's template, as the app declares it
    allowed: frozenset[Role]  # every role, for a route open to anyone
    about_a_person: bool  # scope-checked against the subject, audited as a personal-data read
    ok: int = 200
    needs: tuple[str, ...] = ()  # the services it reaches: identity, matching, survey
    # Not about one ID number (the survey's routes): what an allowed role sends, the problem
    # type its answer carries (a task id nobody has: task-not-found), its audit rows' outcomes.
    sent: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None
    audited: tuple[str, ...] = ()


EVERY_ROLE = frozenset(Role)
RECORD = frozenset({Role.COUNTER, Role.PLATFORM, Role.COUNTY})
ROUTES = {
    "popup": Route("GET", "/api/v1/counter/popup/{id_number}", frozenset({Role.COUNTER}), True,
                   needs=("identity", "matching", "survey")),
    "persons": Route("GET", "/api/v1/persons/{id_number}", RECORD, True,
                     needs=("identity", "matching", "survey")),
    "history": Route("GET", "/api/v1/persons/{id_number}/history",
                     RECORD | {Role.REVIEWER}, True, needs=("identity", "survey")),
    "collections": Route("POST", "/api/v1/counter/collections", frozenset({Role.COUNTER}),
                         True, ok=201, needs=("identity", "survey")),
    "audit": Route("GET", "/api/v1/audit", frozenset({Role.AUDITOR}), False),
    "me": Route("GET", "/api/v1/auth/me", EVERY_ROLE, False),
    "counter-page": Route("GET", "/counter", EVERY_ROLE, False),
    "counter-script": Route("GET", "/counter/counter.js", EVERY_ROLE, False),
    "counter-style": Route("GET", "/counter/counter.css", EVERY_ROLE, False),
    # The reviewer's page is static, like the counter's: its data comes from the API.
    "survey-page": Route("GET", "/survey", EVERY_ROLE, False),
    "survey-script": Route("GET", "/survey/survey.js", EVERY_ROLE, False),
    "survey-style": Route("GET", "/survey/survey.css", EVERY_ROLE, False),
    # And the kiosk's: open to anyone (a kiosk's browser holds no staff token).
    "kiosk-page": Route("GET", "/kiosk", EVERY_ROLE, False),
    "kiosk-script": Route("GET", "/kiosk/kiosk.js", EVERY_ROLE, False),
    "kiosk-style": Route("GET", "/kiosk/kiosk.css", EVERY_ROLE, False),
    # The analyst's page, and the chart library it loads: static, the login screen of anyone.
    "report-page": Route("GET", "/reports", EVERY_ROLE, False),
    "report-script": Route("GET", "/reports/reports.js", EVERY_ROLE, False),
    "report-style": Route("GET", "/reports/reports.css", EVERY_ROLE, False),
    "report-chart-library": Route("GET", "/reports/plotly-{version}.min.js", EVERY_ROLE, False),
}  # fmt: skip
# The household survey (api.md "Survey"), in the staff's own county; task ids nobody has.
SURVEY = "/api/v1/survey"
TASK_ROLES = frozenset({Role.SURVEYOR, Role.PLATFORM, Role.COUNTY})
REVIEWERS = frozenset({Role.PLATFORM, Role.COUNTY})
VISIT = {
    "client_id": "0b1c4a8e-5d2f-4b7e-9c3a-6e1f2d3c4b5a",
    "visited_at": "2025-06-20T03:00:00Z",
    "items": PHONE,
    "declaration": {"signed_by": "self", "signed_on": "2025-06-20"},
}
NEWCOMER = {
    "name": "王伟",
    "gender": "1",
    "id_number": citizen(NANMING, "19800101", "013"),
    "birth_date": "19800101",
    "household_place": "贵州省贵阳市南明区",
    "residence_address": "贵州省贵阳市南明区花果园街道1号",
    "phone": "13812345678",
}
ROSTER = {
    "username": "matrix-surveyor",
    "name": "调查员",
    "county_code": NANMING,
    "certificate_number": "DC-520102-0001",
}
NOT_FOUND = {"answer": "task-not-found", "ok": 404, "audited": ("not_found",)}
ROUTES |= {
    "survey-lists": Route(
        "POST",
        f"{SURVEY}/lists",
        frozenset({Role.PLATFORM}),
        False,
        ok=201,
        needs=("identity", "survey"),
        sent={"json": {"region_code": NANMING}},
        audited=("ok",),
    ),
    "survey-tasks": Route(
        "GET", f"{SURVEY}/tasks", TASK_ROLES, False, needs=("survey",), audited=("ok",)
    ),
    "survey-task": Route(
        "GET", f"{SURVEY}/tasks/{{task_id}}", TASK_ROLES, False, needs=("survey",), **NOT_FOUND
    ),
    "survey-assign": Route(
        "POST",
        f"{SURVEY}/tasks/{{task_id}}/assign",
        frozenset({Role.PLATFORM}),
        False,
        needs=("survey",),
        sent={"json": {"team": ["matrix-surveyor"]}},
        **NOT_FOUND | {"audited": ()},
    ),
    "survey-submit": Route(
        "POST",
        f"{SURVEY}/tasks/{{task_id}}/submit",
        frozenset({Role.SURVEYOR}),
        False,
        needs=("survey",),
        sent={"json": VISIT},
        **NOT_FOUND,
    ),
    "survey-discoveries": Route(
        "POST",
        f"{SURVEY}/discoveries",
        frozenset({Role.SURVEYOR}),
        False,
        ok=201,
        needs=("survey",),
        audited=("ok",),
        sent={"json": VISIT | {"items": NEWCOMER, "region_code": NANMING}},
    ),
    "survey-review": Route(
        "POST",
        f"{SURVEY}/tasks/{{task_id}}/review",
        frozenset({Role.PLATFORM}),
        False,
        needs=("survey",),
        sent={"json": {"decision": "pass"}},
        **NOT_FOUND,
    ),
    "survey-approve": Route(
        "POST",
        f"{SURVEY}/tasks/{{task_id}}/approve",
        frozenset({Role.COUNTY}),
        False,
        needs=("survey",),
        sent={"json": {"decision": "approve"}},
        **NOT_FOUND,
    ),
    "survey-form": Route(
        "GET",
        f"{SURVEY}/tasks/{{task_id}}/form.pdf",
        TASK_ROLES,
        False,
        needs=("survey",),
        **NOT_FOUND,
    ),
    "survey-ledger": Route(
        "GET",
        f"{SURVEY}/ledger/{{community_code}}",
        REVIEWERS,
        False,
        needs=("survey",),
        audited=("ok",),
    ),
    "survey-progress": Route("GET", f"{SURVEY}/progress", REVIEWERS, False, needs=("survey",)),
    "survey-roster": Route(
        "PUT",
        f"{SURVEY}/surveyors/{{username}}",
        frozenset({Role.COUNTY}),
        False,
        needs=("survey",),
        sent={"json": ROSTER},
    ),
    "survey-surveyors": Route("GET", f"{SURVEY}/surveyors", REVIEWERS, False, needs=("survey",)),
}
# 复核 of counter collections (review_routes.py): about a collection or a region, not an ID
# number; collection ids nobody has.
COUNTER_REVIEW = "/api/v1/counter/collections"
REVIEWER = frozenset({Role.REVIEWER})
NO_COLLECTION = {"answer": "collection-not-found", "ok": 404, "audited": ("not_found",)}
ROUTES |= {
    "review-queue": Route(
        "GET", COUNTER_REVIEW, REVIEWER, False, needs=("survey",), audited=("ok",)
    ),
    "review-one": Route(
        "GET",
        f"{COUNTER_REVIEW}/{{collection_id}}",
        frozenset({Role.REVIEWER, Role.COUNTER}),
        False,
        needs=("survey",),
        **NO_COLLECTION,
    ),
    "review-decide": Route(
        "POST",
        f"{COUNTER_REVIEW}/{{collection_id}}/review",
        REVIEWER,
        False,
        needs=("survey",),
        sent={"json": {"decision": "pass"}},
        **NO_COLLECTION,
    ),
    "review-batch": Route(
        "POST",
        f"{COUNTER_REVIEW}/review-batch",
        REVIEWER,
        False,
        needs=("survey",),
        audited=("not_found",),
        sent={"json": {"collection_ids": [str(uuid4())]}},
    ),
}
# Write-back to the business systems (writeback_routes.py): the county and the reviewers; a page
# of masked names is audited with its division.
ROUTES["writebacks"] = Route(
    "GET",
    "/api/v1/writebacks",
    frozenset({Role.COUNTY, Role.REVIEWER}),
    False,
    needs=("identity",),
    audited=("ok",),
)
# 变更登记 at the platform: about the person of an ID number (the path's, the body's).
CHANGE = {"documents": ["id_card"], "reason": "更换手机号码", "items": PHONE}
ROUTES |= {
    "change-lookup": Route(
        "GET",
        f"{SURVEY}/changes/lookup/{{id_number}}",
        frozenset({Role.PLATFORM}),
        True,
        needs=("identity", "matching"),
    ),
    "change-record": Route(
        "POST",
        f"{SURVEY}/changes",
        frozenset({Role.PLATFORM}),
        True,
        ok=201,
        needs=("identity", "survey"),
    ),
}
# The city's sampling checks: about a region (a sample) or a record of one; ids nobody has.
CITY = frozenset({Role.CITY})
SAMPLE_NOT_FOUND = {"answer": "sample-not-found", "ok": 404, "audited": ("not_found",)}
ROUTES |= {
    "sampling-draw": Route(
        "POST",
        f"{SURVEY}/samples",
        CITY,
        False,
        ok=201,
        needs=("survey",),
        sent={
            "json": {
                "region_code": NANMING,
                "approved_from": "2025-06-01",
                "approved_to": "2025-06-30",
            }
        },
        audited=("ok",),
    ),
    "sampling-sample": Route(
        "GET", f"{SURVEY}/samples/{{sample_id}}", CITY, False, needs=("survey",), **SAMPLE_NOT_FOUND
    ),
    "sampling-check": Route(
        "POST",
        f"{SURVEY}/samples/{{sample_id}}/checks/{{record_id}}",
        CITY,
        False,
        needs=("survey",),
        sent={"json": {"result": "correct"}},
        **SAMPLE_NOT_FOUND,
    ),
    "sampling-quality": Route("GET", f"{SURVEY}/quality", CITY, False, needs=("survey",)),
}
# Self-service (self_routes.py): a citizen's session, opened by a kiosk's token or the app's ID
# token; no staff role reaches them (test_no_staff_role_reaches_self_service).
SELF_ROUTES = {
    ("POST", "/api/v1/self/session"), ("DELETE", "/api/v1/self/session"),
    ("GET", "/api/v1/self/me"), ("POST", "/api/v1/self/me/corrections"),
    ("GET", "/api/v1/self/me/corrections"), ("GET", "/api/v1/self/me/certificate.pdf"),
}  # fmt: skip
# Partner departments' programs (partner_routes.py): client credentials, no staff role
# (tests/gateway/test_partners.py, test_dci.py).
PARTNER_ROUTES = {
    ("POST", "/api/v1/partners/{dept}/batches"),
    ("GET", "/api/v1/partners/{dept}/batches/{batch_id}"),
    ("GET", "/api/v1/partners/{dept}/batches/{batch_id}/rejects.csv"),
    ("POST", "/api/v1/partners/{dept}/comparisons"),
    ("POST", "/api/v1/partners/dci/registry/sync/search"),
    ("POST", "/api/v1/partners/dci/registry/sync/txn/status"),
    ("POST", "/api/v1/partners/dci/registry/search"),
    ("POST", "/api/v1/partners/dci/registry/txn/status"),
    ("POST", "/api/v1/partners/dci/registry/subscribe"),
    ("POST", "/api/v1/partners/dci/registry/unsubscribe"),
}  # fmt: skip
# Reports (report_routes.py): every role against reporting running behind the gateway in
# tests/gateway/test_reports.py (test_only_analysts_read_the_reports).
REPORT_ROUTES = {("GET", "/api/v1/reports/quarterly/{quarter}"),
                 ("GET", "/api/v1/reports/quarterly/{quarter}/people"),
                 ("GET", "/api/v1/reports/coverage"), ("GET", "/api/v1/reports/targets/{year}"),
                 ("PUT", "/api/v1/reports/targets/{year}"), ("GET", "/api/v1/reports/lists"),
                 ("GET", "/api/v1/reports/lists/{name}"),
                 ("GET", "/api/v1/reports/quarterly/{quarter}/filing"),
                 ("POST", "/api/v1/reports/quarterly/{quarter}/filing"),
                 ("GET", "/api/v1/reports/employers"),
                 ("GET", "/api/v1/reports/employers/{unit_id}")}  # fmt: skip
# Outside the matrix: login (before any role), a certificate's verification (anyone, api.md
# "Self-service"); the service shell's health and OpenAPI routes.
NO_ROLE_ROUTES = (
    {("POST", "/api/v1/auth/token"), ("GET", "/api/v1/verify/{code}")} | SELF_ROUTES
    | PARTNER_ROUTES | REPORT_ROUTES
)  # fmt: skip


def expected(route: Route, role: Role, subject: str) -> tuple[int, str | None]:
    """The status, and the problem type of a refusal."""
    if role not in route.allowed:
        return 403, "role-not-allowed"
    if not route.about_a_person:
        return route.ok, route.answer
    if subject == "unregistered":
        return 404, "not-registered"
    if subject == "other-region":
        return 403, "out-of-scope"
    return route.ok, None


def forwarded(route: Route) -> bool:
    """A route about a task, a collection, a sample or a division, not an ID number: its own
    tests."""
    return (route.path.startswith(SURVEY) or route.path.startswith(COUNTER_REVIEW)) and (
        not route.about_a_person
    )


def request_of(route: Route, number: str, person_id: UUID | None) -> dict[str, Any]:
    """What a client sends to `route` about the person of `number` (`person_id`: identity's)."""
    if route.path == "/api/v1/counter/collections" and route.about_a_person:
        if person_id is None:  # a person_id from nowhere
            return {"json": {"person_id": str(uuid4()), "items": PHONE}}
        return {"json": {"person_id": str(person_id), "id_number": number, "items": PHONE}}
    if route.path == "/api/v1/audit":
        return {"params": {"id_number": number}}
    if route.path == f"{SURVEY}/changes":
        return {"json": CHANGE | {"client_id": str(uuid4()), "id_number": number}}
    if forwarded(route):
        url = route.path.replace("{task_id}", str(uuid4())).replace("{community_code}", NANMING)
        for name in ("collection_id", "sample_id", "record_id"):
            url = url.replace(f"{{{name}}}", str(uuid4()))
        url = url.replace("{id_number}", number)
        return {"url": url.replace("{username}", ROSTER["username"])} | route.sent
    return {"url": route.path.replace("{id_number}", number).replace("{version}", plotly_version())}


def test_the_matrix_names_every_route() -> None:
    """A new route fails here until its row says who may use it."""
    declared = {
        (method, route.path)
        for router in SERVICE.routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods - {"HEAD"}
    }
    assert declared - NO_ROLE_ROUTES == {(r.method, r.path) for r in ROUTES.values()}


@pytest.fixture
async def registered(harness: Harness) -> dict[str, UUID]:
    await harness.apply([hukou(OWN, NANMING), hukou(OTHER, YUNYAN, name="李娜")])
    ids = {number: await harness.person_of(number) for number in (OWN, OTHER)}
    return {number: person for number, person in ids.items() if person is not None}


# A route about no one is asked once per role (its subject changes nothing). The survey's routes
# are about a task or a division, not an ID number: they have their own tests below.
CASES = [(name, subject) for name, route in ROUTES.items() if not forwarded(route)
         for subject in (SUBJECTS if route.about_a_person else ["own-region"])]  # fmt: skip


@pytest.mark.parametrize(("route_name", "subject"), CASES, ids=[f"{r}-{s}" for r, s in CASES])
@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
async def test_authorisation_matrix(
    gateway_url: str,
    gateway_db: Database,
    test_clock: Clock,
    token_for: Callable[..., str],
    harness: Harness,
    registered: dict[str, UUID],
    matching_db: Database,
    survey_app: FastAPI,
    route_name: str,
    role: Role,
    subject: str,
) -> None:
    route, number = ROUTES[route_name], SUBJECTS[subject]
    services = {
        "identity": identity_app(harness),
        "matching": matching_app(matching_db),
        "survey": survey_app,
    }
    apps = {name: services[name] for name in route.needs}
    people = registered
    sent = {"url": route.path} | request_of(route, number, people.get(number))
    headers = bearer(token_for(role, scope=STAFF_SCOPE))
    async for client in gateway_over(gateway_url, test_clock, **apps):
        response = await client.request(route.method, headers=headers, **sent)

    status, problem = expected(route, role, subject)
    if problem is None:
        assert response.status_code == status, response.text
    else:
        assert_problem(response, status, problem)
    rows = await audit_rows(gateway_db)
    if route.about_a_person and role in route.allowed:  # the person was looked up: audited
        outcome = {"own-region": "ok", "other-region": "out_of_scope"}.get(subject, "not_found")
        assert [(row["outcome"], row["role"]) for row in rows] == [(outcome, role.value)]
        if subject != "unregistered":
            assert rows[0]["person_id"] == people[number]
    elif route_name == "audit" and role is Role.AUDITOR:
        assert [row["purpose"] for row in rows] == ["audit_review"]
    elif route.audited and role in route.allowed:  # a list of a division: audited per page
        assert [(row["outcome"], row["role"]) for row in rows] == [
            (outcome, role.value) for outcome in route.audited
        ]
    else:  # refused before anyone's data was looked up, or no one's data
        assert rows == []


SURVEY_CASES = [(name, role) for name, route in ROUTES.items() if forwarded(route)
                for role in Role]  # fmt: skip
SERVED = [(name, role) for name, role in SURVEY_CASES if role in ROUTES[name].allowed]
REFUSED = [(name, role) for name, role in SURVEY_CASES if role not in ROUTES[name].allowed]


@pytest.mark.parametrize(("route_name", "role"), SERVED, ids=[f"{r.value}-{n}" for n, r in SERVED])
async def test_the_survey_serves_its_roles(
    gateway_url: str,
    gateway_db: Database,
    test_clock: Clock,
    token_for: Callable[..., str],
    harness: Harness,
    survey_app: FastAPI,
    route_name: str,
    role: Role,
) -> None:
    """Survey (and, for a list, identity) running for real behind the gateway: the allowed
    role's request reaches them; what it reads or changes is audited."""
    route = ROUTES[route_name]
    identity = identity_app(harness)
    survey_app.state.identity_transport = httpx.ASGITransport(app=identity)  # a list streams it
    apps = {name: {"identity": identity, "survey": survey_app}[name] for name in route.needs}
    headers = bearer(token_for(role, scope=STAFF_SCOPE))
    async for client in gateway_over(gateway_url, test_clock, **apps):
        response = await client.request(
            route.method, headers=headers, **request_of(route, OWN, None)
        )

    status, problem = expected(route, role, "own-region")
    if problem is None:
        assert response.status_code == status, response.text
    else:
        assert_problem(response, status, problem)
    rows = await audit_rows(gateway_db)
    assert [(row["outcome"], row["role"]) for row in rows] == [
        (outcome, role.value) for outcome in route.audited
    ]


@pytest.mark.parametrize(
    ("route_name", "role"), REFUSED, ids=[f"{r.value}-{n}" for n, r in REFUSED]
)
async def test_the_survey_refuses_every_other_role(
    client: httpx.AsyncClient,
    gateway_db: Database,
    token_for: Callable[..., str],
    route_name: str,
    role: Role,
) -> None:
    """Answered by the gateway alone (no survey behind it): refused before survey is asked."""
    route = ROUTES[route_name]
    headers = bearer(token_for(role, scope=STAFF_SCOPE))
    response = await client.request(route.method, headers=headers, **request_of(route, OWN, None))
    assert assert_problem(response, 403, "role-not-allowed")["role"] == role.value
    assert await audit_rows(gateway_db) == []


async def audit_rows(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        return [dict(r) for r in (await connection.execute(query)).mappings().all()]


# A citizen's session and a kiosk's own token, as the gateway issues them (self_service.py,
# routes.py): valid, and of another kind than a staff token.
CITIZEN_AND_KIOSK = ("citizen", "kiosk")
STAFF_ONLY = [name for name, route in ROUTES.items() if route.allowed != EVERY_ROLE]


def not_staff_token(who: str, clock: Clock) -> str:
    key = settings_for("unused").jwt_key()
    if who == "citizen":
        return tokens.issue_session(
            uuid4(), key=key, now=clock(), expires=clock() + timedelta(minutes=10)
        )
    kiosk = Client(client_id="kiosk-1", kind=ClientKind.KIOSK, region=NANMING)
    return tokens.issue_client(
        kiosk, version=0, key=key, now=clock(), lifetime=timedelta(minutes=10)
    )


@pytest.mark.parametrize("who", CITIZEN_AND_KIOSK)
@pytest.mark.parametrize("route_name", STAFF_ONLY)
async def test_a_citizen_session_or_a_kiosk_reaches_no_staff_route(
    client: httpx.AsyncClient, gateway_db: Database, test_clock: Clock, route_name: str, who: str
) -> None:
    """api.md "Who calls": a citizen sees their own record only; a kiosk opens sessions."""
    route = ROUTES[route_name]
    headers = bearer(not_staff_token(who, test_clock))
    sent = {"url": route.path} | request_of(route, OWN, None)
    response = await client.request(route.method, headers=headers, **sent)
    assert assert_problem(response, 403, "role-not-allowed")["role"] == (
        "self" if who == "citizen" else "kiosk"
    )
    assert await audit_rows(gateway_db) == []


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize(("method", "path"), sorted(SELF_ROUTES))
async def test_no_staff_role_reaches_self_service(
    client: httpx.AsyncClient,
    gateway_db: Database,
    token_for: Callable[..., str],
    role: Role,
    method: str,
    path: str,
) -> None:
    sent: dict[str, Any] = {}
    if path == "/api/v1/self/session" and method == "POST":
        sent = {"json": {"id_number": OWN, "name": "王伟"}}  # a staff token is no kiosk's
    elif method == "POST":
        sent = {"json": {"client_id": str(uuid4()), "items": PHONE}}
    response = await client.request(method, path, headers=bearer(token_for(role)), **sent)
    assert_problem(response, 403, "role-not-allowed")
    assert await audit_rows(gateway_db) == []
