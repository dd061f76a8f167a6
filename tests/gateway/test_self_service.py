"""Self-service on the public interface (api.md "Self-service"): a kiosk logs in with client
credentials and opens a citizen's session with what it read from the ID card; the mobile app's
ID token is traded for one; the citizen reads their own record with reminders, sends
corrections that wait for the agency (survey's queue, channel self), and reaches nothing else.
Identity, matching and survey run for real behind the gateway (tests/gateway/services.py)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from canbao_contracts.topics import COLLECTIONS, PERSONS, STATUSES
from canbao_gateway import clients
from canbao_gateway.clients import ClientKind
from canbao_gateway.self_service import names_match
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.people import NANMING, citizen
from tests.gateway.services import gateway_over, hukou, identity_app, matching_app
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.matching.conftest import matching_db as matching_db
from tests.survey import conftest as survey_fixtures

survey_url = survey_fixtures.survey_url
survey_db = survey_fixtures.survey_db
survey_app = survey_fixtures.survey_app

PERSON = citizen(NANMING, "19800101", "011")
OTHER = citizen(NANMING, "19850505", "023")
UNREGISTERED = citizen(NANMING, "19700707", "041")
KIOSK, SECRET = "kiosk-nanming-01", "kiosk-secret-of-32-characters-xx"
ISSUER, AUDIENCE = "https://idp.example.gov.cn", "canbao-mobile"
# The identity provider's key pair: ES256 (P-256), as the app's provider would sign with.
IDP_KEY = ec.generate_private_key(ec.SECP256R1())
IDP_PUBLIC = (
    IDP_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
MOBILE = {"mobile_id_token_issuer": ISSUER, "mobile_id_token_public_key": IDP_PUBLIC}


@pytest.fixture(scope="module")
def collections_kafka() -> Iterator[MockKafkaCluster]:
    with MockKafkaCluster(brokers=3) as cluster:
        cluster.create_topics([COLLECTIONS, PERSONS, STATUSES])
        yield cluster


@pytest.fixture
async def people(harness: Harness) -> dict[str, UUID]:
    await harness.apply(
        [hukou(PERSON, NANMING, name="王伟"), hukou(OTHER, NANMING, name="阿依古丽·买买提")]
    )
    found = {n: await harness.person_of(n) for n in (PERSON, OTHER)}
    return {n: p for n, p in found.items() if p is not None}


@pytest.fixture
async def kiosk(gateway_db: Database) -> None:
    async with gateway_db.engine.begin() as connection:
        await clients.register(
            connection,
            client_id=KIOSK,
            secret=SECRET,
            kind=ClientKind.KIOSK,
            name="南明区政务中心1号机",
            region=NANMING,
        )


@pytest.fixture
async def gateway(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    matching_db: Database,
    survey_app: FastAPI,
    people: dict[str, UUID],
    kiosk: None,
) -> AsyncIterator[httpx.AsyncClient]:
    apps = {
        "identity": identity_app(harness),
        "matching": matching_app(matching_db),
        "survey": survey_app,
    }
    async for client in gateway_over(gateway_url, test_clock, settings=MOBILE, **apps):
        yield client


async def kiosk_token(gateway: httpx.AsyncClient, secret: str = SECRET) -> str:
    found = await gateway.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": KIOSK, "client_secret": secret},
    )
    assert found.status_code == 200, found.text
    token: str = found.json()["access_token"]
    return token


async def card_session(
    gateway: httpx.AsyncClient, number: str = PERSON, name: str = "王伟"
) -> httpx.Response:
    token = await kiosk_token(gateway)
    return await gateway.post(
        "/api/v1/self/session", headers=bearer(token), json={"id_number": number, "name": name}
    )


def id_token(clock: Clock, subject: str = PERSON, key: Any = IDP_KEY, **claims: Any) -> str:
    now = clock()
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
    } | claims
    return jwt.encode(body, key, algorithm="ES256")


async def audit_rows(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        rows = await connection.execute(sa.select(audit_log).order_by(audit_log.c.id))
        return [dict(r) for r in rows.mappings()]


async def test_a_kiosk_opens_a_session_and_the_citizen_reads_their_own_record(
    gateway: httpx.AsyncClient, gateway_db: Database
) -> None:
    opened = await card_session(gateway)
    assert opened.status_code == 201, opened.text
    assert opened.json()["expires_in"] == 600
    me = await gateway.get("/api/v1/self/me", headers=bearer(opened.json()["access_token"]))
    assert me.status_code == 200, me.text
    record = me.json()
    assert record["name"] == "王*" and record["id_number"] != PERSON and "*" in record["id_number"]
    assert "phone" in [m["item"] for m in record["missing"]]  # the household register has none
    [phone] = [r for r in record["reminders"] if r["item"] == "phone"]
    assert phone["kind"] == "complete_item" and phone["self_service"] is True
    assert "联系电话" in phone["text"]
    assert record["corrections"] == []
    rows = await audit_rows(gateway_db)
    assert [(r["endpoint"], r["staff"], r["role"], r["purpose"], r["outcome"]) for r in rows] == [
        ("POST /api/v1/self/session", f"kiosk:{KIOSK}", "self", "self_service", "ok"),
        ("GET /api/v1/self/me", f"kiosk:{KIOSK}", "self", "self_service", "ok"),
    ]
    assert rows[0]["person_id"] == rows[1]["person_id"] is not None


async def test_the_kiosk_logs_in_with_http_basic_too_and_a_wrong_secret_is_refused(
    gateway: httpx.AsyncClient,
) -> None:
    basic = base64.b64encode(f"{KIOSK}:{SECRET}".encode()).decode()
    found = await gateway.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert found.status_code == 200, found.text
    wrong = await gateway.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": KIOSK, "client_secret": "nope"},
    )
    assert_problem(wrong, 401, "invalid-client")
    # The Basic challenge only to a client that used Basic (RFC 6749 §5.2): a browser would
    # prompt the kiosk page's user for a password.
    assert "www-authenticate" not in wrong.headers
    wrong_basic = base64.b64encode(f"{KIOSK}:nope".encode()).decode()
    challenged = await gateway.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {wrong_basic}"},
    )
    assert_problem(challenged, 401, "invalid-client")
    assert challenged.headers["www-authenticate"] == 'Basic realm="canbao"'


async def test_a_card_with_another_name_or_an_unknown_number_opens_nothing_and_is_audited(
    gateway: httpx.AsyncClient, gateway_db: Database
) -> None:
    assert_problem(await card_session(gateway, name="李四"), 403, "name-mismatch")
    assert_problem(await card_session(gateway, number=UNREGISTERED), 404, "not-registered")
    assert_problem(
        await card_session(gateway, number="520102198001010000"), 422, "invalid-id-number"
    )
    # A name as the card writes it (full-width dot, spaces) is the registry's.
    assert (await card_session(gateway, OTHER, "阿依古丽・买买提 ")).status_code == 201
    outcomes = [(r["staff"], r["outcome"]) for r in await audit_rows(gateway_db)]
    assert outcomes == [(KIOSK, "refused"), (KIOSK, "not_found"), (f"kiosk:{KIOSK}", "ok")]


def test_names_match_as_the_card_writes_them() -> None:
    assert names_match("阿依古丽·买买提", "阿依古丽•买买提")
    assert names_match("ＷＡＮＧ Ｗｅｉ", "wang wei")
    assert not names_match("王伟", "王玮")
    assert not names_match("王伟", "")


async def test_a_session_ends_when_left_idle_on_a_kiosk_logged_out_or_its_kiosk_disabled(
    gateway: httpx.AsyncClient, gateway_db: Database, test_clock: Clock
) -> None:
    session = bearer((await card_session(gateway)).json()["access_token"])
    test_clock.advance(seconds=100)
    assert (await gateway.get("/api/v1/self/me", headers=session)).status_code == 200
    test_clock.advance(seconds=121)  # the kiosk idled for longer than GATEWAY_KIOSK_IDLE_SECONDS
    assert_problem(await gateway.get("/api/v1/self/me", headers=session), 401, "session-ended")

    session = bearer((await card_session(gateway)).json()["access_token"])
    assert (await gateway.delete("/api/v1/self/session", headers=session)).status_code == 204
    replayed = await gateway.get("/api/v1/self/me", headers=session)
    assert_problem(replayed, 401, "session-ended")

    kiosk = await kiosk_token(gateway)
    session = bearer((await card_session(gateway)).json()["access_token"])
    async with gateway_db.engine.begin() as connection:
        await clients.set_active(connection, KIOSK, active=False)
    assert_problem(await gateway.get("/api/v1/self/me", headers=session), 401, "session-ended")
    again = await gateway.post(
        "/api/v1/self/session", headers=bearer(kiosk), json={"id_number": PERSON, "name": "王伟"}
    )
    assert_problem(again, 401, "token-revoked")
    assert_problem(
        await gateway.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": KIOSK, "client_secret": SECRET},
        ),
        401,
        "invalid-client",
    )


async def test_a_session_lasts_ten_minutes_at_most(
    gateway: httpx.AsyncClient, test_clock: Clock
) -> None:
    session = bearer(await mobile_session(gateway, test_clock))
    for _ in range(5):
        test_clock.advance(seconds=110)  # an app is not a kiosk: no idle limit, but 10 minutes
        assert (await gateway.get("/api/v1/self/me", headers=session)).status_code == 200
    test_clock.advance(seconds=60)
    found = await gateway.get("/api/v1/self/me", headers=session)
    assert found.status_code == 401 and found.json()["type"] in (
        "/problems/token-expired",
        "/problems/session-ended",
    )


async def mobile_session(gateway: httpx.AsyncClient, clock: Clock, **claims: Any) -> str:
    opened = await gateway.post(
        "/api/v1/self/session", json={"id_token": id_token(clock, **claims)}
    )
    assert opened.status_code == 201, opened.text
    token: str = opened.json()["access_token"]
    return token


async def test_the_apps_id_token_opens_one_session_and_bad_ones_are_refused_with_the_reason(
    gateway: httpx.AsyncClient, gateway_db: Database, test_clock: Clock
) -> None:
    token = id_token(test_clock)
    opened = await gateway.post("/api/v1/self/session", json={"id_token": token})
    assert opened.status_code == 201, opened.text
    me = await gateway.get("/api/v1/self/me", headers=bearer(opened.json()["access_token"]))
    assert me.json()["name"] == "王*"
    assert_problem(
        await gateway.post("/api/v1/self/session", json={"id_token": token}),
        401,
        "id-token-replayed",
    )
    forged_key = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "signature": id_token(test_clock, key=forged_key),
        "expired": id_token(test_clock, exp=test_clock() - timedelta(minutes=1)),
        "audience": id_token(test_clock, aud="another-app"),
        "issuer": id_token(test_clock, iss="https://idp.elsewhere.example"),
        "subject": id_token(test_clock, subject="520102198001010000"),
        "old": id_token(
            test_clock, iat=test_clock() - timedelta(hours=1), exp=test_clock() + timedelta(hours=1)
        ),
        "none": jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": PERSON}, key=None, algorithm="none"
        ),
        "hs256": jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": PERSON,
                "iat": test_clock(),
                "exp": test_clock() + timedelta(minutes=5),
                "jti": "x",
            },
            IDP_PUBLIC.encode()[:64],
            algorithm="HS256",
        ),
    }
    for case, bad in cases.items():
        refused = await gateway.post("/api/v1/self/session", json={"id_token": bad})
        body = assert_problem(refused, 401, "id-token-invalid")
        assert body["detail"], case
    outcomes = [r["outcome"] for r in await audit_rows(gateway_db)]
    assert outcomes == ["ok", "ok", "refused", *["refused"] * len(cases)]
    unregistered = await gateway.post(
        "/api/v1/self/session", json={"id_token": id_token(test_clock, UNREGISTERED)}
    )
    assert_problem(unregistered, 404, "not-registered")


async def test_without_an_identity_provider_the_mobile_channel_is_closed(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    matching_db: Database,
    survey_app: FastAPI,
    people: dict[str, UUID],
) -> None:
    apps = {
        "identity": identity_app(harness),
        "matching": matching_app(matching_db),
        "survey": survey_app,
    }
    async for gateway in gateway_over(gateway_url, test_clock, **apps):
        closed = await gateway.post("/api/v1/self/session", json={"id_token": "x.y.z"})
        assert_problem(closed, 503, "mobile-channel-unavailable")


async def test_a_session_reaches_its_own_record_only_and_staff_routes_refuse_it(
    gateway: httpx.AsyncClient, token_for: Any
) -> None:
    session = bearer((await card_session(gateway)).json()["access_token"])
    kiosk = bearer(await kiosk_token(gateway))
    for path in (
        f"/api/v1/counter/popup/{PERSON}",
        f"/api/v1/persons/{OTHER}",
        "/api/v1/survey/tasks",
        "/api/v1/audit",
    ):
        for who in (session, kiosk):
            assert_problem(await gateway.get(path, headers=who), 403, "role-not-allowed")
    clerk = bearer(token_for(Role.COUNTER))
    assert_problem(await gateway.get("/api/v1/self/me", headers=clerk), 403, "role-not-allowed")
    assert_problem(await gateway.get("/api/v1/self/me", headers=kiosk), 403, "role-not-allowed")
    by_clerk = await gateway.post(
        "/api/v1/self/session", headers=clerk, json={"id_number": PERSON, "name": "王伟"}
    )
    assert_problem(by_clerk, 403, "role-not-allowed")
    both = await gateway.post(
        "/api/v1/self/session",
        headers=kiosk,
        json={"id_number": PERSON, "name": "王伟", "id_token": "x"},
    )
    assert_problem(both, 422, "invalid-request")


async def test_a_correction_sent_twice_is_one_task_waiting_for_the_agency(
    gateway: httpx.AsyncClient, token_for: Any, people: dict[str, UUID]
) -> None:
    session = bearer((await card_session(gateway)).json()["access_token"])
    body = {"client_id": str(uuid4()), "items": {"phone": "13800001111"}}
    sent = await gateway.post("/api/v1/self/me/corrections", headers=session, json=body)
    again = await gateway.post("/api/v1/self/me/corrections", headers=session, json=body)
    assert sent.status_code == 202, sent.text
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert sent.json()["task_id"] == again.json()["task_id"]
    assert sent.json()["state"] == "submitted"

    mine = (await gateway.get("/api/v1/self/me/corrections", headers=session)).json()
    assert [(c["task_id"], c["state"], [i["item"] for i in c["items"]]) for c in mine] == [
        (sent.json()["task_id"], "submitted", ["phone"])
    ]
    record = (await gateway.get("/api/v1/self/me", headers=session)).json()
    kinds = {r["kind"]: r for r in record["reminders"]}
    assert "correction_pending" in kinds and "联系电话" in kinds["correction_pending"]["text"]
    assert not [r for r in record["reminders"] if r["item"] == "phone"]  # not asked again

    platform = bearer(token_for(Role.PLATFORM, scope="5201", username="demo-platform"))
    queue = await gateway.get("/api/v1/survey/tasks", params={"channel": "self"}, headers=platform)
    assert [(t["task_id"], t["channel"], t["state"]) for t in queue.json()["items"]] == [
        (sent.json()["task_id"], "self", "submitted")
    ]


async def test_identity_items_are_for_the_counter_and_bad_values_are_refused_per_item(
    gateway: httpx.AsyncClient,
) -> None:
    session = bearer((await card_session(gateway)).json()["access_token"])
    name = await gateway.post(
        "/api/v1/self/me/corrections",
        headers=session,
        json={"client_id": str(uuid4()), "items": {"name": "王伟伟"}},
    )
    assert assert_problem(name, 422, "counter-only-items")["items"] == ["name"]
    phone = await gateway.post(
        "/api/v1/self/me/corrections",
        headers=session,
        json={"client_id": str(uuid4()), "items": {"phone": "123"}},
    )
    assert_problem(phone, 422, "invalid-items")
    assert (await gateway.get("/api/v1/self/me/corrections", headers=session)).json() == []
