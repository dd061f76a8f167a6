"""DCI subscriptions (the registry core API's subscribe, unsubscribe, notify; dci_routes.py,
dci_notify.py): a partner subscribes to a person or to everyone a filter selects, and each change
of a subscribed person's verdict on registry.statuses — produced to the Kafka-protocol test
broker, consumed by the gateway's own consumer — reaches the partner's registered address as a
signed notification, once, and no more after it unsubscribed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from canbao_contracts.codes import StatusCode
from canbao_contracts.envelope import encode
from canbao_contracts.events import StatusesChanged, Verdict
from canbao_contracts.topics import STATUSES, dead_letter_topic
from canbao_gateway import clients
from canbao_gateway.clients import ClientKind, Permission
from canbao_gateway.tables import audit_log, dci_exchange_ledger
from canbao_matching.tables import persons
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.messaging import Producer
from tests.gateway import dci_standard
from tests.gateway.conftest import Clock
from tests.gateway.services import gateway_over, identity_app, matching_app
from tests.gateway.test_dci import ELSEWHERE, FIELDS, INSURED, SECRET, WOMAN, seed
from tests.gateway.test_dci_callbacks import PartnerSystem, ack, verified
from tests.gateway.test_dci_callbacks import partner as partner
from tests.gateway.test_dci_exchange import register_national, subscribe
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's and matching's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.matching.conftest import matching_db as matching_db

SUBSCRIBER = "civil-async"
SUBSCRIBE = "/api/v1/partners/dci/registry/subscribe"
UNSUBSCRIBE = "/api/v1/partners/dci/registry/unsubscribe"


@pytest.fixture
def kafka() -> Iterator[MockKafkaCluster]:
    with MockKafkaCluster(brokers=1) as cluster:
        cluster.create_topics([STATUSES, dead_letter_topic("gateway")])
        yield cluster


@pytest.fixture
async def gateway(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    matching_db: Database,
    gateway_db: Database,
    partner: PartnerSystem,
    kafka: MockKafkaCluster,
) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_db.engine.begin() as connection:
        await clients.register(
            connection,
            client_id=SUBSCRIBER,
            secret=SECRET,
            kind=ClientKind.PARTNER,
            name="民政",
            region="52",
            department="civil",
            permissions=frozenset({Permission.SUBSCRIBE}),
            fields=FIELDS,
            callback_urls=(partner.base,),
        )
    await seed(harness, matching_db)
    settings = {"dci_notifications": True, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    apps = {"identity": identity_app(harness), "matching": matching_app(matching_db)}
    async for client in gateway_over(gateway_url, test_clock, settings=settings, **apps):
        yield dci_standard.watch(client)


def message(action: str, body: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "header": {
            "version": "1.0.0",
            "message_id": message_id,
            "message_ts": "2026-12-04T09:00:00+08:00",
            "action": action,
            "sender_id": SUBSCRIBER,
            "total_count": len(body.get("subscribe_request", [1])),
        },
        "message": body,
    }


def subscription(reference: str, filter_type: str, filter: Any) -> dict[str, Any]:
    return {
        "reference_id": reference,
        "timestamp": "2026-12-04T09:00:00+08:00",
        "subscribe_criteria": {
            "version": "1.0.0",
            "reg_event_type": "UPDATE",
            "filter_type": filter_type,
            "filter": filter,
            "notify_record_type": "Member",
        },
    }


async def verdict_changed(matching_db: Database, person_id: UUID) -> StatusesChanged:
    """The person's verdict as matching holds it, as matching publishes a change of it."""
    async with matching_db.engine.connect() as connection:
        verdict = await connection.scalar(
            sa.select(persons.c.verdict).where(persons.c.person_id == person_id)
        )
    return StatusesChanged(
        person_id=person_id,
        verdict=Verdict.model_validate(verdict),
        previous=None,
        evaluated_at=datetime.now(UTC),
    )


async def publish(
    kafka: MockKafkaCluster, *events: StatusesChanged, same_id: str | None = None
) -> None:
    producer = Producer(kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_many([encode(e, source="/matching", id=same_id) for e in events])
    finally:
        await producer.stop()


async def test_subscribers_are_notified_of_their_people_once_until_they_unsubscribe(
    gateway: httpx.AsyncClient,
    partner: PartnerSystem,
    harness: Harness,
    matching_db: Database,
    gateway_db: Database,
    kafka: MockKafkaCluster,
) -> None:
    region = [
        {
            "seq_num": 1,
            "expression1": {
                "attribute_name": "region",
                "operator": "eq",
                "attribute_value": "520102",
            },
        }
    ]
    body = {
        "transaction_id": "sub-1",
        "subscribe_request": [
            subscription("s-person", "idtype-value", {"type": "SSN", "value": INSURED}),
            subscription("s-region", "predicate", region),
            subscription("s-nobody", "idtype-value", {"type": "SSN", "value": INSURED[:-1] + "0"}),
            subscription(
                "s-province",
                "predicate",
                [
                    {
                        "seq_num": 1,
                        "expression1": {
                            "attribute_name": "gender",
                            "operator": "eq",
                            "attribute_value": "male",
                        },
                    }
                ],
            ),
        ],
    }
    assert (await ack(gateway, SUBSCRIBE, message("subscribe", body, "m-1")))["ack_status"] == "ACK"
    path, answer = await partner.next()
    assert path == "/dci/on-subscribe"
    responses = verified(answer)["message"]["subscribe_response"]
    assert [(r["reference_id"], r["status"], r.get("status_reason_code")) for r in responses] == [
        ("s-person", "succ", None),
        ("s-region", "succ", None),
        ("s-nobody", "rjct", "rjct.notify_details.invalid"),  # not a valid number
        ("s-province", "rjct", "rjct.notify_details.invalid"),  # no division named
    ]
    codes = {r["reference_id"]: r["subscriptions"][0]["code"] for r in responses[:2]}
    again = {
        "transaction_id": "sub-2",
        "subscribe_request": [
            subscription("s-again", "idtype-value", {"type": "SSN", "value": INSURED})
        ],
    }
    await ack(gateway, SUBSCRIBE, message("subscribe", again, "m-2"))
    _, answer = await partner.next()
    assert answer["message"]["subscribe_response"][0]["status_reason_code"] == (
        "rjct.event.already_subscribed"
    )

    insured, woman = await harness.person_of(INSURED), await harness.person_of(WOMAN)
    assert insured is not None and woman is not None
    changed = await verdict_changed(matching_db, insured)
    await publish(kafka, changed, same_id="ce-1")
    notified = [await partner.next(), await partner.next()]  # both of its subscriptions
    assert {p for p, _ in notified} == {"/dci/notify"}
    events = [verified(a)["message"]["notify_event"][0] for _, a in notified]
    assert {e["data"]["subscription_code"] for e in events} == set(codes.values())
    record = events[0]["data"]["reg_records"]  # one RegistryRecord per event
    assert record["member_identifier"][0]["identifier_value"] == INSURED
    await publish(kafka, changed, same_id="ce-1")  # the same event again: nobody twice
    await publish(kafka, await verdict_changed(matching_db, woman))
    _, answer = await partner.next()
    [event] = verified(answer)["message"]["notify_event"]
    assert event["data"]["subscription_code"] == codes["s-region"]  # hers, the region's only
    await asyncio.sleep(1)
    assert len(partner.received) == 5  # 2 on-subscribe, 3 notifications

    unknown = "00000000-0000-0000-0000-000000000000"
    cancel = {
        "transaction_id": "unsub-1",
        "timestamp": "2026-12-04T10:00:00+08:00",
        "subscription_codes": [codes["s-region"], unknown],
    }
    await ack(gateway, UNSUBSCRIBE, message("unsubscribe", cancel, "m-3"))
    path, answer = await partner.next()
    assert path == "/dci/on-unsubscribe"
    cancelled = verified(answer)["message"]
    assert cancelled["subscription_status"] == [
        {"code": codes["s-region"], "status": "unsubscribe"}
    ]
    assert cancelled["status_reason_code"] == "rjct.subscription_code.invalid"
    await publish(kafka, await verdict_changed(matching_db, woman))
    await asyncio.sleep(2)
    assert len(partner.received) == 6  # nothing more for her

    async with gateway_db.engine.connect() as connection:
        audited = (
            await connection.execute(
                sa.select(audit_log.c.staff, audit_log.c.purpose, audit_log.c.person_id).where(
                    audit_log.c.purpose == "partner_subscription"
                )
            )
        ).all()
    assert sorted((r.person_id == insured, r.person_id == woman) for r in audited) == [
        (False, True),
        (True, False),
        (True, False),
    ]


async def test_the_national_registry_hears_who_leaves_its_exchange_as_it_happens(
    gateway: httpx.AsyncClient,
    partner: PartnerSystem,
    harness: Harness,
    matching_db: Database,
    gateway_db: Database,
    kafka: MockKafkaCluster,
) -> None:
    """An exchange (dci_notify.py): the first pass delivers everyone owed at once after the
    subscription; then each change is notified as it happens, saying whether the person is
    still in the subscription, and entered in the ledger as acknowledged."""
    await register_national(gateway_db, partner.base)
    code = await subscribe(gateway, partner)
    _, delivered = await partner.next()  # the full delivery, woken by the subscription
    numbers = {
        e["data"]["reg_records"]["member_identifier"][0]["identifier_value"]
        for e in verified(delivered)["message"]["notify_event"]
    }
    assert numbers == {WOMAN, ELSEWHERE}  # household, not insured; the insured man is not owed

    woman = await harness.person_of(WOMAN)
    assert woman is not None
    changed = await verdict_changed(matching_db, woman)
    insured = changed.verdict.model_copy(
        update={
            "statuses": changed.verdict.statuses.model_copy(
                update={"pension": StatusCode.RESIDENT_PENSION}
            )
        }
    )
    await publish(
        kafka,
        StatusesChanged(
            person_id=woman,
            verdict=insured,
            previous=changed.verdict,
            evaluated_at=datetime.now(UTC),
        ),
    )
    _, answer = await partner.next()
    [event] = verified(answer)["message"]["notify_event"]
    assert event["data"]["subscription_code"] == code
    record = event["data"]["reg_records"]
    attributes = {a["name"]: a["value"] for a in record["additional_attributes"]}
    assert (attributes["pension"], attributes["in_subscription"]) == ("12", False)
    for _ in range(50):
        async with gateway_db.engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(dci_exchange_ledger).where(dci_exchange_ledger.c.person_id == woman)
                )
            ).one()
        if row.state == "acknowledged":
            break
        await asyncio.sleep(0.1)
    assert (row.state, row.acked_selected) == ("acknowledged", False)
