"""Partner departments on the public interface (api.md "Partner departments"): a department's
program logs in with client credentials, sends batches of its own data (streamed through to
identity, checked row by row, idempotent) and compares numbers' statuses, limited to what its
client may do and see, its own department only, every call audited. Identity and matching run
for real behind the gateway (tests/gateway/services.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from canbao_gateway import clients
from canbao_gateway.clients import ClientKind, Field, Permission
from canbao_gateway.staff import Role
from canbao_gateway.tables import audit_log
from canbao_gateway.tables import clients as clients_table
from canbao_identity.tables import partner_batches
from canbao_platform.db import Database
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.people import NANMING, citizen
from tests.gateway.services import gateway_over, hukou, identity_app, matching_app
from tests.identity.conftest import Harness, change
from tests.identity.conftest import harness as harness  # identity's and matching's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.identity.test_partner_batches import records
from tests.identity.test_registry import ac01
from tests.matching.conftest import matching_db as matching_db
from tests.matching.test_ground_truth import feed

INSURED = citizen(NANMING, "19800101", "011")
UNREGISTERED = citizen(NANMING, "19700707", "041")
CIVIL, EDUCATION, SECRET = "civil-01", "education-01", "partner-secret-of-32-characters-x"
BATCH = "/api/v1/partners/civil/batches"
COMPARE = "/api/v1/partners/civil/comparisons"


@pytest.fixture
async def partners(gateway_db: Database) -> None:
    async with gateway_db.engine.begin() as connection:
        await clients.register(
            connection,
            client_id=CIVIL,
            secret=SECRET,
            kind=ClientKind.PARTNER,
            name="南明区民政局",
            region="52",
            department="civil",
            permissions=frozenset({Permission.BATCHES, Permission.COMPARISONS}),
            fields=frozenset({Field.REGISTRATION, Field.PENSION, Field.MEDICAL}),
        )
        await clients.register(
            connection,
            client_id=EDUCATION,
            secret=SECRET,
            kind=ClientKind.PARTNER,
            name="教育局",
            region="52",
            department="education",
            permissions=frozenset({Permission.BATCHES}),
        )


@pytest.fixture
async def gateway(
    gateway_url: str, test_clock: Clock, harness: Harness, matching_db: Database, partners: None
) -> AsyncIterator[httpx.AsyncClient]:
    """INSURED enrolled in the employee pension since 2005, with matching's verdict."""
    enrolment = {
        "aac001": "P1",
        "aae140": "110",
        "aab301": NANMING,
        "aab001": "U1",
        "aac008": "1",
        "aac030": date(2005, 1, 1),
    }
    await harness.apply(
        [
            hukou(INSURED, NANMING),
            change("si_core.ac01", ac01(INSURED, aab301=NANMING)),
            change("si_core.ac02", enrolment),
        ]
    )
    await feed(matching_db, harness.published)
    apps = {"identity": identity_app(harness), "matching": matching_app(matching_db)}
    async for client in gateway_over(gateway_url, test_clock, **apps):
        yield client


async def token(gateway: httpx.AsyncClient, client_id: str = CIVIL, secret: str = SECRET) -> str:
    answer = await gateway.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert answer.status_code == 200, answer.text
    value: str = answer.json()["access_token"]
    return value


async def streamed(text: str, size: int = 64) -> AsyncIterator[bytes]:
    """The body in small chunks, as a program streams a file (chunked transfer encoding)."""
    data = text.encode()
    for start in range(0, len(data), size):
        yield data[start : start + size]


def batch_headers(access: str, key: str, media: str = "text/csv") -> dict[str, str]:
    return bearer(access) | {"Idempotency-Key": key, "Content-Type": media}


async def audit_rows(database: Database) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        return [dict(r) for r in (await connection.execute(query)).mappings().all()]


DIBAO = (
    "sfzh,xm,xzqh,ksrq,jsrq\n"
    f"{INSURED},王伟,{NANMING},2024-01-01,\n"
    f"{UNREGISTERED},李四,{NANMING},2024-02-01,\n"
    f"{UNREGISTERED[:-1]}0,张三,{NANMING},2024-02-01,\n"
    f"{UNREGISTERED},,{NANMING},2024-02-01,\n"
)


async def test_a_batch_streams_in_counts_every_row_and_replays_by_key(
    gateway: httpx.AsyncClient, gateway_db: Database, harness: Harness
) -> None:
    access = await token(gateway)
    sent = await gateway.post(BATCH, content=streamed(DIBAO), headers=batch_headers(access, "b1"))
    assert sent.status_code == 202, sent.text
    batch = sent.json()
    assert (batch["received"], batch["accepted"], batch["rejected"]) == (4, 2, 2)
    assert batch["state"] == "received" and batch["dataset"] == "dibao"
    assert [(r["line"], [x["code"] for x in r["reasons"]]) for r in batch["rejects"]] == [
        (4, ["invalid-id-number"]),
        (5, ["required"]),
    ]

    again = await gateway.post(BATCH, content=DIBAO, headers=batch_headers(access, "b1"))
    assert again.status_code == 202
    assert again.json()["batch_id"] == batch["batch_id"] and again.json()["replayed"] is True

    read = await gateway.get(f"{BATCH}/{batch['batch_id']}", headers=bearer(access))
    assert read.status_code == 200 and read.json()["accepted"] == 2
    rejects = await gateway.get(f"{BATCH}/{batch['batch_id']}/rejects.csv", headers=bearer(access))
    assert rejects.status_code == 200 and rejects.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(rejects.content.decode("utf-8-sig"))))
    assert rows[0] == ["行号", "字段", "原因代码", "原因"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        ("4", "sfzh", "invalid-id-number"),
        ("5", "xm", "required"),
    ]

    await harness.drain()  # the accepted rows are a source of the registry like a CDC table
    assert await harness.person_of(UNREGISTERED) is not None
    audited = [
        (r["staff"], r["role"], r["purpose"], r["outcome"], r["person_id"])
        for r in await audit_rows(gateway_db)
    ]
    assert audited == [(CIVIL, "partner", "partner_batch", "ok", None)] * 2


async def test_a_batch_is_refused_whole_only_for_what_no_row_can_fix(
    gateway: httpx.AsyncClient,
) -> None:
    access = await token(gateway)
    no_key = await gateway.post(
        BATCH, content=DIBAO, headers=bearer(access) | {"Content-Type": "text/csv"}
    )
    assert_problem(no_key, 400, "idempotency-key-required")
    excel = await gateway.post(
        BATCH,
        content=b"PK\x03\x04",
        headers=batch_headers(
            access, "b2", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        ),
    )
    assert_problem(excel, 415, "unsupported-media-type")
    header = await gateway.post(
        BATCH, content="身份证号,姓名\n", headers=batch_headers(access, "b3")
    )
    assert assert_problem(header, 422, "batch-header-invalid")["unknown"] == ["身份证号", "姓名"]
    unknown = await gateway.post(
        f"{BATCH}?dataset=students", content=DIBAO, headers=batch_headers(access, "b4")
    )
    assert_problem(unknown, 404, "dataset-unknown")
    reused = await gateway.post(BATCH, content=DIBAO, headers=batch_headers(access, "b5"))
    assert reused.status_code == 202
    other = await gateway.post(
        BATCH, content=DIBAO.replace("李四", "李五"), headers=batch_headers(access, "b5")
    )
    assert_problem(other, 409, "idempotency-key-reused")


async def test_a_gbk_batch_is_read_declared_or_detected_and_says_which(
    gateway: httpx.AsyncClient, harness: Harness
) -> None:
    access = await token(gateway)
    gbk = DIBAO.encode("gb18030")

    async def chunked(data: bytes, size: int = 5) -> AsyncIterator[bytes]:
        for start in range(0, len(data), size):  # cut inside two-byte characters
            yield data[start : start + size]

    declared = await gateway.post(
        BATCH, content=chunked(gbk), headers=batch_headers(access, "g1", "text/csv; charset=GBK")
    )
    assert declared.status_code == 202, declared.text
    batch = declared.json()
    assert (batch["encoding"], batch["encoding_source"]) == ("gb18030", "declared")
    assert (batch["accepted"], batch["rejected"]) == (2, 2)

    detected = await gateway.post(BATCH, content=chunked(gbk), headers=batch_headers(access, "g2"))
    assert detected.status_code == 202, detected.text
    read = await gateway.get(f"{BATCH}/{detected.json()['batch_id']}", headers=bearer(access))
    assert read.status_code == 200
    assert (read.json()["encoding"], read.json()["encoding_source"]) == ("gb18030", "detected")
    assert read.json()["accepted"] == 2

    await harness.drain()
    assert {r["claims"]["name"] for r in await records(harness, "civil.dibao")} == {"王伟", "李四"}

    big5 = await gateway.post(
        BATCH, content=gbk, headers=batch_headers(access, "g3", "text/csv; charset=big5")
    )
    assert assert_problem(big5, 415, "unsupported-charset")["accepted"] == [
        "utf-8",
        "gb18030",
        "gbk",
        "gb2312",
    ]
    async with harness.db.engine.connect() as connection:  # nothing stored for it
        keys = await connection.scalars(sa.select(partner_batches.c.idempotency_key))
        assert sorted(keys) == ["g1", "g2"]


async def test_a_partner_reaches_its_own_department_and_only_what_it_may_do(
    gateway: httpx.AsyncClient, token_for: Any
) -> None:
    civil, education = await token(gateway), await token(gateway, EDUCATION)
    theirs = await gateway.post(
        "/api/v1/partners/education/batches", content="xh\n", headers=batch_headers(civil, "x")
    )
    assert_problem(theirs, 403, "not-your-department")
    compared = await gateway.post(
        "/api/v1/partners/education/comparisons",
        json={"id_numbers": [INSURED]},
        headers=bearer(education),
    )
    assert_problem(compared, 403, "permission-not-granted")
    batch = await gateway.post(BATCH, content=DIBAO, headers=batch_headers(civil, "c1"))
    other = await gateway.get(
        f"/api/v1/partners/education/batches/{batch.json()['batch_id']}", headers=bearer(education)
    )
    assert_problem(other, 404, "batch-unknown")

    for role in Role:  # staff tokens are no partner's
        refused = await gateway.post(
            COMPARE, json={"id_numbers": [INSURED]}, headers=bearer(token_for(role))
        )
        assert_problem(refused, 403, "role-not-allowed")
    assert_problem(
        await gateway.post(COMPARE, json={"id_numbers": [INSURED]}), 401, "unauthenticated"
    )
    # …and a partner's token reaches no staff route.
    assert_problem(
        await gateway.get(f"/api/v1/persons/{INSURED}", headers=bearer(civil)),
        403,
        "role-not-allowed",
    )
    assert_problem(
        await gateway.get("/api/v1/self/me", headers=bearer(civil)), 403, "role-not-allowed"
    )


async def test_a_comparison_answers_each_number_with_what_the_partner_may_see(
    gateway: httpx.AsyncClient, gateway_db: Database
) -> None:
    access = await token(gateway)
    asked = [INSURED, "52010219800101011", UNREGISTERED, INSURED.lower()]
    answer = await gateway.post(COMPARE, json={"id_numbers": asked}, headers=bearer(access))
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [(i["index"], i["outcome"]) for i in items] == [
        (0, "found"),
        (1, "invalid_id_number"),
        (2, "not_registered"),
        (3, "found"),
    ]
    found = items[0]
    assert found["id_number"] == f"{INSURED[:4]}{'*' * 10}{INSURED[-4:]}"
    assert set(found["statuses"]) == {"pension", "medical"}  # the client's fields, no others
    assert found["statuses"]["pension"] is not None and found["registration"] is not None
    assert found["deceased"] is None  # not among its fields
    assert items[1]["defects"] == ["bad_length"]

    audited = [
        (r["purpose"], r["outcome"], r["person_id"] is not None)
        for r in await audit_rows(gateway_db)
    ]
    assert sorted(audited) == [
        ("partner_comparison", "not_found", False),
        ("partner_comparison", "ok", True),
    ]

    too_many = await gateway.post(
        COMPARE, json={"id_numbers": [INSURED] * 10_001}, headers=bearer(access)
    )
    assert too_many.status_code == 422


async def test_a_secret_rotates_with_grace_or_at_once(
    gateway: httpx.AsyncClient, gateway_db: Database, test_clock: Clock
) -> None:
    before = await token(gateway)
    async with gateway_db.engine.begin() as connection:
        await clients.rotate_secret(
            connection,
            CIVIL,
            secret="new-secret-of-32-characters-xxxx",
            grace=timedelta(days=1),
            now=test_clock(),
        )
    await token(gateway)  # the old secret, within its grace
    await token(gateway, secret="new-secret-of-32-characters-xxxx")
    still = await gateway.post(COMPARE, json={"id_numbers": [INSURED]}, headers=bearer(before))
    assert still.status_code == 200  # a rotation with grace stops no token

    async with gateway_db.engine.begin() as connection:  # leaked: no grace
        await clients.rotate_secret(
            connection,
            CIVIL,
            secret="third-secret-of-32-characters-xx",
            grace=timedelta(0),
            now=test_clock(),
        )
    refused = await gateway.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": CIVIL, "client_secret": SECRET},
    )
    assert_problem(refused, 401, "invalid-client")
    revoked = await gateway.post(COMPARE, json={"id_numbers": [INSURED]}, headers=bearer(before))
    assert_problem(revoked, 401, "token-revoked")


async def test_taking_a_permission_away_stops_the_tokens_that_had_it(
    gateway: httpx.AsyncClient, gateway_db: Database
) -> None:
    access = await token(gateway)
    async with gateway_db.engine.begin() as connection:
        await connection.execute(
            sa.update(clients_table)
            .where(clients_table.c.client_id == CIVIL)
            .values(permissions=["batches"])
        )
    stale = await gateway.post(COMPARE, json={"id_numbers": [INSURED]}, headers=bearer(access))
    assert_problem(stale, 401, "token-revoked")
    fresh = await gateway.post(
        COMPARE, json={"id_numbers": [INSURED]}, headers=bearer(await token(gateway))
    )
    assert_problem(fresh, 403, "permission-not-granted")


@pytest.fixture
async def behind_mtls(
    gateway_url: str, test_clock: Clock, harness: Harness, matching_db: Database, partners: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway as production runs it (GATEWAY_PARTNER_MTLS): the test client's address,
    192.0.2.10, is the ingress's."""
    await feed(matching_db, harness.published)
    apps = {"identity": identity_app(harness), "matching": matching_app(matching_db)}
    settings = {"partner_mtls": True, "trusted_proxies": ["192.0.2.0/28"]}
    async for client in gateway_over(gateway_url, test_clock, settings=settings, **apps):
        yield client


async def test_behind_the_mtls_ingress_a_token_needs_its_own_certificate(
    behind_mtls: httpx.AsyncClient,
) -> None:
    access = bearer(await token(behind_mtls))
    ask = {"id_numbers": [INSURED]}
    verified = {"ssl-client-verify": "SUCCESS"}
    for headers, why in (
        ({}, "no verified client certificate"),
        (
            {
                "ssl-client-verify": "FAILED:unable to verify",
                "ssl-client-subject-dn": f"CN={CIVIL}",
            },
            "no verified client certificate",
        ),
        (
            verified | {"ssl-client-subject-dn": "CN=someone-else,O=Civil Affairs"},
            "the certificate is not this client's",
        ),
    ):
        refused = await behind_mtls.post(COMPARE, json=ask, headers=access | headers)
        assert assert_problem(refused, 403, "client-certificate-required")["detail"] == why
    for subject in (
        f"CN={CIVIL},OU=Dibao,O=Nanming Civil Affairs",
        f"/O=Nanming Civil Affairs/CN={CIVIL}",
    ):
        answered = await behind_mtls.post(
            COMPARE, json=ask, headers=access | verified | {"ssl-client-subject-dn": subject}
        )
        assert answered.status_code == 200, answered.text


async def test_certificate_headers_count_only_from_the_ingress(
    gateway_url: str, test_clock: Clock, harness: Harness, matching_db: Database, partners: None
) -> None:
    apps = {"identity": identity_app(harness), "matching": matching_app(matching_db)}
    settings = {"partner_mtls": True, "trusted_proxies": ["10.42.0.0/24"]}  # not the client's
    async for client in gateway_over(gateway_url, test_clock, settings=settings, **apps):
        headers = {"ssl-client-verify": "SUCCESS", "ssl-client-subject-dn": f"CN={CIVIL}"}
        forged = await client.post(
            COMPARE, json={"id_numbers": [INSURED]}, headers=bearer(await token(client)) | headers
        )
        assert assert_problem(forged, 403, "client-certificate-required")["detail"] == (
            "partners connect through the mTLS ingress"
        )
