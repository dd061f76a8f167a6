"""The internal API the gateway calls: a person's verdict (the popup's matching half), lists by
division, registration state and survey reason; errors as problem+json with stable types."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from canbao_contracts.codes import HouseholdStatus, Insurance, StatusCode
from canbao_contracts.envelope import Envelope, encode
from canbao_contracts.events import Event, FactAsserted, PersonsMerged
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_contracts.search import Filter, matches
from canbao_matching.app import SERVICE, MatchingSettings
from canbao_matching.evaluation import Evaluator
from canbao_matching.handlers import HANDLER
from canbao_matching.tables import facts, persons
from canbao_platform.db import Database
from canbao_platform.messaging import InboundMessage, unit_of_work
from canbao_platform.service import create_app
from tests.conftest import ServiceAuth
from tests.matching.people import benefit, elsewhere, enrolled, household, job, person

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
S = StatusCode


async def apply(database: Database, events: list[Event]) -> None:
    """Events through the consumer's handler, then the evaluator, on the real database."""
    async with unit_of_work(database, service="matching") as uow:
        for offset, event in enumerate(events):
            record = encode(event, source="/tests")
            message = InboundMessage(
                topic=record.topic,
                partition=0,
                offset=offset,
                key=record.key,
                value=record.value,
                headers=tuple(record.headers),
                timestamp=0,
                envelope=Envelope.from_headers(record.headers),
            )
            await HANDLER(message, uow)
    await Evaluator(database, clock=lambda: NOW).run_once()


@pytest.fixture
async def client(matching_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    definition = dataclasses.replace(SERVICE, components=lambda _: ())
    app = create_app(definition, MatchingSettings(database_url=matching_db.url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://matching", auth=ServiceAuth("matching")
        ) as c:
            yield c


def insured(pid: UUID, region: str = "520102") -> list[Event]:
    return [
        person(pid, region_code=region),
        FactAsserted(person_id=pid, fact=enrolled(pid, S.RESIDENT_PENSION)),
        FactAsserted(person_id=pid, fact=enrolled(pid, S.RESIDENT_MEDICAL)),
    ]


def uninsured(pid: UUID, region: str = "520102") -> list[Event]:
    return [person(pid, region_code=region)]


async def test_the_verdict_of_a_person_is_what_the_popup_shows(
    client: httpx.AsyncClient, matching_db: Database
) -> None:
    pid = uuid.uuid4()
    await apply(matching_db, insured(pid))
    response = await client.get(f"/internal/v1/verdicts/{pid}")
    assert response.status_code == 200
    body = response.json()
    assert body["person_id"] == str(pid) and body["in_scope"] is True
    assert body["verdict"]["statuses"] == {
        "pension": "12",
        "medical": "27",
        "injury": "95",
        "unemployment": "95",
        "maternity": "95",
    }
    assert body["verdict"]["registration"] == "confirmed"
    assert body["verdict"]["needs_survey"] is False and body["verdict"]["survey_reasons"] == []
    assert body["as_of"].startswith("2026-11-23T02:00:00")


async def test_an_unknown_person_is_a_problem_of_its_own_type(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/internal/v1/verdicts/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/person-unknown"


async def test_a_merged_person_points_to_the_survivor(
    client: httpx.AsyncClient, matching_db: Database
) -> None:
    retired, survivor = uuid.uuid4(), uuid.uuid4()
    await apply(
        matching_db,
        [
            *uninsured(retired),
            *uninsured(survivor),
            PersonsMerged(merged_person_id=retired, surviving_person_id=survivor),
        ],
    )
    response = await client.get(f"/internal/v1/verdicts/{retired}")
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/person-merged"
    assert response.json()["surviving_person_id"] == str(survivor)


async def test_facts_without_the_person_are_not_yet_a_verdict(
    client: httpx.AsyncClient, matching_db: Database
) -> None:
    pid = uuid.uuid4()
    await apply(matching_db, [FactAsserted(person_id=pid, fact=enrolled(pid, S.RESIDENT_MEDICAL))])
    response = await client.get(f"/internal/v1/verdicts/{pid}")
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/not-yet-evaluated"


async def test_a_person_who_moved_out_is_known_but_out_of_scope(
    client: httpx.AsyncClient, matching_db: Database
) -> None:
    pid = uuid.uuid4()
    moved = FactAsserted(person_id=pid, fact=household(pid, HouseholdStatus.MOVED_OUT))
    await apply(matching_db, [person(pid), moved])
    body = (await client.get(f"/internal/v1/verdicts/{pid}")).json()
    assert body["in_scope"] is False and body["verdict"] is None


async def test_a_malformed_person_id_is_an_invalid_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/internal/v1/verdicts/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/invalid-request"


async def test_survey_targets_of_a_city_by_reason_page_by_page(
    client: httpx.AsyncClient, matching_db: Database
) -> None:
    in_city = sorted(uuid.uuid4() for _ in range(5))
    other_city, confirmed = uuid.uuid4(), uuid.uuid4()
    events = [e for pid in in_city for e in uninsured(pid, region="520102")]
    await apply(
        matching_db,
        [*events, *uninsured(other_city, region="520302"), *insured(confirmed, region="520103")],
    )
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"region": "520100", "reason": "uninsured", "limit": "2"}
        if after is not None:
            params["after"] = after
        response = await client.get("/internal/v1/verdicts", params=params)
        assert response.status_code == 200
        page = response.json()
        seen += [item["person_id"] for item in page["items"]]
        assert all("uninsured" in item["verdict"]["survey_reasons"] for item in page["items"])
        after = page["next_after"]
        if after is None:
            break
    assert seen == [str(pid) for pid in in_city]
    province = {"region": "520000", "registration": "confirmed"}
    confirmed_only = await client.get("/internal/v1/verdicts", params=province)
    assert [i["person_id"] for i in confirmed_only.json()["items"]] == [str(confirmed)]


async def test_a_list_needs_a_division_code(client: httpx.AsyncClient) -> None:
    for params in ({}, {"region": "52"}, {"region": "520100", "reason": "lazy"}):
        response = await client.get("/internal/v1/verdicts", params=params)
        assert response.status_code == 422, params
        assert response.json()["type"] == "/problems/invalid-request"


async def test_the_insurance_of_a_person_lists_enrolments_and_benefits_not_retracted_ones(
    client: httpx.AsyncClient, matching_db: Database
) -> None:
    pid = uuid.uuid4()
    pension = enrolled(
        pid,
        S.URBAN_EMPLOYEE_PENSION,
        unit="U1",
        first_enrolled_on=date(2010, 3, 1),
        period_start=date(2024, 1, 1),
    )
    medical = enrolled(pid, S.EMPLOYEE_MEDICAL, unit="U1")
    gone = medical.model_copy(update={"revision": 2, "retracted": True})
    paid = benefit(pid, S.URBAN_EMPLOYEE_PENSION)
    await apply(
        matching_db,
        [
            person(pid),
            FactAsserted(person_id=pid, fact=pension),
            FactAsserted(person_id=pid, fact=medical),
            FactAsserted(person_id=pid, fact=gone),
            FactAsserted(person_id=pid, fact=paid),
            FactAsserted(person_id=pid, fact=job(pid)),
        ],
    )
    response = await client.get(f"/internal/v1/persons/{pid}/insurance")
    assert response.status_code == 200, response.text
    body = response.json()
    [enrolment] = body["enrolments"]
    assert (enrolment["scheme"], enrolment["state"]) == ("11", "paying")
    assert (enrolment["first_enrolled_on"], enrolment["period_start"]) == (
        "2010-03-01",
        "2024-01-01",
    )
    assert [(b["scheme"], b["state"]) for b in body["benefits"]] == [("11", "1")]
    assert body["as_of"] is not None
    unknown = await client.get(f"/internal/v1/persons/{uuid.uuid4()}/insurance")
    assert unknown.status_code == 404 and unknown.json()["type"].endswith("/person-unknown")


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "service": "matching"}
    assert (await client.get("/readyz")).status_code == 200


async def test_a_person_whose_record_cannot_be_read_is_set_aside_not_blocking_the_others(
    client: httpx.AsyncClient, matching_db: Database
) -> None:
    broken, fine = uuid.uuid4(), uuid.uuid4()
    async with unit_of_work(matching_db, service="matching") as uow:
        for offset, event in enumerate([*insured(broken), *uninsured(fine)]):
            record = encode(event, source="/tests")
            message = InboundMessage(
                topic=record.topic,
                partition=0,
                offset=offset,
                key=record.key,
                value=record.value,
                headers=tuple(record.headers),
                timestamp=0,
                envelope=Envelope.from_headers(record.headers),
            )
            await HANDLER(message, uow)
    async with matching_db.engine.begin() as connection:  # a row the contracts now refuse
        await connection.execute(
            sa.update(facts).where(facts.c.person_id == broken).values(body={"kind": "enrolment"})
        )
    await Evaluator(matching_db, clock=lambda: NOW).run_once()
    assert (await client.get(f"/internal/v1/verdicts/{fine}")).status_code == 200
    assert (await client.get(f"/internal/v1/verdicts/{broken}")).status_code == 409
    async with matching_db.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(persons.c.pending, persons.c.recheck_on).where(
                    persons.c.person_id == broken
                )
            )
        ).one()
    assert row.pending is False and row.recheck_on == date(2026, 11, 24)


async def test_a_search_reads_the_exchange_attributes_as_the_gateway_matches_them(
    client: httpx.AsyncClient, matching_db: Database
) -> None:
    """household_registered_locally and insured_in_province (canbao_contracts.search): SQL and
    `matches` select the same people; keyset pages read the whole selection once."""
    local_uninsured = sorted(uuid.uuid4() for _ in range(3))
    local_insured, migrant, migrant_elsewhere = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    elsewhere_in_province = uuid.uuid4()
    away = {"household_registered_locally": False, "household_region_code": "110101"}
    await apply(
        matching_db,
        [
            *(e for pid in local_uninsured for e in uninsured(pid)),
            *insured(local_insured),
            person(migrant, **away),
            FactAsserted(person_id=migrant, fact=enrolled(migrant, S.URBAN_EMPLOYEE_PENSION)),
            person(migrant_elsewhere, **away),
            person(elsewhere_in_province),
            FactAsserted(
                person_id=elsewhere_in_province,
                fact=elsewhere(
                    elsewhere_in_province,
                    Insurance.PENSION,
                    ComparisonScope.PROVINCE,
                    region="520302",
                ),
            ),
        ],
    )
    owed = Filter.model_validate(
        {
            "op": "all",
            "parts": [
                {"attribute": "region", "cmp": "eq", "value": "520000"},
                {
                    "op": "any",
                    "parts": [
                        {
                            "op": "all",
                            "parts": [
                                {
                                    "attribute": "household_registered_locally",
                                    "cmp": "eq",
                                    "value": False,
                                },
                                {"attribute": "insured_in_province", "cmp": "eq", "value": True},
                            ],
                        },
                        {
                            "op": "all",
                            "parts": [
                                {
                                    "attribute": "household_registered_locally",
                                    "cmp": "eq",
                                    "value": True,
                                },
                                {"attribute": "insured_in_province", "cmp": "eq", "value": False},
                            ],
                        },
                    ],
                },
            ],
        }
    )
    pages, after = [], str(UUID(int=0))
    while after is not None:
        body = {"filter": owed.model_dump(mode="json"), "page_size": 2, "after": after}
        response = await client.post("/internal/v1/verdicts/search", json=body)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total_count"] is None
        pages.append([item["person_id"] for item in page["items"]])
        after = page["next_after"]
    found = [pid for page in pages for pid in page]
    assert sorted(found) == sorted(str(p) for p in [*local_uninsured, migrant])
    assert all(len(page) <= 2 for page in pages) and len(found) == len(set(found))

    everyone = {"op": "all", "parts": [{"attribute": "region", "cmp": "eq", "value": "520000"}]}
    response = await client.post(
        "/internal/v1/verdicts/search", json={"filter": everyone, "page_size": 100}
    )
    assert response.json()["total_count"] == 6  # the uninsured migrant is not the province's
    in_python = [
        item["person_id"] for item in response.json()["items"] if matches(owed, item["verdict"])
    ]
    assert sorted(in_python) == sorted(found)

    both = {"filter": everyone, "page_size": 2, "page_number": 2, "after": str(UUID(int=0))}
    refused = await client.post("/internal/v1/verdicts/search", json=both)
    assert refused.status_code == 422 and refused.json()["type"].endswith("search-invalid")
