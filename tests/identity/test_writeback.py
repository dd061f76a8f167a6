"""Write-back to the business systems (writeback.py, 44号 Art.22) on a real database: a counter
collection of a new phone asks the system whose record disagrees, and only that one; the system
catching up, changing to another value, or refusing settles the request; its replies count once.

The source rows arrive as Debezium change events (tests/identity/conftest.py), streamed with their
commit time, so "before" and "after" the collection's approval are the sources' own times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from canbao_contracts.codes import RegistrationItem
from canbao_contracts.envelope import encode
from canbao_contracts.events import (
    Channel,
    CollectionApproved,
    FeedbackOutcome,
    FeedbackReplied,
    FeedbackRequested,
)
from canbao_identity.handlers import collection_change
from canbao_identity.staging import add_staged
from canbao_identity.tables import writebacks
from canbao_identity.writeback import reply_handler
from canbao_platform.messaging import InboundMessage, PermanentError, UnitOfWork, unit_of_work
from tests.identity.conftest import PROTECTOR, Harness, change

NUMBER = "110101198001010010"
OLD, NEW, OTHER = "13800138000", "13912345678", "13700000009"
SOURCES_AT = datetime(2025, 11, 22, tzinfo=UTC)  # the rows were written then
APPROVED = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)  # 复核 of the counter collection
AFTER = APPROVED + timedelta(days=3)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def ac01(phone: str = OLD, at: datetime = SOURCES_AT) -> Any:
    row = {
        "aac001": "P1",
        "aac002": NUMBER,
        "aac003": "王伟",
        "aac004": "1",
        "aac006": "19800101",
        "aab301": "110101",
        "aae005": phone,
        "aae006": "北京市东城区1号",
    }
    return change("si_core.ac01", row, op="u", ts_ms=ms(at))


def card(phone: str = NEW) -> Any:
    row = {"aaz500": "C1", "aac002": NUMBER, "aac003": "王伟", "aae005": phone, "card_status": "1"}
    return change("card.card_holder", row, ts_ms=ms(SOURCES_AT))


def medical() -> Any:
    row = {
        "psn_no": "M1",
        "certno": NUMBER,
        "psn_cert_type": "01",
        "psn_name": "王伟",
        "gend": "1",
        "insutype": "390",
        "psn_insu_stas": "1",
        "insu_admdvs": "110101",
    }
    return change("medical.insured", row, ts_ms=ms(SOURCES_AT))


def collection(person_id: UUID, collection_id: UUID, phone: str = NEW) -> CollectionApproved:
    return CollectionApproved(
        collection_id=collection_id,
        person_id=person_id,
        channel=Channel.COUNTER,
        items={RegistrationItem.PHONE: phone},
        handler="clerk-0042",
        handled_at=APPROVED - timedelta(hours=1),
        reviewer="reviewer-0007",  # 复核 by a second member of staff
        reviewed_at=APPROVED,
    )


async def apply_collection(harness: Harness, event: CollectionApproved) -> None:
    async with unit_of_work(harness.db, service="identity") as uow:
        add_staged(uow, collection_change(PROTECTOR, event))
    await harness.drain()


async def rows(harness: Harness) -> list[Any]:
    async with harness.db.sessions() as session:
        return list((await (await session.connection()).execute(sa.select(writebacks))).all())


def requests(harness: Harness) -> list[FeedbackRequested]:
    return [e for e in harness.published if isinstance(e, FeedbackRequested)]


async def collected(harness: Harness) -> tuple[UUID, UUID]:
    await harness.apply([ac01(), card(), medical()])
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    collection_id = uuid4()
    await apply_collection(harness, collection(person_id, collection_id))
    return person_id, collection_id


async def test_a_collected_phone_is_asked_only_of_the_system_whose_record_disagrees(
    harness: Harness,
) -> None:
    person_id, collection_id = await collected(harness)
    # si_core says the old phone: asked. The card system already has the new one, the medical
    # system has no phone: not asked.
    (request,) = requests(harness)
    assert request.destination.name == "feedback.si_core"
    assert request.subject == request.record_key == "aac001=P1"
    assert (request.system, request.table, request.person_id) == ("si_core", "ac01", person_id)
    assert request.collection_id == collection_id
    assert [(c.item.value, c.column, c.value) for c in request.changes] == [
        ("phone", "aae005", NEW)
    ]
    assert (request.handler, request.reviewer, request.reviewed_at) == (
        "clerk-0042",
        "reviewer-0007",
        APPROVED,
    )
    (row,) = await rows(harness)
    assert (row.state, row.system, row.column_name) == ("pending", "si_core", "aae005")
    golden = (await harness.golden(person_id))["golden"]["phone"]
    # The card system agrees: the value shows that source again (the collected value).
    assert golden["value"] == NEW and golden["source"] == "card.card_holder"

    # The same collection again (redelivered, or replayed): nothing new is asked.
    await apply_collection(harness, collection(person_id, collection_id))
    assert len(requests(harness)) == 1 and len(await rows(harness)) == 1


async def test_without_an_agreeing_source_the_value_shows_as_collected_awaiting_write_back(
    harness: Harness,
) -> None:
    await harness.apply([ac01(), card(phone=OLD)])
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    await apply_collection(harness, collection(person_id, uuid4()))
    golden = (await harness.golden(person_id))["golden"]["phone"]
    assert golden["value"] == NEW and golden["source"] == "collection.counter"
    assert golden["collection"]["reviewer"] == "reviewer-0007"
    assert golden["awaiting_write_back"] == ["card.card_holder", "si_core.ac01"]
    assert sorted(r.destination.name for r in requests(harness)) == [
        "feedback.card",
        "feedback.si_core",
    ]


async def test_when_the_system_takes_the_new_phone_the_golden_record_takes_it_from_there(
    harness: Harness,
) -> None:
    person_id, _ = await collected(harness)
    await harness.apply([ac01(NEW, at=AFTER)])
    golden = (await harness.golden(person_id))["golden"]["phone"]
    assert golden["value"] == NEW and golden["source"] in ("si_core.ac01", "card.card_holder")
    (row,) = await rows(harness)
    assert row.state == "applied" and row.settled_at is not None


async def test_a_phone_changed_in_the_system_after_the_collection_wins_and_supersedes(
    harness: Harness,
) -> None:
    person_id, _ = await collected(harness)
    await harness.apply([ac01(OTHER, at=AFTER)])
    golden = (await harness.golden(person_id))["golden"]["phone"]
    assert golden["value"] == OTHER and golden["source"] == "si_core.ac01"
    (row,) = await rows(harness)
    assert row.state == "superseded"
    assert len(requests(harness)) == 1  # nothing asked of the system that changed it


async def test_a_snapshot_of_the_old_row_does_not_look_newer_than_the_collection(
    harness: Harness,
) -> None:
    """A re-snapshot reads the old row (op r) long after the collection: still old."""
    person_id, _ = await collected(harness)
    row = {
        "aac001": "P1",
        "aac002": NUMBER,
        "aac003": "王伟",
        "aac004": "1",
        "aac006": "19800101",
        "aab301": "110101",
        "aae005": OLD,
        "updated_at": SOURCES_AT,
    }
    await harness.apply([change("si_core.ac01", row, op="r", ts_ms=ms(AFTER + timedelta(days=9)))])
    golden = (await harness.golden(person_id))["golden"]["phone"]
    assert golden["value"] == NEW
    (wb,) = await rows(harness)
    assert wb.state == "pending"


async def test_a_newer_collection_supersedes_the_request_of_the_older_one(
    harness: Harness,
) -> None:
    person_id, first = await collected(harness)
    later = collection(person_id, uuid4(), phone=OTHER).model_copy(
        update={"reviewed_at": AFTER, "handled_at": AFTER}
    )
    await apply_collection(harness, later)
    states = {(r.collection_id, r.source_table): r.state for r in await rows(harness)}
    assert states[(first, "si_core.ac01")] == "superseded"
    assert states[(later.collection_id, "si_core.ac01")] == "pending"
    assert states[(later.collection_id, "card.card_holder")] == "pending"


def reply_message(reply: FeedbackReplied, topic: str | None = None) -> InboundMessage:
    record = encode(reply, source="/canbao/si_core")
    return InboundMessage(
        topic=topic or record.topic,
        partition=0,
        offset=0,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers),
        timestamp=0,
        envelope=None,
    )


async def answer(harness: Harness, message: InboundMessage) -> None:
    async with harness.db.sessions() as session, session.begin():
        await reply_handler()(message, UnitOfWork(session, source="/canbao/identity"))


async def test_a_refusal_is_kept_with_its_reason_once(harness: Harness) -> None:
    await collected(harness)
    (request,) = requests(harness)
    reply = FeedbackReplied(
        feedback_id=request.feedback_id,
        system="si_core",
        outcome=FeedbackOutcome.REFUSED,
        reason="该人员已转出本统筹区",
        replied_at=AFTER,
    )
    await answer(harness, reply_message(reply))
    (row,) = await rows(harness)
    assert (row.state, row.reason, row.settled_at) == ("refused", "该人员已转出本统筹区", AFTER)
    # The same answer again (another copy, another event id): nothing changes.
    again = reply.model_copy(update={"reason": "重复", "replied_at": AFTER + timedelta(days=1)})
    await answer(harness, reply_message(again))
    (row,) = await rows(harness)
    assert (row.reason, row.settled_at) == ("该人员已转出本统筹区", AFTER)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown", "did not make"),
        ("other system", "request for another system"),
        ("wrong topic", "another system's topic"),
        ("not a reply", "not a feedback reply"),
        ("garbage", "not a contract event"),
    ],
)
async def test_a_reply_identity_cannot_apply_is_a_dead_letter_with_the_reason(
    harness: Harness, case: str, reason: str
) -> None:
    await collected(harness)
    (request,) = requests(harness)
    reply = FeedbackReplied(
        feedback_id=request.feedback_id,
        system="si_core",
        outcome=FeedbackOutcome.APPLIED,
        replied_at=AFTER,
    )
    message = reply_message(reply)
    if case == "unknown":
        message = reply_message(reply.model_copy(update={"feedback_id": uuid4()}))
    elif case == "other system":
        message = reply_message(reply.model_copy(update={"system": "card"}))
    elif case == "wrong topic":
        message = reply_message(reply, topic="feedback.card.replies")
    elif case == "not a reply":
        message = reply_message(request)  # type: ignore[arg-type]
    elif case == "garbage":
        message = InboundMessage(
            topic="feedback.si_core.replies",
            partition=0,
            offset=0,
            key=b"k",
            value=b"{}",
            headers=(),
            timestamp=0,
            envelope=None,
        )
    with pytest.raises(PermanentError, match=reason):
        await answer(harness, message)
    (row,) = await rows(harness)
    assert row.state == "pending"
