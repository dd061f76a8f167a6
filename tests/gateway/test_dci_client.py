"""The partner client a department may copy (stack/canbao_stack/dci_client.py), against the real
gateway: it signs as the gateway verifies, and it verifies what the registry signs — its answers
and the callbacks the department's own server receives. Every message is also held against the
standard's documents (dci_standard, through the gateway fixture and PartnerSystem)."""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canbao_gateway import clients
from canbao_gateway.clients import ClientKind, Permission
from canbao_platform.db import Database
from canbao_stack.dci_client import DciClient, SignatureRefused
from tests.gateway.conftest import Clock
from tests.gateway.test_dci import FIELDS, INSURED, REGISTRY_KEY, SECRET, gateway_with
from tests.gateway.test_dci_callbacks import PartnerSystem
from tests.gateway.test_dci_callbacks import partner as partner
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's and matching's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.matching.conftest import matching_db as matching_db

DEPARTMENT = "civil-client"
DEPARTMENT_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
async def registry(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    matching_db: Database,
    gateway_db: Database,
    partner: PartnerSystem,
) -> AsyncIterator[DciClient]:
    """The client, as the department runs it, of the gateway that registered its public key."""
    public = DEPARTMENT_KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    async with gateway_db.engine.begin() as connection:
        await clients.register(
            connection,
            client_id=DEPARTMENT,
            secret=SECRET,
            kind=ClientKind.PARTNER,
            name="民政",
            region="52",
            department="civil",
            permissions=frozenset({Permission.SEARCH, Permission.SUBSCRIBE}),
            fields=FIELDS,
            callback_urls=(partner.base,),
            signing_public_key=base64.b64encode(public).decode(),
        )
    async for gateway in gateway_with(gateway_url, test_clock, harness, matching_db):
        async with DciClient(
            "http://test",
            DEPARTMENT,
            SECRET,
            signing_key=DEPARTMENT_KEY,
            registry_key=REGISTRY_KEY,
            http=gateway,
            clock=test_clock,
        ) as client:
            yield client


async def test_the_partner_client_searches_subscribes_and_checks_the_registrys_signature(
    registry: DciClient, partner: PartnerSystem
) -> None:
    answer = await registry.search_by_ssn([INSURED], transaction_id="c-1")  # signed, verified
    [found] = answer["message"]["search_response"]
    [record] = found["data"]["reg_records"]
    assert record["member_identifier"][0]["identifier_value"] == INSURED

    ack = (
        await registry.search_later(
            [{"query_type": "idtype-value", "query": {"type": "SSN", "value": INSURED}}],
            transaction_id="c-2",
        )
    )["message"]
    assert ack["ack_status"] == "ACK"
    path, callback = await partner.next()
    assert path == "/dci/on-search"
    assert registry.verify(callback)["message"]["correlation_id"] == ack["correlation_id"]
    tampered = copy.deepcopy(callback)
    tampered["message"]["search_response"][0]["data"]["reg_records"] = []
    with pytest.raises(SignatureRefused):
        registry.verify(tampered)

    status = await registry.txn_status("c-2")
    txn = status["message"]["txnstatus_response"]["txn_status"]
    assert [r["status"] for r in txn["search_response"]] == ["succ"]

    assert (await registry.subscribe_to_ssn(INSURED))["message"]["ack_status"] == "ACK"
    path, subscribed = await partner.next()
    assert path == "/dci/on-subscribe"
    [made] = registry.verify(subscribed)["message"]["subscribe_response"]
    code = made["subscriptions"][0]["code"]
    assert (await registry.unsubscribe([code]))["message"]["ack_status"] == "ACK"
    path, cancelled = await partner.next()
    assert path == "/dci/on-unsubscribe"
    assert registry.verify(cancelled)["message"]["subscription_status"] == [
        {"code": code, "status": "unsubscribe"}
    ]


async def test_a_client_without_the_registered_key_is_refused(
    registry: DciClient,
) -> None:
    registry.signing_key = Ed25519PrivateKey.generate()  # not the key the registry knows
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await registry.search_by_ssn([INSURED])
    assert refused.value.response.status_code == 403
    assert refused.value.response.json()["errors"][0]["code"] == "err.signature.invalid"
