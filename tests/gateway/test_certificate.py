"""The proof of insurance (参保证明, api.md "Self-service"): a citizen's session downloads it as a
PDF with a verification code and a QR code, and anyone checks it at `GET /api/v1/verify/{code}`
without a login; what the paper said at issue is what the check answers. Read back with pypdf
(text) and zxing-cpp (the QR code, from the page pypdfium2 renders): nothing decoded by hand.
And the limits on what anyone may try without a password: verifications per address, sessions
per ID number and per kiosk."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import date
from uuid import UUID

import httpx
import pypdfium2
import pytest
import sqlalchemy as sa
import zxingcpp
from fastapi import FastAPI
from pypdf import PdfReader
from sqlalchemy.exc import DBAPIError

from canbao_gateway import certificate, throttling
from canbao_gateway.tables import audit_log, certificates
from canbao_platform.db import Database
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.services import gateway_over, identity_app, matching_app
from tests.gateway.test_self_service import KIOSK, MOBILE, PERSON, card_session, kiosk_token
from tests.gateway.test_self_service import collections_kafka as collections_kafka
from tests.gateway.test_self_service import gateway as gateway
from tests.gateway.test_self_service import kiosk as kiosk
from tests.gateway.test_self_service import people as people
from tests.gateway.test_self_service import survey_app as survey_app
from tests.gateway.test_self_service import survey_db as survey_db
from tests.gateway.test_self_service import survey_url as survey_url
from tests.identity.conftest import Harness, change
from tests.identity.conftest import harness as harness
from tests.identity.conftest import identity_db as identity_db
from tests.identity.test_registry import ac01
from tests.matching.conftest import matching_db as matching_db
from tests.matching.test_ground_truth import feed

NANMING = PERSON[:6]
CODE = re.compile(r"验证码[：:]\s*([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")


@pytest.fixture
async def insured(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    matching_db: Database,
    survey_app: FastAPI,
    people: dict[str, UUID],
    kiosk: None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway, with PERSON enrolled in the employee pension by a unit since 2005 and
    matching's verdict on everyone."""
    enrolment = {
        "aac001": "P1",
        "aae140": "110",
        "aab301": NANMING,
        "aab001": "U1",
        "aac008": "1",
        "aac030": date(2005, 1, 1),
    }
    await harness.apply(
        [change("si_core.ac01", ac01(PERSON, aab301=NANMING)), change("si_core.ac02", enrolment)]
    )
    await feed(matching_db, harness.published)
    apps = {
        "identity": identity_app(harness),
        "matching": matching_app(matching_db),
        "survey": survey_app,
    }
    async for client in gateway_over(gateway_url, test_clock, settings=MOBILE, **apps):
        yield client


def read_back(pdf: bytes) -> tuple[str, list[str]]:
    """The PDF's text, and what the QR codes on its first page say."""
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[0].render(scale=3).to_pil()
    finally:
        document.close()
    return text, [found.text for found in zxingcpp.read_barcodes(image)]


async def test_the_certificate_says_the_statuses_and_verifies_by_its_code_or_qr(
    insured: httpx.AsyncClient, gateway_db: Database
) -> None:
    session = bearer((await card_session(insured)).json()["access_token"])
    record = (await insured.get("/api/v1/self/me", headers=session)).json()
    assert record["statuses"]["pension"] == "11", record

    pdf = await insured.get("/api/v1/self/me/certificate.pdf", headers=session)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["cache-control"] == "no-store"
    text, qr_codes = read_back(pdf.content)
    assert "社会保险参保证明" in text
    assert "王伟" in text and PERSON in text  # the citizen's own paper: in clear
    assert "城镇企业职工基本养老保险（11）" in text  # the registry's status
    assert "参保缴费" in text and "2005-01-01" in text  # the business system's enrolment
    found = CODE.search(text)
    assert found is not None, text
    code = found.group(1)
    assert qr_codes == [f"http://127.0.0.1:8000/api/v1/verify/{code.replace('-', '')}"]

    async with httpx.AsyncClient(transport=insured._transport, base_url="http://test") as anyone:
        checked = await anyone.get(f"/api/v1/verify/{code}")
        assert checked.status_code == 200, checked.text
        body = checked.json()
        assert body["genuine"] is True and body["code"] == code
        assert body["name"] == "王*" and body["id_number"] == PERSON[:4] + "*" * 10 + PERSON[-4:]
        assert body["statuses"] == record["statuses"]
        assert body["status_labels"]["pension"] == "城镇企业职工基本养老保险"
        assert body["channel"] == "kiosk"
        assert "王伟" not in checked.text and PERSON not in checked.text
        # As someone types it off the paper: lower case, no dashes, O for 0 and l for 1.
        typed = code.replace("-", "").lower().replace("0", "o").replace("1", "l")
        assert (await anyone.get(f"/api/v1/verify/{typed}")).json()["code"] == code
        for wrong in ("0000-0000-0000-0000", "not-a-code", "U" * 16):
            assert_problem(
                await anyone.get(f"/api/v1/verify/{wrong}"), 404, "certificate-not-found"
            )

    async with gateway_db.engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(
                    audit_log.c.endpoint,
                    audit_log.c.staff,
                    audit_log.c.purpose,
                    audit_log.c.outcome,
                ).order_by(audit_log.c.id)
            )
        ).all()
    checks = [(r.endpoint, r.staff, r.outcome) for r in rows if r.purpose == "certificate_check"]
    verify = "GET /api/v1/verify/{code}"
    assert checks == [(verify, "anonymous", "ok")] * 2 + [(verify, "anonymous", "not_found")] * 3
    assert ("GET /api/v1/self/me/certificate.pdf", f"kiosk:{KIOSK}", "self_service", "ok") in [
        tuple(r) for r in rows
    ]


async def test_a_certificate_once_issued_is_never_changed(
    insured: httpx.AsyncClient, gateway_db: Database
) -> None:
    session = bearer((await card_session(insured)).json()["access_token"])
    assert (
        await insured.get("/api/v1/self/me/certificate.pdf", headers=session)
    ).status_code == 200
    for statement in (
        sa.update(certificates).values(statuses={"pension": "11"}),
        sa.delete(certificates),
    ):
        with pytest.raises(DBAPIError, match="insert-only"):
            async with gateway_db.engine.begin() as connection:
                await connection.execute(statement)


async def test_no_certificate_before_the_registry_has_a_verdict(
    gateway: httpx.AsyncClient,
) -> None:
    # `gateway`: matching has heard of nobody yet.
    session = bearer((await card_session(gateway)).json()["access_token"])
    found = await gateway.get("/api/v1/self/me/certificate.pdf", headers=session)
    assert_problem(found, 409, "no-verdict-yet")


def test_codes_are_random_crockford_digits_read_as_typed() -> None:
    codes = {certificate.new_code() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(len(c) == 16 and set(c) <= set(certificate.ALPHABET) for c in codes)
    code = "7K3MQ9XA2B4THN0P"
    assert certificate.formatted(code) == "7K3M-Q9XA-2B4T-HN0P"
    assert certificate.normalise(" 7k3m-q9xa 2b4t-hnop ") == code
    assert certificate.normalise("7K3M-Q9XA-2B4T-HN0") is None  # a digit short
    assert certificate.normalise("7K3M-Q9XA-2B4T-HNUP") is None  # U is no Crockford digit


async def test_verifications_are_limited_per_address(
    gateway: httpx.AsyncClient, test_clock: Clock
) -> None:
    limit = throttling.VERIFICATIONS_PER_CLIENT
    for _ in range(limit.most):
        assert (await gateway.get("/api/v1/verify/0000-0000-0000-0000")).status_code == 404
    refused = await gateway.get("/api/v1/verify/0000-0000-0000-0000")
    body = assert_problem(refused, 429, "verify-throttled")
    assert 0 < int(refused.headers["Retry-After"]) <= limit.window.total_seconds()
    assert body["retry_after"] == int(refused.headers["Retry-After"])
    test_clock.advance(seconds=limit.window.total_seconds())
    assert (await gateway.get("/api/v1/verify/0000-0000-0000-0000")).status_code == 404


async def test_sessions_are_limited_per_id_number_and_refusals_audited(
    gateway: httpx.AsyncClient, gateway_db: Database, test_clock: Clock
) -> None:
    limit = throttling.SESSIONS_PER_NUMBER
    for _ in range(limit.most):  # someone guessing the name on a card's number
        assert_problem(await card_session(gateway, name="李四"), 403, "name-mismatch")
    assert_problem(await card_session(gateway), 429, "self-service-throttled")
    async with gateway_db.engine.connect() as connection:
        newest = sa.select(audit_log.c.outcome).order_by(audit_log.c.id.desc()).limit(1)
        last = (await connection.execute(newest)).scalar()
    assert last == "refused"
    test_clock.advance(seconds=limit.window.total_seconds())
    assert (await card_session(gateway)).status_code == 201


async def test_sessions_are_limited_per_kiosk(
    gateway: httpx.AsyncClient, gateway_db: Database, test_clock: Clock
) -> None:
    limit = throttling.SESSIONS_PER_KIOSK
    async with gateway_db.engine.begin() as connection:  # the kiosk's hour so far
        await connection.execute(
            sa.text(
                "INSERT INTO throttle_hits (scope, key, hit_at) "
                "SELECT :scope, :key, :at FROM generate_series(1, :most)"
            ),
            {"scope": limit.scope, "key": KIOSK, "at": test_clock(), "most": limit.most},
        )
    token = await kiosk_token(gateway)
    refused = await gateway.post(
        "/api/v1/self/session", headers=bearer(token), json={"id_number": PERSON, "name": "王伟"}
    )
    assert_problem(refused, 429, "self-service-throttled")
