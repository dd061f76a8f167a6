"""复核 of counter collections on the public interface (review_routes.py): the gateway (real
PostgreSQL) in front of identity, matching and survey (each on its own database, in-process
through httpx.ASGITransport). A clerk's collection waits, shown in the popup as pending; a
reviewer of the person's region reads the queue masked and passes it, and it is published with
the clerk as AAE011 and the reviewer as AAE014; the clerk cannot pass their own; a reviewer of
another region is refused; a batch answers per collection; every step is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from canbao_contracts.topics import COLLECTIONS
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.people import NANMING
from tests.gateway.services import gateway_over, hukou, identity_app, matching_app
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's, matching's, survey's
from tests.identity.conftest import identity_db as identity_db
from tests.matching.conftest import matching_db as matching_db
from tests.survey import conftest as survey_fixtures
from tests.survey.conftest import NUMBER, Published

PATH = "/api/v1/counter/collections"
POPUP = "/api/v1/counter/popup/"
CLERK, REVIEWER = "clerk-07", "reviewer-01"
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
    gateway_url: str,
    survey_app: FastAPI,
    harness: Harness,
    matching_db: Database,
    registered: UUID,
    test_clock: Clock,
) -> AsyncIterator[httpx.AsyncClient]:
    apps = {
        "identity": identity_app(harness),
        "matching": matching_app(matching_db),
        "survey": survey_app,
    }
    async for client in gateway_over(gateway_url, test_clock, **apps):
        yield client


def clerk(token_for: Any, username: str = CLERK) -> dict[str, str]:
    return bearer(token_for(Role.COUNTER, scope=NANMING, username=username))


def reviewer(token_for: Any, username: str = REVIEWER, scope: str = NANMING) -> dict[str, str]:
    return bearer(token_for(Role.REVIEWER, scope=scope, username=username))


async def collect(
    gateway: httpx.AsyncClient, token_for: Any, person: UUID, items: dict[str, str]
) -> str:
    body = {"id_number": NUMBER, "person_id": str(person), "items": items}
    response = await gateway.post(PATH, json=body, headers=clerk(token_for))
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "submitted"
    collection_id: str = response.json()["collection_id"]
    return collection_id


async def audit_rows(database: Database, role: str | None = None) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        rows = [dict(r) for r in (await connection.execute(query)).mappings().all()]
    return [r for r in rows if role is None or r["role"] == role]


async def test_a_collection_waits_in_the_popup_until_a_reviewer_passes_it(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    published: Published,
    registered: UUID,
) -> None:
    collection_id = await collect(gateway, token_for, registered, {"phone": "13812345678"})

    popup = (await gateway.get(POPUP + NUMBER, headers=clerk(token_for))).json()
    [pending] = popup["pending"]
    assert (pending["item"], pending["code"], pending["label"]) == ("phone", "AAE005", "联系电话")
    assert (pending["collection_id"], pending["state"]) == (collection_id, "submitted")
    assert pending["value"] != "13812345678" and pending["value"].endswith("5678")
    assert pending["submitted_at"]

    queue = await gateway.get(PATH, headers=reviewer(token_for))
    assert queue.status_code == 200, queue.text
    [item] = queue.json()["items"]
    assert (item["collection_id"], item["handler"], item["risk"]) == (
        collection_id,
        CLERK,
        "contact",
    )
    assert "13812345678" not in queue.text
    response = await gateway.post(
        f"{PATH}/{collection_id}/review",
        json={"decision": "pass", "comment": "已核"},
        headers=reviewer(token_for),
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "approved" and not response.json()["replayed"]

    await published.until(lambda seen: bool(published.of(collection_id)))
    [event] = published.of(collection_id)
    assert (event.handler, event.reviewer) == (CLERK, REVIEWER)  # AAE011, AAE014
    assert event.reviewed_at >= event.handled_at
    popup = (await gateway.get(POPUP + NUMBER, headers=clerk(token_for))).json()
    assert popup["pending"] == []
    rows = await audit_rows(gateway_db, "reviewer")
    assert [(r["purpose"], r["outcome"], r["person_region"]) for r in rows] == [
        ("review", "ok", NANMING),
        ("review", "ok", NANMING),
    ]
    assert rows[1]["endpoint"] == f"POST {PATH}/{{collection_id}}/review"
    assert rows[1]["person_id"] == registered

    again = await gateway.post(
        f"{PATH}/{collection_id}/review", json={"decision": "pass"}, headers=reviewer(token_for)
    )
    assert again.json()["replayed"] and again.headers["Idempotent-Replayed"] == "true"


async def test_the_clerk_cannot_pass_their_own_collection(
    gateway: httpx.AsyncClient, token_for: Any, gateway_db: Database, registered: UUID
) -> None:
    """The same member of staff holding a reviewer's token too: survey's ledger refuses."""
    collection_id = await collect(gateway, token_for, registered, {"phone": "13812345678"})
    response = await gateway.post(
        f"{PATH}/{collection_id}/review",
        json={"decision": "pass"},
        headers=reviewer(token_for, username=CLERK),
    )
    assert_problem(response, 409, "maker-checker")
    rows = await audit_rows(gateway_db, "reviewer")
    assert [(r["purpose"], r["outcome"]) for r in rows] == [("review", "rejected")]


async def test_a_reviewer_of_another_region_is_refused_and_the_attempt_audited(
    gateway: httpx.AsyncClient, token_for: Any, gateway_db: Database, registered: UUID
) -> None:
    collection_id = await collect(gateway, token_for, registered, {"phone": "13812345678"})
    zunyi = reviewer(token_for, scope="5203")
    response = await gateway.post(
        f"{PATH}/{collection_id}/review", json={"decision": "pass"}, headers=zunyi
    )
    assert_problem(response, 403, "out-of-scope")
    assert_problem(await gateway.get(f"{PATH}/{collection_id}", headers=zunyi), 403, "out-of-scope")
    assert (await gateway.get(PATH, headers=zunyi)).json()["items"] == []
    outside = await gateway.get(PATH, params={"region": NANMING}, headers=zunyi)
    assert_problem(outside, 403, "out-of-scope")
    rows = await audit_rows(gateway_db, "reviewer")
    assert [(r["outcome"], r["person_region"]) for r in rows] == [
        ("out_of_scope", NANMING),
        ("out_of_scope", NANMING),
        ("ok", "5203"),
        ("out_of_scope", NANMING),
    ]


async def test_a_returned_collection_is_not_decided_again(
    gateway: httpx.AsyncClient, token_for: Any, registered: UUID
) -> None:
    collection_id = await collect(gateway, token_for, registered, {"name": "王伟"})
    url = f"{PATH}/{collection_id}/review"
    returned = await gateway.post(
        url, json={"decision": "reject", "comment": "与户籍不符"}, headers=reviewer(token_for)
    )
    assert returned.json()["state"] == "rejected"
    late = await gateway.post(
        url, json={"decision": "pass"}, headers=reviewer(token_for, username="reviewer-02")
    )
    assert assert_problem(late, 409, "collection-changed")["collection"]["state"] == "rejected"
    # The clerk reads why; another clerk may not read it.
    mine = (await gateway.get(f"{PATH}/{collection_id}", headers=clerk(token_for))).json()
    assert (mine["state"], mine["comment"], mine["reviewer"]) == (
        "rejected",
        "与户籍不符",
        REVIEWER,
    )
    other = await gateway.get(f"{PATH}/{collection_id}", headers=clerk(token_for, "clerk-08"))
    assert_problem(other, 403, "caller-not-allowed")


async def test_a_batch_passes_contact_details_and_refuses_an_identity_item(
    gateway: httpx.AsyncClient,
    token_for: Any,
    gateway_db: Database,
    published: Published,
    registered: UUID,
) -> None:
    phone = await collect(gateway, token_for, registered, {"phone": "13812345678"})
    name = await collect(gateway, token_for, registered, {"name": "王伟"})

    response = await gateway.post(
        f"{PATH}/review-batch",
        json={"collection_ids": [phone, name], "comment": "当日复核"},
        headers=reviewer(token_for),
    )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["passed"], answer["refused"]) == (1, 1)
    [passed, refused] = answer["results"]
    assert (passed["collection_id"], passed["result"], passed["state"]) == (
        phone,
        "passed",
        "approved",
    )
    assert (refused["collection_id"], refused["result"]) == (name, "refused")
    assert refused["problem"]["type"] == "/problems/needs-individual-review"
    assert refused["problem"]["items"] == ["name"]
    rows = await audit_rows(gateway_db, "reviewer")
    assert [(r["outcome"], r["person_id"]) for r in rows] == [
        ("ok", registered),
        ("rejected", None),
    ]
    await published.until(lambda seen: bool(published.of(phone)))
    assert published.of(name) == []
    queue = (await gateway.get(PATH, headers=reviewer(token_for))).json()["items"]
    assert [(i["collection_id"], i["risk"]) for i in queue] == [(name, "identity")]


async def test_the_queue_refuses_a_bad_cursor_and_other_roles(
    gateway: httpx.AsyncClient, token_for: Any
) -> None:
    bad = await gateway.get(PATH, params={"cursor": "x"}, headers=reviewer(token_for))
    assert_problem(bad, 422, "invalid-cursor")
    assert_problem(await gateway.get(PATH, headers=clerk(token_for)), 403, "role-not-allowed")
    batch = await gateway.post(
        f"{PATH}/review-batch", json={"collection_ids": []}, headers=reviewer(token_for)
    )
    assert_problem(batch, 422, "invalid-request")
