"""The internal API the gateway calls (routes.py), over ASGI on a real database: a person by any
valid form of the ID number (the blind index), by person_id, and the review queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from uuid import uuid4

import httpx
import pytest
import sqlalchemy as sa

from canbao_identity.app import create
from canbao_identity.settings import IdentitySettings
from canbao_platform.db import Database
from canbao_platform.messaging.tables import outbox
from canbao_platform.service import Resources
from tests.conftest import ServiceAuth
from tests.identity.conftest import Harness, change
from tests.identity.test_registry import LEGACY, NUMBER, ac01, hukou


@pytest.fixture
async def client(identity_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = IdentitySettings(CANBAO_ENV="test", database_url=identity_db.url)
    app = create(settings)
    # The routes only need the database; the consumers (the lifespan's components) are not run.
    app.state.resources = Resources(settings=settings, database=identity_db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://identity",
        auth=ServiceAuth("identity", username="clerk-7"),
    ) as http:
        yield http


async def test_a_person_is_found_by_any_valid_form_of_the_number(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    await harness.apply([change("hukou.person", hukou()), change("si_core.ac01", ac01(LEGACY))])
    found = set()
    for form in (NUMBER, LEGACY, NUMBER.lower(), f" {NUMBER[:6]} {NUMBER[6:]} "):
        response = await client.post("/internal/persons/lookup", json={"id_number": form})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["golden"]["name"]["value"] == "王伟"
        found.add(body["person_id"])
    assert len(found) == 1
    by_id = await client.get(f"/internal/persons/{found.pop()}")
    assert by_id.status_code == 200
    assert by_id.json()["golden"]["id_number"]["value"] == NUMBER


def test_no_route_takes_a_number_in_its_url(identity_db: Database) -> None:
    """Numbers travel in request bodies between services: URLs end up in access logs."""
    app = create(IdentitySettings(CANBAO_ENV="test", database_url=identity_db.url))
    paths = list(app.openapi()["paths"])
    assert "/internal/persons/lookup" in paths
    assert not [path for path in paths if "number" in path], paths


async def test_an_invalid_number_is_refused_naming_the_defect(client: httpx.AsyncClient) -> None:
    response = await client.post("/internal/persons/lookup", json={"id_number": NUMBER[:17] + "5"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/invalid-id-number"
    assert [d["code"] for d in body["defects"]] == ["bad_check_digit"]
    assert body["detail"].startswith("校验码应为")


async def test_an_unknown_number_or_person_is_not_registered(client: httpx.AsyncClient) -> None:
    response = await client.post("/internal/persons/lookup", json={"id_number": NUMBER})
    assert response.status_code == 404 and response.json()["type"] == "/problems/not-registered"
    response = await client.get(f"/internal/persons/{uuid4()}")
    assert response.status_code == 404 and response.json()["type"] == "/problems/not-registered"


async def test_a_clerk_links_a_queued_record_to_its_person(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    typo = NUMBER[:17] + "5"
    await harness.apply(
        [
            change("hukou.person", hukou()),
            # Another name and no birth date: no candidate can be found, so it waits for a clerk.
            change(
                "civil.dibao", {"id": 1, "sfzh": typo, "xm": "王 伟伟", "ksrq": date(2020, 1, 1)}
            ),
        ]
    )
    [entry] = (await client.get("/internal/review-queue")).json()
    assert entry["state"] == "open" and entry["source_table"] == "civil.dibao"
    person_id = await harness.person_of(NUMBER)

    resolve = f"/internal/review-queue/{entry['entry_id']}/resolve"
    bad = await client.post(resolve, json={})
    assert bad.status_code == 422 and bad.json()["type"] == "/problems/invalid-resolution"
    # The reviewer is the service token's subject; a name in the body is not read.
    done = await client.post(resolve, json={"person_id": str(person_id), "reviewer": "mallory"})
    assert done.status_code == 200, done.text
    assert done.json()["resolution"] == "linked" and done.json()["resolved_by"] == "clerk-7"
    again = await client.post(resolve, json={"person_id": str(person_id)})
    assert again.status_code == 409 and again.json()["type"] == "/problems/review-entry-resolved"

    assert (await client.get("/internal/review-queue")).json() == []
    person = (await client.get(f"/internal/persons/{person_id}")).json()
    assert [(g["item"], g["source"]) for g in person["inaccurate"]] == [
        ("id_number", "civil"),
        ("name", "civil"),
    ]


async def test_rows_that_name_a_queued_record_follow_it_when_a_clerk_links_it(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    """An ac01 with a mistyped number and another spelling waits for a clerk; its enrolment
    (ac02, which names the person only through the ac01) waits with it, then follows it."""
    typo = NUMBER[:17] + "5"
    await harness.apply(
        [
            change("hukou.person", hukou()),
            change("si_core.ac01", ac01(typo, "王 小伟", aac006="")),
            change(
                "si_core.ac02",
                {
                    "aac001": "P1",
                    "aae140": "110",
                    "aab301": "110101",
                    "aab001": "U1",
                    "aac008": "1",
                },
            ),
        ]
    )
    person_id = await harness.person_of(NUMBER)
    [entry] = (await client.get("/internal/review-queue")).json()
    assert entry["source_table"] == "si_core.ac01"
    resolve = f"/internal/review-queue/{entry['entry_id']}/resolve"
    # The reviewer is the service token's subject; a name in the body is not read.
    done = await client.post(resolve, json={"person_id": str(person_id), "reviewer": "mallory"})
    assert done.status_code == 200, done.text
    async with harness.db.engine.connect() as connection:
        facts = (
            (
                await connection.execute(
                    sa.select(outbox.c.value).where(outbox.c.topic == "registry.facts")
                )
            )
            .scalars()
            .all()
        )
    assert any(b'"enrolment"' in value for value in facts), "the enrolment followed its ac01"


async def test_one_person_under_two_documents_is_merged(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    await harness.apply(
        [
            change("hukou.person", hukou()),
            change(
                "medical.insured",
                {
                    "psn_no": "M7",
                    "certno": "E12345678",
                    "psn_cert_type": "02",
                    "psn_name": "王伟",
                    "gend": "1",
                    "brdy": date(1980, 1, 1),
                    "insutype": "390",
                    "psn_insu_stas": "1",
                },
            ),
        ]
    )
    survivor, merged = await harness.person_of(NUMBER), await harness.person_of("E12345678", "02")
    assert survivor is not None and merged is not None and survivor != merged

    response = await client.post(
        f"/internal/persons/{merged}/merge",
        json={"surviving_person_id": str(survivor)},
    )
    assert response.status_code == 200, response.text
    assert await harness.person_of("E12345678", "02") == survivor
    assert (await client.get(f"/internal/persons/{merged}")).status_code == 404
    async with harness.db.engine.connect() as connection:
        rows = (await connection.execute(sa.select(outbox.c.topic, outbox.c.value))).all()
    merged_events = [v for t, v in rows if t == "registry.persons" and b"merged_person_id" in v]
    assert len(merged_events) == 1
    facts = [v for t, v in rows if t == "registry.facts"]
    assert any(b'"retracted":true' in v and str(merged).encode() in v for v in facts)
    assert any(b'"retracted":false' in v and str(survivor).encode() in v for v in facts)
    again = await client.post(
        f"/internal/persons/{merged}/merge",
        json={"surviving_person_id": str(survivor)},
    )
    assert again.status_code == 404
