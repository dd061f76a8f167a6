"""Counter collections through survey's internal API, on real PostgreSQL and the real broker: a
valid one is stored encrypted and waits, submitted, for its 复核; once a reviewer (never the clerk
who made it) passes it, it is announced on registry.collections exactly once; an invalid one is
refused field by field and announces nothing. (The 复核 itself: test_counter_review.py.)"""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from canbao_contracts.codes import RegistrationItem, SurveyReason
from canbao_contracts.events.vocabulary import Channel
from canbao_platform.db import Database
from canbao_platform.messaging.tables import outbox
from canbao_survey.settings import DEV_DATA_KEY, SurveySettings
from canbao_survey.tables import collections
from tests.conftest import SERVICE_PUBLIC_KEY, caller_headers
from tests.survey.conftest import (
    CLERK,
    COLLECTED,
    NEW_PERSON,
    NUMBER,
    PERSON,
    REVIEWER,
    Published,
    assert_problem,
    counter_collection,
    passed,
)


async def rows(database: Database, table: sa.Table = collections) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        return [dict(r) for r in (await connection.execute(sa.select(table))).mappings().all()]


async def test_a_counter_collection_is_stored_encrypted_and_waits_for_its_review(
    survey: httpx.AsyncClient,
    survey_db: Database,
    published: Published,
) -> None:
    body = counter_collection(resolved_reasons=["missing_info"])
    response = await survey.post("/internal/collections", json=body)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["state"] == "submitted"
    [row] = await rows(survey_db)
    assert (row["state"], row["handler"], row["reviewer"], row["reviewed_at"]) == (
        "submitted",
        CLERK,
        None,
        None,
    )
    assert row["item_names"] == ["residence_address", "phone"]
    stored = repr(row).encode() + row["items_sealed"]
    for value in COLLECTED.values():
        assert value.encode() not in stored and value.encode("unicode_escape") not in stored
    assert await rows(survey_db, outbox) == []  # nothing announced before the 复核
    await published.read(timeout_ms=1000)
    assert published.of(created["collection_id"]) == []

    await passed(survey, created["collection_id"])
    await published.until(lambda seen: bool(published.of(created["collection_id"])))
    [event] = published.of(created["collection_id"])
    assert event.collection_id == UUID(created["collection_id"]) and event.person_id == PERSON
    assert event.channel is Channel.COUNTER
    [row] = await rows(survey_db)
    assert (event.handler, event.handled_at) == (CLERK, row["handled_at"])  # AAE011, AAE036
    assert (event.reviewer, event.reviewed_at) == (REVIEWER, row["reviewed_at"])  # AAE014/15
    assert event.reviewed_at >= event.handled_at
    assert event.items == {
        RegistrationItem.RESIDENCE_ADDRESS: COLLECTED["residence_address"],
        RegistrationItem.PHONE: COLLECTED["phone"],
    }
    assert event.resolved_reasons == (SurveyReason.MISSING_INFO,)
    assert await rows(survey_db, outbox) == []  # relayed, so deleted


async def test_a_new_registration_is_published_with_its_normalised_number(
    survey: httpx.AsyncClient,
    published: Published,
) -> None:
    items = {**NEW_PERSON, "id_number": "520102800101001"}  # the legacy 15-digit form
    response = await survey.post(
        "/internal/collections", json=counter_collection(items, person_id=None)
    )
    assert response.status_code == 201, response.text
    collection_id = response.json()["collection_id"]
    await passed(survey, collection_id)
    await published.until(lambda seen: bool(published.of(collection_id)))
    [event] = published.of(collection_id)
    assert event.person_id is None and event.subject == collection_id
    assert event.items[RegistrationItem.ID_NUMBER] == NUMBER


async def test_full_width_digits_are_kept_in_their_one_spelling(
    survey: httpx.AsyncClient,
    published: Published,
) -> None:
    """Typed with a Chinese input method: accepted, and kept and published as ASCII digits, so
    the registry never holds two spellings of one phone (canbao_contracts.text)."""
    body = counter_collection(
        {"phone": "１３８００１３８０００", "residence_address": "云岩区１号"}
    )
    response = await survey.post("/internal/collections", json=body)
    assert response.status_code == 201, response.text
    collection_id = response.json()["collection_id"]
    await passed(survey, collection_id)
    await published.until(lambda seen: bool(published.of(collection_id)))
    [event] = published.of(collection_id)
    assert event.items == {
        RegistrationItem.RESIDENCE_ADDRESS: "云岩区1号",
        RegistrationItem.PHONE: "13800138000",
    }


@pytest.mark.parametrize(
    ("items", "item", "kind", "label"),
    [
        ({"phone": "1381234567"}, "phone", "invalid_phone", "联系电话（AAE005）"),
        (
            {"id_number": NUMBER[:17] + "6"},
            "id_number",
            "invalid_id_number",
            "公民身份号码（AAC002）",
        ),
        ({"gender": "3"}, "gender", "not_in_code_table", "性别（AAC004）"),
        ({"household_type": "60"}, "household_type", "not_in_code_table", "户口性质（AAC009）"),
        ({"birth_date": "19801301"}, "birth_date", "invalid_date", "出生日期（AAC006）"),
        ({"name": " "}, "name", "empty", "姓名（AAC003）"),
        ({"name": "\x00王伟"}, "name", "invalid_character", "姓名（AAC003）"),
        (
            {"residence_address": "云岩区\n中华北路"},
            "residence_address",
            "invalid_character",
            "居住地址（AAE006）",
        ),
        ({"nickname": "小王"}, "nickname", "unknown_item", "未知的登记项目"),
    ],
)
async def test_each_bad_field_is_refused_by_name_and_nothing_is_published(
    survey: httpx.AsyncClient,
    survey_db: Database,
    items: dict[str, str],
    item: str,
    kind: str,
    label: str,
) -> None:
    response = await survey.post("/internal/collections", json=counter_collection(items))

    problem = assert_problem(response, 422, "invalid-items")
    [error] = problem["errors"]
    assert (error["item"], error["kind"]) == (item, kind)
    assert error["message_zh"].startswith(label) and label in problem["detail"]
    for value in items.values():
        assert value.strip() == "" or value not in response.text
    assert await rows(survey_db) == [] and await rows(survey_db, outbox) == []


async def test_every_bad_field_of_one_collection_is_listed(survey: httpx.AsyncClient) -> None:
    items = {"phone": "123", "gender": "男", "birth_date": "1980-01-01"}
    response = await survey.post("/internal/collections", json=counter_collection(items))
    errors = assert_problem(response, 422, "invalid-items")["errors"]
    assert [e["item"] for e in errors] == ["gender", "birth_date", "phone"]


async def test_a_new_registration_without_the_required_items_is_refused(
    survey: httpx.AsyncClient,
) -> None:
    response = await survey.post(
        "/internal/collections", json=counter_collection({"phone": "13812345678"}, person_id=None)
    )
    errors = assert_problem(response, 422, "invalid-items")["errors"]
    assert {e["kind"] for e in errors} == {"missing_required"}
    assert "姓名（AAC003）为新参保登记的必填项目" in [e["message_zh"] for e in errors]


async def test_the_same_idempotency_key_gives_the_same_collection_and_one_event(
    survey: httpx.AsyncClient,
    survey_db: Database,
    published: Published,
) -> None:
    headers = {"Idempotency-Key": "counter-7f3a"}
    first = await survey.post("/internal/collections", json=counter_collection(), headers=headers)
    again = await survey.post("/internal/collections", json=counter_collection(), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(await rows(survey_db)) == 1
    collection_id = first.json()["collection_id"]
    await passed(survey, collection_id)
    later = await survey.post("/internal/collections", json=counter_collection(), headers=headers)
    assert later.json() == {"collection_id": collection_id, "state": "approved"}  # as it is now
    await published.until(lambda seen: bool(published.of(collection_id)))
    await published.read(timeout_ms=1500)  # a second event would have been relayed by now
    assert len(published.of(collection_id)) == 1


async def test_an_idempotency_key_reused_for_other_data_is_a_conflict(
    survey: httpx.AsyncClient,
    survey_db: Database,
) -> None:
    headers = {"Idempotency-Key": "counter-7f3a"}
    await survey.post("/internal/collections", json=counter_collection(), headers=headers)
    other = counter_collection({"phone": "13900000000"})
    response = await survey.post("/internal/collections", json=other, headers=headers)
    assert_problem(response, 409, "idempotency-key-reused")
    # Another clerk's key is another collection.
    response = await survey.post(
        "/internal/collections",
        json=counter_collection(),
        headers=headers | caller_headers("survey", username="b"),
    )
    assert response.status_code == 201
    assert len(await rows(survey_db)) == 2


async def test_a_collection_reads_back_with_its_state_and_masked_values(
    survey: httpx.AsyncClient,
) -> None:
    items = {**NEW_PERSON}
    created = await survey.post(
        "/internal/collections", json=counter_collection(items, person_id=None)
    )
    collection_id = created.json()["collection_id"]

    response = await survey.get(f"/internal/collections/{collection_id}")

    assert response.status_code == 200
    view = response.json()
    assert (view["state"], view["channel"], view["handler"], view["reviewer"]) == (
        "submitted",
        "counter",
        CLERK,
        None,
    )
    assert (view["risk"], view["region_code"], view["masked_name"]) == ("identity", "520102", "王*")
    values = {i["item"]: i["value"] for i in view["items"]}
    assert values["name"] == "王*" and values["id_number"] == "5201**********0013"
    assert values["gender"] == "1" and values["birth_date"] == "1980****"
    assert values["phone"] == "0851*****1234"
    for value in ("王伟", NUMBER, "85551234", "花果园"):
        assert value not in response.text
    assert {"item": "phone", "code": "AAE005", "label": "联系电话"}.items() <= view["items"][
        -1
    ].items()


async def test_an_unknown_collection_is_not_found(survey: httpx.AsyncClient) -> None:
    response = await survey.get(f"/internal/collections/{PERSON}")
    assert_problem(response, 404, "collection-not-found")


def test_production_refuses_to_run_without_a_real_data_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CANBAO_ENV", "production")
    monkeypatch.setenv("SURVEY_DATABASE_URL", "postgresql+asyncpg://survey_app@db/survey")
    monkeypatch.setenv("CANBAO_SERVICE_TOKEN_PUBLIC_KEY", SERVICE_PUBLIC_KEY)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")  # production asks for a choice
    with pytest.raises(ValueError, match="SURVEY_DATA_KEY and SURVEY_DATA_KEY_ID must be set"):
        SurveySettings()
    monkeypatch.setenv("SURVEY_DATA_KEY", DEV_DATA_KEY)
    monkeypatch.setenv("SURVEY_DATA_KEY_ID", "prod-1")
    with pytest.raises(ValueError, match="public development key"):
        SurveySettings()
    monkeypatch.setenv("SURVEY_DATA_KEY", base64.b64encode(b"k" * 31).decode())
    with pytest.raises(ValueError, match="32 bytes"):
        SurveySettings()
    monkeypatch.setenv("SURVEY_DATA_KEY", base64.b64encode(b"k" * 32).decode())
    assert SurveySettings().data_key_id == "prod-1"


async def test_a_verified_reason_for_not_being_insured_travels_with_the_collection(
    survey: httpx.AsyncClient, published: Published
) -> None:
    verified = [{"insurance": "unemployment", "status": "95"}]
    body = counter_collection(verified_statuses=verified, resolved_reasons=["partially_insured"])
    response = await survey.post("/internal/collections", json=body)
    assert response.status_code == 201, response.text
    collection_id = response.json()["collection_id"]
    await passed(survey, collection_id)
    await published.until(lambda seen: bool(published.of(collection_id)))
    [event] = published.of(collection_id)
    assert [(v.insurance.value, v.status.value) for v in event.verified_statuses] == [
        ("unemployment", "95")
    ]


async def test_a_scheme_code_cannot_be_verified_by_a_collection(survey: httpx.AsyncClient) -> None:
    body = counter_collection(verified_statuses=[{"insurance": "pension", "status": "11"}])
    response = await survey.post("/internal/collections", json=body)
    assert_problem(response, 422, "invalid-request")


async def test_a_reason_named_twice_counts_once_and_two_statuses_of_one_insurance_are_refused(
    survey: httpx.AsyncClient, published: Published
) -> None:
    twice = counter_collection(resolved_reasons=["uninsured", "interrupted", "uninsured"])
    contradicting = counter_collection(
        verified_statuses=[
            {"insurance": "pension", "status": "93"},
            {"insurance": "pension", "status": "95"},
        ]
    )

    accepted = await survey.post("/internal/collections", json=twice)
    refused = await survey.post("/internal/collections", json=contradicting)

    assert accepted.status_code == 201, accepted.text
    assert_problem(refused, 422, "invalid-request")
    collection_id = accepted.json()["collection_id"]
    await passed(survey, collection_id)
    await published.until(lambda seen: bool(published.of(collection_id)))
    [event] = published.of(collection_id)
    assert event.resolved_reasons == (SurveyReason.UNINSURED, SurveyReason.INTERRUPTED)


async def test_the_handler_is_the_signed_caller_never_a_name_in_the_body(
    survey: httpx.AsyncClient, survey_db: Database
) -> None:
    named = await survey.post("/internal/collections", json=counter_collection(handler="mallory"))
    assert_problem(named, 422, "invalid-request")
    surveyor = await survey.post(
        "/internal/collections",
        json=counter_collection(),
        headers=caller_headers("survey", username="s-1", role="surveyor"),
    )
    assert_problem(surveyor, 403, "caller-not-allowed")
    assert await rows(survey_db) == []
