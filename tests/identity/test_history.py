"""Each person's change history (canbao_identity.history; 44号 Art.20): written by the rebuild,
one row per changed item with its source and a collection's handler and reviewer, sealed, never
changed or deleted; read through identity's internal API newest first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy.exc import DBAPIError

from canbao_contracts.codes import RegistrationItem
from canbao_contracts.events import CollectionApproved
from canbao_contracts.events.vocabulary import Channel
from canbao_identity.app import create
from canbao_identity.handlers import collection_change
from canbao_identity.protection import change_context
from canbao_identity.settings import IdentitySettings
from canbao_identity.staging import add_staged
from canbao_identity.tables import person_changes
from canbao_platform.db import Database
from canbao_platform.messaging import unit_of_work
from canbao_platform.service import Resources
from tests.conftest import ServiceAuth, caller_headers
from tests.identity.conftest import PROTECTOR, Harness, change
from tests.identity.test_registry import NUMBER, ac01, hukou

# After the source rows of `change` (ts_ms 2025-11-22): the collection is the newer evidence.
REVIEWED_AT = datetime(2025, 11, 23, 9, 30, tzinfo=UTC)


@pytest.fixture
async def client(identity_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = IdentitySettings(CANBAO_ENV="test", database_url=identity_db.url)
    app = create(settings)
    app.state.resources = Resources(settings=settings, database=identity_db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://identity",
        auth=ServiceAuth("identity", username="reviewer-1", role="reviewer"),
    ) as http:
        yield http


async def collect(harness: Harness, person_id: UUID, phone: str) -> UUID:
    """An approved counter collection of the phone (as registry.collections brings it)."""
    event = CollectionApproved(
        collection_id=uuid4(),
        person_id=person_id,
        channel=Channel.COUNTER,
        items={RegistrationItem.PHONE: phone},
        handler="clerk-1",
        handled_at=REVIEWED_AT - timedelta(hours=1),
        reviewer="reviewer-1",
        reviewed_at=REVIEWED_AT,
    )
    async with unit_of_work(harness.db, service="identity") as uow:
        add_staged(uow, collection_change(PROTECTOR, event))
    await harness.drain()
    return event.collection_id


async def rows(harness: Harness) -> list[Any]:
    async with harness.db.engine.connect() as connection:
        return list(
            (
                await connection.execute(
                    sa.select(person_changes).order_by(
                        person_changes.c.changed_at, person_changes.c.change_id
                    )
                )
            ).all()
        )


def opened(row: Any) -> dict[str, Any]:
    return PROTECTOR.decrypt(
        row.values_sealed, key_id=row.key_id, context=change_context(row.person_id, row.change_id)
    )


async def registered(harness: Harness) -> UUID:
    await harness.apply([change("hukou.person", hukou()), change("si_core.ac01", ac01(NUMBER))])
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    return person_id


async def test_a_source_a_collection_and_a_source_again_make_three_rows(
    harness: Harness,
) -> None:
    person_id = await registered(harness)
    [first] = await rows(harness)
    assert (first.kind, first.person_id, first.source_table) == (
        "registered",
        person_id,
        "hukou.person",
    )

    await harness.apply([change("si_core.ac01", ac01(NUMBER, aae005="13600136000"))])
    collection_id = await collect(harness, person_id, "13900139000")
    await harness.apply([change("si_core.ac01", ac01(NUMBER, aae006="贵州省贵阳市南明区2号"))])

    _, phone_by_source, phone_collected, address = await rows(harness)
    assert [
        (r.kind, r.item, r.source_table) for r in (phone_by_source, phone_collected, address)
    ] == [
        ("value", "phone", "si_core.ac01"),
        ("value", "phone", "collection.counter"),
        ("value", "residence_address", "si_core.ac01"),
    ]
    assert opened(phone_by_source) == {"old": "13800138000", "new": "13600136000"}
    assert opened(phone_collected) == {"old": "13600136000", "new": "13900139000"}
    assert opened(address) == {"old": "北京市东城区1号", "new": "贵州省贵阳市南明区2号"}
    assert phone_by_source.record_key == "aac001=P1" and phone_by_source.observed_at
    assert phone_by_source.handler is None and phone_by_source.collection_id is None
    assert (
        phone_collected.channel,
        phone_collected.collection_id,
        phone_collected.handler,
        phone_collected.reviewer,
        phone_collected.reviewed_at,
    ) == ("counter", collection_id, "clerk-1", "reviewer-1", REVIEWED_AT.isoformat())
    assert address.channel is None and address.reviewer is None
    assert first.changed_at < phone_by_source.changed_at < phone_collected.changed_at


async def test_a_rebuild_that_changes_no_value_writes_nothing(harness: Harness) -> None:
    person_id = await registered(harness)
    before = await rows(harness)
    # The same row again at a later position, and a rebuild forced: values unchanged.
    await harness.apply([change("si_core.ac01", ac01(NUMBER))])
    async with harness.work() as golden_records:
        await golden_records.rebuild([person_id])
    # Another source now confirming the phone: a change of source, not of value.
    await harness.apply(
        [
            change(
                "card.card_holder",
                {
                    "aaz500": "C1",
                    "aac002": NUMBER,
                    "aac003": "王伟",
                    "aae005": "13800138000",
                    "card_status": "1",
                },
            )
        ]
    )
    assert await rows(harness) == before


async def test_a_death_is_an_event_of_the_person(harness: Harness) -> None:
    await registered(harness)
    await harness.apply([change("hukou.person", hukou(ryzt="1"))])
    kinds = [(r.kind, r.item) for r in await rows(harness)]
    assert kinds[0] == ("registered", None)
    assert ("value", "household_status") in kinds and ("deceased", None) in kinds


async def test_the_table_holds_no_clear_value(harness: Harness) -> None:
    person_id = await registered(harness)
    await harness.apply(
        [change("si_core.ac01", ac01(NUMBER, aae005="13612345678", aac003="王伟伟"))]
    )
    await collect(harness, person_id, "13987654321")
    stored = await rows(harness)
    assert len(stored) == 3
    clear = ["13800138000", "13612345678", "13987654321", "王伟", NUMBER]
    for row in stored:
        for value in row:
            text = value if isinstance(value, bytes) else str(value).encode()
            assert not any(c.encode() in text for c in clear), row
    # Bound to its row: another row's ciphertext does not open here.
    a, b = stored[1], stored[2]
    with pytest.raises(InvalidTag):
        PROTECTOR.decrypt(
            a.values_sealed, key_id=a.key_id, context=change_context(b.person_id, b.change_id)
        )


async def test_the_history_is_insert_only(harness: Harness) -> None:
    await registered(harness)
    await harness.apply([change("si_core.ac01", ac01(NUMBER, aae005="13600136000"))])
    row = (await rows(harness))[-1]
    statements = [
        sa.update(person_changes).values(source_table="collection.counter"),
        sa.update(person_changes).values(changed_at=datetime.now(UTC)),
        sa.delete(person_changes),
        sa.text("TRUNCATE person_changes"),
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="insert-only"):
            async with harness.db.engine.begin() as connection:
                await connection.execute(statement)
    # A key rotation's reseal may rewrite the sealed values, and nothing else.
    async with harness.db.engine.begin() as connection:
        await connection.execute(
            sa.update(person_changes)
            .where(person_changes.c.change_id == row.change_id)
            .values(values_sealed=row.values_sealed, key_id=row.key_id)
        )
    assert (await rows(harness))[-1] == row


async def test_the_api_answers_newest_first_page_by_page(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    person_id = await registered(harness)
    for phone in ("13600136000", "13700137000", "13500135000"):
        await harness.apply([change("si_core.ac01", ac01(NUMBER, aae005=phone))])
    path = f"/internal/persons/{person_id}/history"
    first = await client.get(path, params={"limit": 2})
    assert first.status_code == 200, first.text
    body = first.json()
    assert [(c["item"], c["old"], c["new"]) for c in body["changes"]] == [
        ("phone", "13700137000", "13500135000"),
        ("phone", "13600136000", "13700137000"),
    ]
    assert body["changes"][0]["source"] == "si_core.ac01"
    second = (await client.get(path, params={"limit": 2, "cursor": body["next_cursor"]})).json()
    assert [(c["kind"], c["new"]) for c in second["changes"]] == [
        ("value", "13600136000"),
        ("registered", None),
    ]
    assert second["next_cursor"] is None

    assert (await client.get(path, params={"cursor": "yesterday"})).status_code == 422
    assert (await client.get(f"/internal/persons/{uuid4()}/history")).status_code == 404
    for role in ("surveyor", "analyst", "auditor", "city"):
        refused = await client.get(path, headers=caller_headers("identity", role=role))
        assert refused.status_code == 403, role


async def test_a_merged_persons_history_follows_them(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    survivor = await registered(harness)
    await harness.apply(
        [
            change(
                "medical.insured",
                {
                    "psn_no": "M7",
                    "certno": "E12345678",
                    "psn_cert_type": "02",
                    "psn_name": "王伟",
                    "gend": "1",
                    "brdy": datetime(1980, 1, 1).date(),
                    "insutype": "390",
                    "psn_insu_stas": "1",
                },
            )
        ]
    )
    merged = await harness.person_of("E12345678", "02")
    assert merged is not None and merged != survivor
    response = await client.post(
        f"/internal/persons/{merged}/merge", json={"surviving_person_id": str(survivor)}
    )
    assert response.status_code == 200, response.text
    changes = (await client.get(f"/internal/persons/{survivor}/history")).json()["changes"]
    kinds = {(c["person_id"], c["kind"]) for c in changes}
    assert (str(survivor), "absorbed") in kinds
    assert (str(merged), "merged") in kinds and (str(merged), "registered") in kinds
    absorbed = next(c for c in changes if c["kind"] == "absorbed")
    assert absorbed["other_person_id"] == str(merged)
