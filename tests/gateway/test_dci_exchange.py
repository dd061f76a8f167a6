"""Up to the ministry (44号 Art.10; 41号 §3, §5; dci_notify.py "Exchanges"): the national
registry, a partner client of department `national`, subscribes to the people of other
provinces insured here and the province's household-registered people not insured in it; the
reconciliation delivers all of them first, then only what the national side lacks, holds stale,
or holds though the filter no longer selects it; what a refused delivery left is delivered again
by the next pass; every pass is reported. Identity, matching and the partner's HTTP endpoint run
for real; the clock of the passes is the test's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from canbao_gateway import clients
from canbao_gateway.clients import ClientKind, Field, Permission
from canbao_gateway.dci_delivery import MAX_ATTEMPTS, CallbackDelivery
from canbao_gateway.dci_notify import PASS_COUNTS, ExchangeReconciler, exchange_report
from canbao_gateway.service_clients import IdentityClient, MatchingClient
from canbao_gateway.tables import audit_log, dci_exchange_ledger, dci_exchange_passes
from canbao_gateway.tables import clients as clients_table
from canbao_matching.tables import persons
from canbao_platform.db import Database
from canbao_stack.national import OWED
from tests.gateway import dci_standard
from tests.gateway.conftest import Clock, bearer, settings_for
from tests.gateway.people import NANMING, citizen
from tests.gateway.services import gateway_over, identity_app, matching_app
from tests.gateway.test_dci import ELSEWHERE, SECRET, WOMAN, seed
from tests.gateway.test_dci_callbacks import PartnerSystem, verified
from tests.gateway.test_dci_callbacks import partner as partner
from tests.gateway.test_partners import token
from tests.identity.conftest import Harness, change
from tests.identity.conftest import harness as harness  # identity's and matching's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.identity.test_registry import ac01
from tests.matching.conftest import matching_db as matching_db

NATIONAL = "national-registry"
SUBSCRIBE = "/api/v1/partners/dci/registry/subscribe"
MIGRANT = citizen("110101", "19850505", "051")  # a Beijing household, insured in Nanming
FIELDS = frozenset(
    {
        Field.ID_NUMBER,
        Field.REGION,
        Field.HOUSEHOLD,
        Field.REGISTRATION,
        Field.PENSION,
        Field.MEDICAL,
        Field.INJURY,
        Field.UNEMPLOYMENT,
        Field.MATERNITY,
    }
)


async def register_national(gateway_db: Database, callback: str) -> None:
    """The national registry as a partner client (department national), subscribing only."""
    async with gateway_db.engine.begin() as connection:
        await clients.register(
            connection,
            client_id=NATIONAL,
            secret=SECRET,
            kind=ClientKind.PARTNER,
            name="全国参保登记库",
            region="52",
            department="national",
            permissions=frozenset({Permission.SUBSCRIBE}),
            fields=FIELDS,
            callback_urls=(callback,),
        )


@pytest.fixture
async def gateway(
    gateway_url: str,
    test_clock: Clock,
    harness: Harness,
    matching_db: Database,
    gateway_db: Database,
    partner: PartnerSystem,
) -> AsyncIterator[httpx.AsyncClient]:
    await register_national(gateway_db, partner.base)
    enrolment = {
        "aac001": "P2",
        "aae140": "110",
        "aab301": NANMING,
        "aab001": "U1",
        "aac008": "1",
        "aac030": datetime(2015, 3, 1).date(),
    }
    await harness.apply(
        [
            change("si_core.ac01", ac01(MIGRANT, key="P2", aab301=NANMING)),
            change("si_core.ac02", enrolment),
        ],
        drain=False,
    )
    await seed(harness, matching_db)
    apps = {"identity": identity_app(harness), "matching": matching_app(matching_db)}
    async for client in gateway_over(gateway_url, test_clock, **apps):
        yield dci_standard.watch(client)


@pytest.fixture
async def reconciler(
    gateway_url: str, gateway_db: Database, harness: Harness, matching_db: Database
) -> AsyncIterator[ExchangeReconciler]:
    """The component `gateway-notify` runs, over the same services, three people a page."""
    settings = settings_for(gateway_url)
    key = settings.service_token_signing_key()
    identity = IdentityClient(
        settings.identity_url,
        signing_key=key,
        transport=httpx.ASGITransport(app=identity_app(harness)),
    )
    matching = MatchingClient(
        settings.matching_url,
        signing_key=key,
        transport=httpx.ASGITransport(app=matching_app(matching_db)),
    )
    for part in (identity, matching):
        await part.start()
    yield ExchangeReconciler(
        gateway_db, settings.sealer(), settings, identity, matching, page_size=3
    )
    for part in (identity, matching):
        await part.stop()


async def subscribe(gateway: httpx.AsyncClient, partner: PartnerSystem) -> str:
    body = {
        "transaction_id": "exchange-1",
        "subscribe_request": [
            {
                "reference_id": "owed",
                "timestamp": "2026-12-04T09:00:00+08:00",
                "subscribe_criteria": {
                    "version": "1.0.0",
                    "reg_event_type": "UPDATE",
                    "notify_record_type": "Member",
                    "filter_type": "expression",
                    "filter": {
                        "type": "ns:org:QueryType:NoSql",
                        "value": {"expression": {"collection": "Member", "query": OWED}},
                    },
                },
            }
        ],
    }
    envelope = {
        "message": body,
        "header": {
            "version": "1.0.0",
            "message_id": "m-exchange",
            "message_ts": "2026-12-04T09:00:00Z",
            "action": "subscribe",
            "sender_id": NATIONAL,
            "total_count": 1,
        },
    }
    answer = await gateway.post(
        SUBSCRIBE, json=envelope, headers=bearer(await token(gateway, NATIONAL, SECRET))
    )
    assert answer.status_code == 200, answer.text
    path, callback = await partner.next()
    assert path == "/dci/on-subscribe"
    [response] = verified(callback)["message"]["subscribe_response"]
    assert response["status"] == "succ", response
    code: str = response["subscriptions"][0]["code"]
    return code


async def run_pass(reconciler: ExchangeReconciler, now: datetime) -> int:
    pages = 0
    while await reconciler.reconcile_page(now=now):
        pages += 1
    return pages


async def notified(partner: PartnerSystem, count: int) -> dict[str, dict[str, Any]]:
    """The records of the next `count` people notified, by number."""
    records: dict[str, dict[str, Any]] = {}
    for _ in range(50):
        records = {}
        for path, body in partner.received:
            if path == "/dci/notify":
                for event in verified(body)["message"]["notify_event"]:
                    record = event["data"]["reg_records"]  # one record an event
                    number = record["member_identifier"][0]["identifier_value"]
                    records[number] = record
        if len(records) >= count:
            return records
        await asyncio.sleep(0.1)
    return records


def attributes(record: dict[str, Any]) -> dict[str, Any]:
    return {a["name"]: a["value"] for a in record["additional_attributes"]}


async def report(gateway_db: Database, number: int) -> dict[str, Any]:
    async with gateway_db.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(dci_exchange_passes).where(dci_exchange_passes.c["pass"] == number)
            )
        ).one()
    counts = {name: getattr(row, name) for name in PASS_COUNTS}
    return counts | {"finished": row.finished_at is not None}


async def settled(gateway_db: Database) -> list[tuple[str, bool]]:
    """Each ledger row's state and whether it was last sent as selected, once none is pending."""
    for _ in range(100):
        async with gateway_db.engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.select(dci_exchange_ledger.c.state, dci_exchange_ledger.c.sent_selected)
                )
            ).all()
        if all(row.state != "pending" for row in rows):
            return sorted((row.state, row.sent_selected) for row in rows)
        await asyncio.sleep(0.1)
    raise AssertionError(f"still pending: {rows}")


async def test_the_ministry_gets_everyone_owed_then_only_what_it_lacks(
    gateway: httpx.AsyncClient,
    partner: PartnerSystem,
    reconciler: ExchangeReconciler,
    gateway_db: Database,
    matching_db: Database,
    harness: Harness,
) -> None:
    await subscribe(gateway, partner)
    start = datetime.now(UTC)

    # The first pass is the full delivery: the woman and the Yunyan man (household here, not
    # insured in the province) and the Beijing migrant (insured here); not the insured man.
    assert await run_pass(reconciler, start) == 3  # 3 people a page: 2 pages, then removals
    records = await notified(partner, 3)
    assert sorted(records) == sorted([WOMAN, ELSEWHERE, MIGRANT])
    assert attributes(records[MIGRANT])["pension"] == "11"
    assert attributes(records[MIGRANT])["household_registered_locally"] is False
    assert attributes(records[WOMAN])["household_registered_locally"] is True
    assert all(attributes(r)["in_subscription"] is True for r in records.values())
    assert records[WOMAN]["demographic_info"]["address"]["region_code"] == NANMING
    assert await report(gateway_db, 1) == {
        "selected": 3,
        "held": 0,
        "in_flight": 0,
        "missing": 3,
        "stale": 0,
        "removed": 0,
        "redelivered": 0,
        "unidentified": 0,
        "finished": True,
    }
    assert await settled(gateway_db) == [("acknowledged", True)] * 3
    async with gateway_db.engine.connect() as connection:
        audited = await connection.scalar(
            sa.select(sa.func.count()).where(
                audit_log.c.staff == NATIONAL, audit_log.c.purpose == "partner_subscription"
            )
        )
    assert audited == 3

    # Not due again before the interval: nothing runs.
    assert await run_pass(reconciler, start + timedelta(hours=1)) == 0
    # The next pass finds the national side holding all three: nothing sent.
    sent_before = len(partner.received)
    assert await run_pass(reconciler, start + timedelta(hours=25)) == 3
    assert (await report(gateway_db, 2))["held"] == 3
    await asyncio.sleep(0.5)
    assert len(partner.received) == sent_before

    # The woman is insured now (matching's verdict, as the evaluator would write it); the
    # ministry's endpoint is down for every attempt of the delivery that says so.
    woman = await harness.person_of(WOMAN)
    async with matching_db.engine.begin() as connection:
        verdict = await connection.scalar(
            sa.select(persons.c.verdict).where(persons.c.person_id == woman)
        )
        verdict["statuses"]["pension"] = "12"
        await connection.execute(
            sa.update(persons).where(persons.c.person_id == woman).values(verdict=verdict)
        )
    partner.failing = MAX_ATTEMPTS
    later = start + timedelta(hours=50)
    assert await run_pass(reconciler, later) == 3  # the selection, the removal, the end
    assert await report(gateway_db, 3) == {
        "selected": 2,
        "held": 2,
        "in_flight": 0,
        "missing": 0,
        "stale": 0,
        "removed": 1,
        "redelivered": 0,
        "unidentified": 0,
        "finished": True,
    }
    transport = httpx.AsyncHTTPTransport()
    delivery = CallbackDelivery(gateway_db, reconciler.sealer, transport=transport)
    async with httpx.AsyncClient(transport=transport) as http:
        for attempt in range(1, MAX_ATTEMPTS + 1):  # each attempt when its back-off is over
            await delivery.deliver_due(http, now=later + timedelta(hours=attempt))
    assert partner.failing == 0
    assert await settled(gateway_db) == [
        ("acknowledged", True),
        ("acknowledged", True),
        ("failed", False),
    ]

    # The next pass delivers it again; the ministry learns she left its set.
    received = len(partner.received)
    assert await run_pass(reconciler, later + timedelta(days=2)) == 3
    assert (await report(gateway_db, 4))["redelivered"] == 1
    assert (await report(gateway_db, 4))["removed"] == 1
    async with httpx.AsyncClient(transport=transport) as http:
        assert await delivery.deliver_due(http, now=later + timedelta(days=2)) == 1
    [(_, body)] = partner.received[received:]
    [event] = verified(body)["message"]["notify_event"]
    record = event["data"]["reg_records"]
    assert record["member_identifier"][0]["identifier_value"] == WOMAN
    assert attributes(record)["in_subscription"] is False
    assert attributes(record)["pension"] == "12"
    assert await settled(gateway_db) == [
        ("acknowledged", False),
        ("acknowledged", True),
        ("acknowledged", True),
    ]
    async with gateway_db.engine.connect() as connection:
        [exchange] = await exchange_report(connection)
    assert exchange["client_id"] == NATIONAL and exchange["last_pass"]["pass"] == 4
    assert exchange["ledger"] == {"held": 2, "acknowledged": 3, "pending": 0, "failed": 0}


async def test_only_the_national_registrys_filters_are_exchanges(
    gateway: httpx.AsyncClient,
    partner: PartnerSystem,
    reconciler: ExchangeReconciler,
    gateway_db: Database,
) -> None:
    async with gateway_db.engine.begin() as connection:
        await connection.execute(sa.update(clients_table).values(department="civil"))
    await subscribe(gateway, partner)
    assert await run_pass(reconciler, datetime.now(UTC)) == 0
    await asyncio.sleep(0.5)
    assert [path for path, _ in partner.received] == ["/dci/on-subscribe"]
