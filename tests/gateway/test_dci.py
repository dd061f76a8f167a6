"""The DCI Social Registry API v1.0.0 (api.md "Partner departments"; dci.py, dci_routes.py):
signed envelopes both ways, the three query types over what the client may see, the standard's
reason codes for what is refused, one execution per message_id, and the status of earlier
transactions. Identity and matching run for real behind the gateway."""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canbao_gateway import clients, dci
from canbao_gateway.clients import ClientKind, Field, Permission
from canbao_gateway.tables import audit_log
from canbao_gateway.tables import clients as clients_table
from canbao_platform.db import Database
from canbao_platform.service_tokens import DEVELOPMENT_PRIVATE_KEY, private_key
from tests.gateway import dci_standard
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.people import NANMING, YUNYAN, citizen
from tests.gateway.services import gateway_over, hukou, identity_app, matching_app
from tests.gateway.test_partners import token
from tests.identity.conftest import Harness, change
from tests.identity.conftest import harness as harness  # identity's and matching's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.identity.test_registry import ac01
from tests.matching.conftest import matching_db as matching_db
from tests.matching.test_ground_truth import feed

INSURED = citizen(NANMING, "19800101", "011")  # a man, pension since 2005
WOMAN = citizen(NANMING, "19900202", "022")
ELSEWHERE = citizen(YUNYAN, "19800101", "031")
SEARCHER, SIGNER, COUNTER = "civil-search", "civil-signed", "civil-counter"
SECRET = "partner-secret-of-32-characters-x"
SEARCH = "/api/v1/partners/dci/registry/sync/search"
STATUS = "/api/v1/partners/dci/registry/sync/txn/status"
PARTNER_KEY = Ed25519PrivateKey.generate()
REGISTRY_KEY = private_key(DEVELOPMENT_PRIVATE_KEY).public_key()
FIELDS = frozenset(
    {
        Field.ID_NUMBER,
        Field.GENDER,
        Field.BIRTH_YEAR,
        Field.REGION,
        Field.REGISTRATION,
        Field.PENSION,
        Field.MEDICAL,
    }
)


@pytest.fixture
async def searchers(gateway_db: Database) -> None:
    async with gateway_db.engine.begin() as connection:
        for client_id, permissions in (
            (SEARCHER, {Permission.SEARCH}),
            (SIGNER, {Permission.SEARCH}),
            (COUNTER, {Permission.COMPARISONS}),
        ):
            await clients.register(
                connection,
                client_id=client_id,
                secret=SECRET,
                kind=ClientKind.PARTNER,
                name="民政",
                region="52",
                department="civil",
                permissions=frozenset(permissions),
                fields=FIELDS,
            )
        public = PARTNER_KEY.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        await connection.execute(
            sa.update(clients_table)
            .where(clients_table.c.client_id == SIGNER)
            .values(signing_public_key=base64.b64encode(public).decode())
        )


async def seed(harness: Harness, matching_db: Database) -> None:
    """INSURED (a man of Nanming district, pension since 2005), WOMAN (Nanming, born 1990) and
    ELSEWHERE (a man of Yunyan district), in identity and with matching's verdicts."""
    enrolment = {
        "aac001": "P1",
        "aae140": "110",
        "aab301": NANMING,
        "aab001": "U1",
        "aac008": "1",
        "aac030": date(2005, 1, 1),
    }
    woman = change(
        "hukou.person",
        {
            "sfzh": WOMAN,
            "xm": "李娜",
            "xb": "2",
            "csrq": date(1990, 2, 2),
            "hjdz_xzqh": NANMING,
            "hjdz": "贵州省贵阳市南明区某街道3号",
            "ryzt": "0",
        },
    )
    await harness.apply(
        [
            hukou(INSURED, NANMING),
            change("si_core.ac01", ac01(INSURED, aab301=NANMING)),
            change("si_core.ac02", enrolment),
            woman,
            hukou(ELSEWHERE, YUNYAN, name="张三"),
        ]
    )
    await feed(matching_db, harness.published)


async def gateway_with(
    gateway_url: str, test_clock: Clock, harness: Harness, matching_db: Database
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway over identity and matching, knowing the people of `seed`; every DCI message
    to and from it held against the standard's document (dci_standard)."""
    await seed(harness, matching_db)
    apps = {"identity": identity_app(harness), "matching": matching_app(matching_db)}
    async for client in gateway_over(gateway_url, test_clock, **apps):
        yield dci_standard.watch(client)


@pytest.fixture
async def gateway(
    gateway_url: str, test_clock: Clock, harness: Harness, matching_db: Database, searchers: None
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in gateway_with(gateway_url, test_clock, harness, matching_db):
        yield client


def envelope(
    sender: str,
    criteria: list[dict[str, Any]],
    *,
    message_id: str = "m-1",
    action: str = "search",
    transaction: str = "t-1",
) -> dict[str, Any]:
    requests = [
        {"reference_id": f"r-{i}", "timestamp": "2026-12-04T09:00:00+08:00", "search_criteria": c}
        for i, c in enumerate(criteria, 1)
    ]
    return {  # unsigned: no signature (MsgSignature is a string when present)
        "header": {
            "version": "1.0.0",
            "message_id": message_id,
            "message_ts": "2026-12-04T09:00:00+08:00",
            "action": action,
            "sender_id": sender,
            "receiver_id": "canbao.registry",
            "total_count": len(requests),
            "is_msg_encrypted": False,
        },
        "message": {"transaction_id": transaction, "search_request": requests},
    }


def by_number(number: str) -> dict[str, Any]:
    return {"query_type": "idtype-value", "query": {"type": "SSN", "value": number}}


def predicate(*expressions: tuple[str, str, Any], page_size: int = 10) -> dict[str, Any]:
    query = [
        {"seq_num": i, "expression1": {"attribute_name": a, "operator": o, "attribute_value": v}}
        for i, (a, o, v) in enumerate(expressions, 1)
    ]
    return {
        "query_type": "predicate",
        "query": query,
        "pagination": {"page_size": page_size, "page_number": 1},
    }


async def post(
    gateway: httpx.AsyncClient, path: str, body: dict[str, Any], sender: str = SEARCHER
) -> dict[str, Any]:
    access = await token(gateway, sender, SECRET)
    answer = await gateway.post(path, json=body, headers=bearer(access))
    assert answer.status_code == 200, answer.text
    signed: dict[str, Any] = answer.json()
    dci.verify(
        signed["signature"],
        signed["header"],
        signed["message"],
        key=REGISTRY_KEY,
        now=dci_now(signed),
    )  # every answer is the registry's, signed
    return signed


def dci_now(signed: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(signed["header"]["message_ts"].replace("Z", "+00:00"))


def attributes(record: dict[str, Any]) -> dict[str, Any]:
    return {a["name"]: a["value"] for a in record["additional_attributes"]}


async def test_a_search_by_number_answers_a_signed_record_of_what_the_client_may_see(
    gateway: httpx.AsyncClient, gateway_db: Database
) -> None:
    unknown_number = citizen(NANMING, "19700101", "099")
    criteria = [by_number(INSURED.lower()), by_number(unknown_number)]
    answer = await post(gateway, SEARCH, envelope(SEARCHER, criteria))
    header, message = answer["header"], answer["message"]
    assert (header["action"], header["status"], header["receiver_id"]) == (
        "on-search",
        "succ",
        SEARCHER,
    )
    assert message["transaction_id"] == "t-1" and message["correlation_id"]
    found, unknown = message["search_response"]
    assert found["status"] == "succ" and found["pagination"]["total_count"] == 1
    [record] = found["data"]["reg_records"]
    assert record["member_identifier"][0]["identifier_value"] == INSURED
    assert record["demographic_info"]["sex"] == "male"
    assert record["demographic_info"]["birth_year"] == 1980
    assert attributes(record)["pension"] is not None
    assert set(attributes(record)) == {"registration", "pension", "medical"}  # its fields only
    assert unknown["status"] == "succ" and unknown["data"]["reg_records"] == []
    async with gateway_db.engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(audit_log.c.purpose, audit_log.c.outcome).order_by(audit_log.c.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [("partner_search", "ok"), ("partner_search", "not_found")]


async def test_predicate_and_expression_find_the_same_people(gateway: httpx.AsyncClient) -> None:
    men_over_40 = predicate(("region", "eq", "520000"), ("gender", "eq", "male"), ("age", "ge", 40))
    expression = {
        "query_type": "expression",
        "query": {
            "type": "ns:org:QueryType:NoSql",
            "value": {
                "expression": {
                    "collection": "Member",
                    "query": {
                        "$and": [
                            {"region": {"$in": ["520102", "520103"]}},
                            {"gender": {"$eq": "male"}},
                            {"birth_year": {"$lte": date.today().year - 40}},
                        ]
                    },
                }
            },
        },
    }
    everyone = predicate(("region", "eq", "520102"), page_size=1)
    answer = await post(gateway, SEARCH, envelope(SEARCHER, [men_over_40, expression, everyone]))
    first, second, paged = answer["message"]["search_response"]
    numbers = [
        [r["member_identifier"][0]["identifier_value"] for r in item["data"]["reg_records"]]
        for item in (first, second)
    ]
    men = sorted([INSURED, ELSEWHERE])
    assert [sorted(n) for n in numbers] == [men, men]  # not the woman
    assert paged["pagination"] == {"page_size": 1, "page_number": 1, "total_count": 2}
    assert len(paged["data"]["reg_records"]) == 1


async def test_each_request_is_refused_on_its_own_with_the_standard_reason(
    gateway: httpx.AsyncClient,
) -> None:
    criteria = [
        predicate(("gender", "eq", "male")),  # no division named
        predicate(("region", "eq", "520102"), ("deceased", "eq", False)),  # not its field
        predicate(("region", "eq", "520102"), ("income", "lt", 5)),  # no such attribute
        {**predicate(("region", "eq", "520102")), "pagination": {"page_size": 5000}},
        by_number("52010219800101011"),  # 17 digits
        by_number(INSURED),
    ]
    body = envelope(SEARCHER, criteria)
    body["message"]["search_request"][-1]["reference_id"] = "r-1"  # a duplicate reference
    responses = (await post(gateway, SEARCH, body))["message"]["search_response"]
    assert [(r["status"], r.get("status_reason_code")) for r in responses] == [
        ("rjct", "rjct.search_criteria.invalid"),
        ("rjct", "rjct.search_criteria.invalid"),
        ("rjct", "rjct.search_criteria.invalid"),
        ("rjct", "rjct.pagination.invalid"),
        ("rjct", "rjct.search_criteria.invalid"),
        ("rjct", "rjct.reference_id.duplicate"),
    ]


async def test_a_header_is_refused_with_its_reason_code_and_an_unreadable_message_outright(
    gateway: httpx.AsyncClient,
) -> None:
    for change_to, code in (
        (("action", "subscribe"), "rjct.action.invalid"),
        (("version", "0.9"), "rjct.version.invalid"),
        (("total_count", 7), "rjct.total_count.invalid"),
        (("message_ts", "yesterday"), "rjct.message_ts.invalid"),
    ):
        body = envelope(SEARCHER, [by_number(INSURED)], message_id=f"m-{code}")
        body["header"][change_to[0]] = change_to[1]
        with dci_standard.deliberately_invalid():  # a wrong action, a timestamp that is none
            answer = await post(gateway, SEARCH, body)
        assert (answer["header"]["status"], answer["header"]["status_reason_code"]) == (
            "rjct",
            code,
        )

    access = await token(gateway, SEARCHER, SECRET)
    for change_to, code in (
        (("sender_id", "someone-else"), "err.sender_id.invalid"),
        (("receiver_id", "another.registry"), "err.receiver_id.invalid"),
        (("is_msg_encrypted", True), "err.encryption.invalid"),
    ):
        body = envelope(SEARCHER, [by_number(INSURED)])
        body["header"][change_to[0]] = change_to[1]
        refused = await gateway.post(SEARCH, json=body, headers=bearer(access))
        assert assert_problem(refused, 403, "dci-rejected")["errors"][0]["code"] == code
    other = await gateway.post(
        SEARCH,
        json=envelope(COUNTER, [by_number(INSURED)]),
        headers=bearer(await token(gateway, COUNTER, SECRET)),
    )
    assert_problem(other, 403, "permission-not-granted")


async def test_a_message_id_is_executed_once(gateway: httpx.AsyncClient) -> None:
    body = envelope(SEARCHER, [by_number(INSURED)], message_id="once")
    first = await post(gateway, SEARCH, body)
    again = await post(gateway, SEARCH, copy.deepcopy(body))
    assert again["message"]["correlation_id"] == first["message"]["correlation_id"]
    other = envelope(SEARCHER, [by_number(WOMAN)], message_id="once")
    refused = await post(gateway, SEARCH, other)
    assert refused["header"]["status_reason_code"] == "rjct.message_id.duplicate"


async def test_a_client_with_a_key_signs_every_message(
    gateway: httpx.AsyncClient, test_clock: Clock
) -> None:
    access = await token(gateway, SIGNER, SECRET)
    body = envelope(SIGNER, [by_number(INSURED)])
    unsigned = await gateway.post(SEARCH, json=body, headers=bearer(access))
    assert assert_problem(unsigned, 403, "dci-rejected")["errors"][0]["code"] == (
        "err.signature.missing"
    )
    body["signature"] = dci.sign(
        body["header"],
        body["message"],
        key=PARTNER_KEY,
        sender_id=SIGNER,
        key_id="k1",
        now=test_clock(),
    )
    signed = await gateway.post(SEARCH, json=body, headers=bearer(access))
    assert signed.status_code == 200 and signed.json()["header"]["status"] == "succ"
    body["message"]["search_request"][0]["search_criteria"] = by_number(WOMAN)  # tampered
    body["header"]["message_id"] = "m-2"
    tampered = await gateway.post(SEARCH, json=body, headers=bearer(access))
    assert assert_problem(tampered, 403, "dci-rejected")["errors"][0]["code"] == (
        "err.signature.invalid"
    )


async def test_the_status_of_a_transaction_is_the_clients_own(gateway: httpx.AsyncClient) -> None:
    criteria = [by_number(INSURED), predicate(("gender", "eq", "male"))]
    searched = await post(gateway, SEARCH, envelope(SEARCHER, criteria, transaction="t-9"))
    status_request = {
        "header": {
            "version": "1.0.0",
            "message_id": "s-1",
            "message_ts": "2026-12-04T09:00:00Z",
            "action": "txn-status",
            "sender_id": SEARCHER,
            "total_count": 1,
        },
        "message": {
            "transaction_id": "t-9",
            "txnstatus_request": {
                "reference_id": "q-1",
                "txn_type": "search",
                "attribute_type": "transaction_id",
                "attribute_value": "t-9",
            },
        },
    }
    answer = await post(gateway, STATUS, status_request)
    assert answer["header"]["action"] == "txn-on-status"
    status = answer["message"]["txnstatus_response"]["txn_status"]
    assert status["correlation_id"] == searched["message"]["correlation_id"]
    assert [
        (r["reference_id"], r["status"], r.get("status_reason_code"))
        for r in status["search_response"]
    ] == [("r-1", "succ", None), ("r-2", "rjct", "rjct.search_criteria.invalid")]

    mine_only = copy.deepcopy(status_request)
    mine_only["header"] |= {"sender_id": SIGNER, "message_id": "s-2"}
    mine_only["signature"] = dci.sign(
        mine_only["header"],
        mine_only["message"],
        key=PARTNER_KEY,
        sender_id=SIGNER,
        key_id="k1",
        now=dci_now(answer),
    )
    theirs = await post(gateway, STATUS, mine_only, sender=SIGNER)
    assert theirs["message"]["txnstatus_response"]["txn_status"]["search_response"] == []


async def test_a_refused_status_request_is_still_the_standards_answer(
    gateway: httpx.AsyncClient,
) -> None:
    asked = {
        "header": {
            "version": "1.0.0",
            "message_id": "s-bad",
            "action": "txn-status",
            "message_ts": "2026-12-04T09:00:00Z",
            "sender_id": SEARCHER,
            "total_count": 1,
        },
        "message": {
            "transaction_id": "t-9",
            "txnstatus_request": {
                "reference_id": "q-1",
                "txn_type": "search",
                "attribute_type": "person",
                "attribute_value": "t-9",
            },
        },
    }
    with dci_standard.deliberately_invalid():  # no such attribute_type
        answer = await post(gateway, STATUS, asked)  # the answer is validated all the same
    assert (answer["header"]["status"], answer["header"]["status_reason_code"]) == (
        "rjct",
        "rjct.action.invalid",
    )


def test_the_conformance_check_refuses_what_the_standard_does_not_allow() -> None:
    body = envelope(SEARCHER, [by_number(INSURED)])
    dci_standard.request(SEARCH, body)
    body["message"]["search_request"][0]["search_criteria"]["query_type"] = "sql"
    with pytest.raises(dci_standard.NotConforming, match="query_type"):
        dci_standard.request(SEARCH, body)
    with pytest.raises(dci_standard.NotConforming, match="status"):
        dci_standard.response(
            SEARCH,
            200,
            {
                "header": {
                    "message_id": "m",
                    "action": "on-search",
                    "message_ts": "2026-12-04T09:00:00Z",
                }
            },
        )
