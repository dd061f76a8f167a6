"""`POST /api/v1/counter/collections` end to end: the gateway (real PostgreSQL) forwards to the
survey application (its own database, outbox and broker) over HTTP — in-process through
httpx.ASGITransport instead of a port — and the collection waits, submitted, for its 复核;
passed by a reviewer, it arrives on registry.collections with the clerk as handler (AAE011) and
the reviewer as reviewer (AAE014). (The 复核 routes: test_counter_review.py.)"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from canbao_contracts.codes import RegistrationItem
from canbao_contracts.topics import COLLECTIONS
from canbao_gateway.app import create
from canbao_gateway.clock import clock
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import free_port
from canbao_survey.tables import collections
from tests.gateway.conftest import (
    Clock,
    assert_problem,
    bearer,
    break_the_audit_log,
    serve,
    settings_for,
)
from tests.gateway.people import NANMING, ZUNYI_HONGHUAGANG, citizen
from tests.gateway.services import gateway_over, hukou, identity_app
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.survey import conftest as survey_fixtures
from tests.survey.conftest import COLLECTED, NEW_PERSON, NUMBER, Published

PATH = "/api/v1/counter/collections"
OUT_OF_SCOPE = "5203"  # Zunyi; the person's number is of Guiyang (520102)
# Survey's own fixtures: its database, application and a reader of registry.collections.
survey_url = survey_fixtures.survey_url
survey_db = survey_fixtures.survey_db
survey_app = survey_fixtures.survey_app
published = survey_fixtures.published


@pytest.fixture(scope="module")
def collections_kafka() -> Iterator[MockKafkaCluster]:
    with MockKafkaCluster(brokers=3) as cluster:
        cluster.create_topics([COLLECTIONS])
        yield cluster


@pytest.fixture
async def registered(harness: Harness) -> UUID:
    """The person of NUMBER, whose household register places them in Nanming (Guiyang)."""
    await harness.apply([hukou(NUMBER, NANMING)])
    person = await harness.person_of(NUMBER)
    assert person is not None
    return person


@pytest.fixture
async def gateway(
    gateway_url: str, survey_app: FastAPI, harness: Harness, registered: UUID, test_clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway, reaching identity and the running survey application through ASGI."""
    apps = {"identity": identity_app(harness), "survey": survey_app}
    async for client in gateway_over(gateway_url, test_clock, **apps):
        yield client


def collection(person: UUID, items: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id_number": NUMBER,
        "person_id": str(person),
        "items": COLLECTED if items is None else items,
        **fields,
    }


async def recheck(
    gateway: httpx.AsyncClient, token_for: Any, collection_id: str, scope: str = "520102"
) -> None:
    """A reviewer of the person's region passes the collection (复核): it is then published."""
    token = token_for(Role.REVIEWER, scope=scope, username="reviewer-01")
    response = await gateway.post(
        f"{PATH}/{collection_id}/review", json={"decision": "pass"}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "approved"


async def rows(database: Database, table: sa.Table) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        return [dict(r) for r in (await connection.execute(sa.select(table))).mappings().all()]


async def test_a_clerk_collection_is_submitted_audited_and_published_once_rechecked(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    survey_db: Database,
    published: Published,
    registered: UUID,
) -> None:
    token = token_for(Role.COUNTER, scope="520102", username="clerk-07")
    response = await gateway.post(
        PATH, json=collection(registered, resolved_reasons=["missing_info"]), headers=bearer(token)
    )

    assert response.status_code == 201, response.text
    accepted = response.json()
    assert accepted["state"] == "submitted"
    [row] = await rows(survey_db, collections)
    assert (row["handler"], row["reviewer"], row["state"]) == ("clerk-07", None, "submitted")
    assert row["person_region"] == "520102"  # where the gateway placed the person
    [entry] = await rows(gateway_db, audit_log)
    assert (entry["staff"], entry["role"], entry["outcome"], entry["purpose"]) == (
        "clerk-07",
        "counter",
        "ok",
        "counter_service",
    )
    assert entry["endpoint"] == f"POST {PATH}" and entry["person_id"] == registered
    assert entry["person_region"] == "520102" and entry["id_number_hash"]
    assert NUMBER not in repr(entry)
    await recheck(gateway, token_for, accepted["collection_id"])
    await published.until(lambda seen: bool(published.of(accepted["collection_id"])))
    [event] = published.of(accepted["collection_id"])
    assert (event.handler, event.reviewer) == ("clerk-07", "reviewer-01")
    assert event.items[RegistrationItem.PHONE] == COLLECTED["phone"]


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.COUNTER])
async def test_only_counter_clerks_may_submit(
    gateway: httpx.AsyncClient, token_for: Any, survey_db: Database, role: Role, registered: UUID
) -> None:
    response = await gateway.post(
        PATH, json=collection(registered), headers=bearer(token_for(role))
    )
    assert_problem(response, 403, "role-not-allowed")
    assert await rows(survey_db, collections) == []


async def test_a_person_outside_the_clerks_region_is_refused_and_the_attempt_audited(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    survey_db: Database,
    registered: UUID,
) -> None:
    token = token_for(Role.COUNTER, scope=OUT_OF_SCOPE)
    response = await gateway.post(PATH, json=collection(registered), headers=bearer(token))

    assert_problem(response, 403, "out-of-scope")
    assert await rows(survey_db, collections) == []
    [entry] = await rows(gateway_db, audit_log)
    assert (entry["outcome"], entry["person_region"]) == ("out_of_scope", "520102")


async def test_a_new_registration_is_placed_by_the_collected_number(
    gateway: httpx.AsyncClient,
    token_for: Any,
    survey_db: Database,
) -> None:
    body = {"person_id": None, "items": NEW_PERSON}
    inside = await gateway.post(PATH, json=body, headers=bearer(token_for(Role.COUNTER, "5201")))
    outside = await gateway.post(
        PATH, json=body, headers=bearer(token_for(Role.COUNTER, OUT_OF_SCOPE))
    )
    assert inside.status_code == 201, inside.text
    assert_problem(outside, 403, "out-of-scope")
    assert len(await rows(survey_db, collections)) == 1


async def test_a_newcomer_registers_where_they_live_and_survey_publishes_that_region(
    gateway: httpx.AsyncClient,
    token_for: Any,
    survey_db: Database,
    gateway_db: Database,
    published: Published,
) -> None:
    """A newcomer whose number names Guiyang registers with a Zunyi clerk, where they live now:
    placed by `region_code`, which reaches identity on CollectionApproved; the audit still names
    the number's region. Without it, the Zunyi clerk may not register them."""
    zunyi = bearer(token_for(Role.COUNTER, OUT_OF_SCOPE))
    without = await gateway.post(PATH, json={"person_id": None, "items": NEW_PERSON}, headers=zunyi)
    assert_problem(without, 403, "out-of-scope")
    body = {"person_id": None, "items": NEW_PERSON, "region_code": "520302"}
    response = await gateway.post(PATH, json=body, headers=zunyi)
    assert response.status_code == 201, response.text
    [row] = await rows(survey_db, collections)
    assert row["region_code"] == "520302"
    collection_id = response.json()["collection_id"]
    await recheck(gateway, token_for, collection_id, scope="5203")  # Zunyi's reviewer
    await published.until(lambda seen: bool(published.of(collection_id)))
    [event] = published.of(collection_id)
    assert event.region_code == "520302" and event.person_id is None
    entries = [e for e in await rows(gateway_db, audit_log) if e["role"] == "counter"]
    assert [(e["outcome"], e["person_region"]) for e in entries] == [
        ("out_of_scope", "520102"),
        ("ok", "520302"),
    ]


async def test_bad_fields_are_named_audited_as_rejected_and_not_forwarded(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    survey_db: Database,
    registered: UUID,
) -> None:
    items = {"phone": "8555", "gender": "3"}
    response = await gateway.post(
        PATH, json=collection(registered, items), headers=bearer(token_for(Role.COUNTER))
    )

    problem = assert_problem(response, 422, "invalid-items")
    assert [(e["item"], e["code"], e["kind"]) for e in problem["errors"]] == [
        ("gender", "AAC004", "not_in_code_table"),
        ("phone", "AAE005", "invalid_phone"),
    ]
    assert "联系电话（AAE005）" in problem["detail"] and "8555" not in response.text
    assert await rows(survey_db, collections) == []
    [entry] = await rows(gateway_db, audit_log)
    assert entry["outcome"] == "rejected"


async def test_an_invalid_presented_number_says_what_is_wrong(
    gateway: httpx.AsyncClient,
    token_for: Any,
    registered: UUID,
) -> None:
    body = collection(registered, id_number=NUMBER[:17] + "6")
    response = await gateway.post(PATH, json=body, headers=bearer(token_for(Role.COUNTER)))
    problem = assert_problem(response, 422, "invalid-id-number")
    assert problem["detail"] == "校验码应为3，实为6"


async def test_a_registered_person_without_a_citizen_number_is_placed_by_identity(
    gateway: httpx.AsyncClient, token_for: Any, registered: UUID
) -> None:
    body = {"document_type": "02", "person_id": str(registered), "items": COLLECTED}
    nanming = await gateway.post(PATH, json=body, headers=bearer(token_for(Role.COUNTER, NANMING)))
    assert nanming.status_code == 201, nanming.text
    zunyi = bearer(token_for(Role.COUNTER, OUT_OF_SCOPE))
    assert_problem(await gateway.post(PATH, json=body, headers=zunyi), 403, "out-of-scope")


async def test_a_new_registration_without_a_citizen_number_needs_a_region(
    gateway: httpx.AsyncClient, token_for: Any
) -> None:
    body: dict[str, Any] = {"document_type": "02", "person_id": None, "items": COLLECTED}
    response = await gateway.post(PATH, json=body, headers=bearer(token_for(Role.COUNTER)))
    assert_problem(response, 422, "person-region-unknown")


async def test_a_resubmission_with_the_same_key_is_the_same_collection(
    gateway: httpx.AsyncClient,
    token_for: Any,
    survey_db: Database,
    registered: UUID,
) -> None:
    headers = bearer(token_for(Role.COUNTER)) | {"Idempotency-Key": "window-3-0001"}
    first = await gateway.post(PATH, json=collection(registered), headers=headers)
    again = await gateway.post(PATH, json=collection(registered), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len(await rows(survey_db, collections)) == 1
    other = await gateway.post(
        PATH, json=collection(registered, {"phone": "13900000000"}), headers=headers
    )
    assert_problem(other, 409, "idempotency-key-reused")


async def test_a_submission_without_a_token_is_refused(
    gateway: httpx.AsyncClient, registered: UUID
) -> None:
    assert_problem(await gateway.post(PATH, json=collection(registered)), 401, "unauthenticated")


async def test_survey_away_is_503_and_nothing_is_saved(
    gateway_url: str,
    test_clock: Clock,
    token_for: Any,
    gateway_db: Database,
    harness: Harness,
    registered: UUID,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    identity = httpx.ASGITransport(app=identity_app(harness))
    app = create(settings_for(gateway_url, survey_url=nobody), identity_transport=identity)
    app.dependency_overrides[clock] = lambda: test_clock
    async with serve(app) as client:
        response = await client.post(
            PATH, json=collection(registered), headers=bearer(token_for(Role.COUNTER))
        )
    assert_problem(response, 503, "survey-unavailable")
    assert COLLECTED["phone"] not in response.text
    # The row was written before survey was asked: the log may say more than was done.
    [entry] = await rows(gateway_db, audit_log)
    assert (entry["outcome"], entry["person_id"]) == ("ok", registered)


async def test_survey_failing_is_503_too(
    gateway_url: str,
    test_clock: Clock,
    token_for: Any,
    harness: Harness,
    registered: UUID,
) -> None:
    failing = httpx.MockTransport(lambda request: httpx.Response(500, json={"type": "x"}))
    identity = httpx.ASGITransport(app=identity_app(harness))
    app = create(settings_for(gateway_url), survey_transport=failing, identity_transport=identity)
    app.dependency_overrides[clock] = lambda: test_clock
    async with serve(app) as client:
        response = await client.post(
            PATH, json=collection(registered), headers=bearer(token_for(Role.COUNTER))
        )
    assert_problem(response, 503, "survey-unavailable")


async def test_no_collected_value_or_number_reaches_the_logs(
    gateway: httpx.AsyncClient, token_for: Any, caplog: pytest.LogCaptureFixture, registered: UUID
) -> None:
    caplog.set_level(logging.INFO)
    for name in ("canbao_gateway", "canbao_survey", "canbao_platform", "httpx", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    headers = bearer(token_for(Role.COUNTER))
    await gateway.post(PATH, json={"person_id": None, "items": NEW_PERSON}, headers=headers)
    await gateway.post(PATH, json=collection(registered, {"phone": "0851-855"}), headers=headers)
    logged = caplog.text + repr([record.args for record in caplog.records])
    for value in (*NEW_PERSON.values(), "0851-855"):
        if len(value) > 2:
            assert value not in logged, value


async def test_a_name_holding_a_control_character_is_refused_and_not_forwarded(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    survey_db: Database,
    registered: UUID,
) -> None:
    """A NUL (which PostgreSQL cannot store) or any control character is refused at the door
    with where it is (canbao_contracts.text), never forwarded to become a stored name."""
    response = await gateway.post(
        PATH,
        json=collection(registered, {"name": "\x00王伟"}),
        headers=bearer(token_for(Role.COUNTER)),
    )

    problem = assert_problem(response, 422, "invalid-items")
    [error] = problem["errors"]
    assert (error["item"], error["code"], error["kind"]) == ("name", "AAC003", "invalid_character")
    assert (
        error["message_zh"]
        == "姓名（AAC003）含有控制字符或不可见字符（第1个字符，U+0000），请重新输入"
    )
    assert "王伟" not in response.text
    assert await rows(survey_db, collections) == []
    [entry] = await rows(gateway_db, audit_log)
    assert entry["outcome"] == "rejected"


# A registered person is placed by identity's region for them, never by what the clerk sends.


async def test_a_clerk_cannot_reach_a_person_of_another_region_by_naming_her_own(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    survey_db: Database,
    registered: UUID,
) -> None:
    """The person lives in Nanming; a Zunyi clerk leaves the number out and names Zunyi."""
    body = {"person_id": str(registered), "region_code": "520302", "items": COLLECTED}
    response = await gateway.post(PATH, json=body, headers=bearer(token_for(Role.COUNTER, "5203")))
    assert_problem(response, 403, "out-of-scope")
    assert await rows(survey_db, collections) == []
    [entry] = await rows(gateway_db, audit_log)
    assert (entry["outcome"], entry["person_id"], entry["person_region"]) == (
        "out_of_scope",
        registered,
        NANMING,
    )


async def test_a_number_that_is_not_the_persons_is_refused(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    survey_db: Database,
    registered: UUID,
) -> None:
    """A Zunyi clerk presents a Zunyi number (her region) with the Nanming person's id."""
    zunyi_number = citizen(ZUNYI_HONGHUAGANG)
    body = collection(registered, id_number=zunyi_number)
    response = await gateway.post(PATH, json=body, headers=bearer(token_for(Role.COUNTER, "5203")))
    assert_problem(response, 422, "id-number-mismatch")
    assert await rows(survey_db, collections) == []
    [entry] = await rows(gateway_db, audit_log)
    assert (entry["outcome"], entry["person_id"]) == ("rejected", registered)


async def test_a_person_id_identity_does_not_know_is_not_registered(
    gateway: httpx.AsyncClient, token_for: Any, gateway_db: Database, survey_db: Database
) -> None:
    body = {"person_id": str(uuid4()), "region_code": NANMING, "items": COLLECTED}
    response = await gateway.post(PATH, json=body, headers=bearer(token_for(Role.COUNTER)))
    assert_problem(response, 404, "not-registered")
    assert await rows(survey_db, collections) == []
    [entry] = await rows(gateway_db, audit_log)
    assert entry["outcome"] == "not_found"


async def test_a_registered_person_is_not_moved_outside_the_clerks_region(
    gateway: httpx.AsyncClient, token_for: Any, survey_db: Database, registered: UUID
) -> None:
    """region_code on a registered person is a move identity applies: inside the scope only."""
    nanming = bearer(token_for(Role.COUNTER, NANMING))
    away = await gateway.post(
        PATH, json=collection(registered, region_code="530102"), headers=nanming
    )
    assert_problem(away, 403, "out-of-scope")
    assert await rows(survey_db, collections) == []
    within = await gateway.post(
        PATH, json=collection(registered, region_code=NANMING), headers=nanming
    )
    assert within.status_code == 201, within.text


async def test_no_change_reaches_survey_when_its_audit_row_cannot_be_written(
    gateway_url: str,
    survey_app: FastAPI,
    harness: Harness,
    registered: UUID,
    gateway_db: Database,
    survey_db: Database,
    test_clock: Clock,
    token_for: Any,
) -> None:
    await break_the_audit_log(gateway_db)  # say a full disk
    app = create(
        settings_for(gateway_url),
        identity_transport=httpx.ASGITransport(app=identity_app(harness)),
        survey_transport=httpx.ASGITransport(app=survey_app),
    )
    app.dependency_overrides[clock] = lambda: test_clock
    async with serve(survey_app), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                PATH, json=collection(registered), headers=bearer(token_for(Role.COUNTER))
            )
    assert_problem(response, 500, "internal-error")
    assert await rows(survey_db, collections) == []


@pytest.mark.parametrize("number", [" ", "P" * 41], ids=["blank", "longer than any document"])
async def test_a_document_number_no_document_has_is_invalid_not_an_outage(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    survey_db: Database,
    registered: UUID,
    number: str,
) -> None:
    """A passport number identity's lookup cannot hold is the clerk's typing error (422), not
    `identity-unavailable`: nothing is asked of identity, nothing reaches survey."""
    body = {**collection(registered, id_number=number), "document_type": "02"}
    response = await gateway.post(PATH, json=body, headers=bearer(token_for(Role.COUNTER)))
    assert assert_problem(response, 422, "invalid-document-number")["max_length"] == 40
    assert await rows(survey_db, collections) == []
