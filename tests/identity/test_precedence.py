"""Precedence between an approved collection and the business systems' records (golden.py, 44号
Art.22, 41号 §4), scenario by scenario as the agency would tell them: a clerk collected a phone
(or a name) on a day; the business systems had their own value before, or changed it after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from canbao_identity import records as r
from canbao_identity.golden import (
    LinkedRecord,
    Standing,
    golden_record,
    same_value,
    standing,
)
from canbao_identity.resolution import LinkKind

NUMBER = "520102199003074015"
PERSON = {r.ID_NUMBER: NUMBER, r.GENDER: "1", r.BIRTH_DATE: "1990-03-07", r.DOCUMENT_TYPE: "01"}
APPROVED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # AAE015 of the collection
LONG_AGO = APPROVED - timedelta(days=400)
NEXT_WEEK = APPROVED + timedelta(days=7)


def source(
    table: str, changed_at: datetime | None = LONG_AGO, key: str = "1", **claims: Any
) -> LinkedRecord:
    return LinkedRecord(
        source_table=table,
        record_key=f"k={key}",
        link_kind=LinkKind.EXACT,
        position=1000,
        observed_at=None,
        claims={**PERSON, r.NAME: "王伟", **claims},
        changed_at=changed_at,
    )


def counter(
    approved: datetime = APPROVED, collection_id: str = "c-1", **claims: Any
) -> LinkedRecord:
    return LinkedRecord(
        source_table="collection.counter",
        record_key=collection_id,
        link_kind=LinkKind.EXACT,
        position=int(approved.timestamp() * 1000),
        observed_at=approved.isoformat(),
        claims={r.DOCUMENT_TYPE: "01", r.ID_NUMBER: NUMBER, **claims},
        provenance={"handler": "clerk-1", "reviewer": "reviewer-1", "collection_id": "c-1"},
        changed_at=approved,
    )


def shown(*records: LinkedRecord, item: str = r.PHONE) -> dict[str, Any]:
    return golden_record(list(records)).values[item]


# -- c. an older source saying something else: the collected value, awaiting write-back -----------


def test_a_phone_collected_at_the_counter_shows_as_collected_while_the_systems_are_behind() -> None:
    entry = shown(
        source("si_core.ac01", phone="13900000001"),
        source("card.card_holder", phone="13900000002"),
        counter(phone="13812345678"),
    )
    assert entry["value"] == "13812345678"
    assert entry["source"] == "collection.counter"
    assert entry["collection"]["reviewer"] == "reviewer-1"
    assert entry["awaiting_write_back"] == ["card.card_holder", "si_core.ac01"]


def test_a_record_of_unknown_age_is_older_than_any_collection() -> None:
    """A record never streamed since identity_0006 (no time): the collection still wins."""
    entry = shown(
        source("si_core.ac01", changed_at=None, phone="13900000001"), counter(phone="13812345678")
    )
    assert entry["source"] == "collection.counter"


def test_the_household_register_does_not_await_a_write_back_the_agency_cannot_ask() -> None:
    entry = shown(source("hukou.person", name="王 伟伟"), counter(name="王伟伟"), item=r.NAME)
    assert entry["source"] == "hukou.person"  # (a): the same name once spaces are ignored
    entry = shown(source("hukou.person", name="王卫"), counter(name="王伟伟"), item=r.NAME)
    assert entry["source"] == "collection.counter" and "awaiting_write_back" not in entry


# -- a. the source agrees: it takes over -------------------------------------------------------


def test_once_the_insurance_system_has_the_new_phone_the_value_shows_that_system_again() -> None:
    entry = shown(
        source("si_core.ac01", changed_at=NEXT_WEEK, phone="138-1234-5678"),
        source("card.card_holder", phone="13900000002"),
        counter(phone="13812345678"),
    )
    assert entry["source"] == "si_core.ac01" and entry["value"] == "138-1234-5678"
    assert "collection" not in entry


def test_a_source_that_already_agreed_before_the_collection_takes_over_too() -> None:
    entry = shown(source("card.card_holder", phone="13812345678"), counter(phone="13812345678"))
    assert entry["source"] == "card.card_holder"


# -- b. the source changed after the approval: it wins ------------------------------------------


def test_a_phone_changed_in_the_business_system_after_the_collection_wins() -> None:
    entry = shown(
        source("card.card_holder", changed_at=NEXT_WEEK, phone="13700000009"),
        source("si_core.ac01", phone="13900000001"),
        counter(phone="13812345678"),
    )
    assert entry["source"] == "card.card_holder" and entry["value"] == "13700000009"
    assert entry["changed_since_collection"] == "c-1"


def test_a_change_in_the_same_second_as_the_approval_is_not_newer() -> None:
    entry = shown(
        source("si_core.ac01", changed_at=APPROVED, phone="13900000001"),
        counter(phone="13812345678"),
    )
    assert entry["source"] == "collection.counter"


def test_a_name_changed_in_the_household_register_after_the_collection_wins() -> None:
    golden = golden_record(
        [source("hukou.person", changed_at=NEXT_WEEK, name="王卫"), counter(name="王伟伟")]
    )
    assert golden.values[r.NAME]["source"] == "hukou.person"
    assert golden.values[r.NAME]["value"] == "王卫"


def test_a_birth_date_collected_wins_over_an_older_insurance_record() -> None:
    entry = shown(
        source("medical.insured", birth_date="1990-03-08"),
        counter(birth_date="1990-03-07"),
        item=r.BIRTH_DATE,
    )
    assert entry["source"] == "collection.counter"
    assert entry["awaiting_write_back"] == ["medical.insured"]


# -- several collections, several items -------------------------------------------------------


def test_the_newest_collection_speaks_for_the_person() -> None:
    older = counter(APPROVED - timedelta(days=30), "c-0", phone="13600000000")
    entry = shown(source("si_core.ac01", phone="13900000001"), older, counter(phone="13812345678"))
    assert entry["record_key"] == "c-1" and entry["value"] == "13812345678"


def test_each_item_is_settled_on_its_own() -> None:
    golden = golden_record(
        [
            source(
                "si_core.ac01",
                changed_at=NEXT_WEEK,
                phone="13700000009",
                residence_address="贵阳市云岩区中华北路1号",
            ),
            counter(phone="13812345678", residence_address="贵阳市南明区花果园2号"),
        ]
    )
    # The row changed after the approval (its phone did): both its items are newer.
    assert golden.values[r.PHONE]["source"] == "si_core.ac01"
    assert golden.values[r.RESIDENCE_ADDRESS]["source"] == "si_core.ac01"
    golden = golden_record(
        [
            source(
                "si_core.ac01", phone="13812345678", residence_address="贵阳市云岩区中华北路1号"
            ),
            counter(phone="13812345678", residence_address="贵阳市南明区花果园2号"),
        ]
    )
    assert golden.values[r.PHONE]["source"] == "si_core.ac01"
    assert golden.values[r.RESIDENCE_ADDRESS]["source"] == "collection.counter"


def test_a_phone_gap_reappears_when_the_system_changes_the_phone_to_a_wrong_one() -> None:
    golden = golden_record(
        [
            source("si_core.ac01", changed_at=NEXT_WEEK, phone="1381234"),
            counter(phone="13812345678"),
        ]
    )
    assert [g.item.value for g in golden.inaccurate] == ["phone"]


def test_the_order_of_the_records_does_not_matter() -> None:
    records = [
        source("si_core.ac01", phone="13900000001"),
        source("card.card_holder", changed_at=NEXT_WEEK, phone="13700000009"),
        counter(phone="13812345678"),
    ]
    assert golden_record(records).values == golden_record(records[::-1]).values


# -- the rule itself ---------------------------------------------------------------------------


def test_standing_of_a_source_against_a_collection() -> None:
    collection = counter(phone="13812345678")
    assert standing(collection, source("x.t", phone="138 1234 5678"), r.PHONE) is Standing.AGREES
    assert (
        standing(collection, source("x.t", NEXT_WEEK, phone="13700000009"), r.PHONE)
        is Standing.CHANGED_SINCE
    )
    assert (
        standing(collection, source("x.t", phone="13700000009"), r.PHONE)
        is Standing.AWAITS_WRITE_BACK
    )
    assert standing(collection, source("x.t"), r.PHONE) is None  # the record has no phone


def test_values_are_compared_once_normalised() -> None:
    assert same_value(r.ID_NUMBER, "52010219900307401x", "52010219900307401X")
    assert same_value(r.PHONE, "0851-86812345", "085186812345")
    assert not same_value(r.NAME, "王伟", "王卫")
