"""The golden record's rules (golden.py, domain.md §3) as pure functions, scenario by scenario as a
clerk would tell them: which source answers for each item (the precedence table), the newest
change within one source, what counts as a phone or an address, who "the" employer is, a name the
household register disagrees with, another person behind the same number, and an approved
collection against the business systems, item by item, the newest collection speaking for the
person (rules a-c, domain.md §2.2 and §2.4). And the property that makes duplicated and
out-of-order change events converge: the same records in any order give the same golden record.
No database: the records are built here, as identity links them."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from canbao_contracts.codes import RegistrationItem
from canbao_identity import records as r
from canbao_identity.golden import (
    Golden,
    GoldenDocument,
    LinkedRecord,
    Standing,
    birth_date_of,
    golden_record,
    same_value,
    standing,
)
from canbao_identity.records import FactDraft
from canbao_identity.resolution import LinkKind
from tests.identity.conftest import PROTECTOR

NUMBER = "520102199003074015"  # valid: born 1990-03-07, male
PERSON = {r.DOCUMENT_TYPE: "01", r.ID_NUMBER: NUMBER, r.NAME: "王伟", r.GENDER: "1",
          r.BIRTH_DATE: "1990-03-07"}  # fmt: skip
APPROVED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # AAE015 of the collection
LONG_AGO = APPROVED - timedelta(days=400)
NEXT_WEEK = APPROVED + timedelta(days=7)
_keys = itertools.count(1)

# -- builders --------------------------------------------------------------------------------


def record(
    table: str,
    *,
    key: str | None = None,
    position: int = 1000,
    kind: LinkKind = LinkKind.EXACT,
    changed_at: datetime | None = LONG_AGO,
    facts: tuple[FactDraft, ...] = (),
    **claims: Any,
) -> LinkedRecord:
    """A current source row of the person, with his identity unless `claims` say otherwise."""
    return LinkedRecord(
        source_table=table,
        record_key=key or f"k={next(_keys)}",
        link_kind=kind,
        position=position,
        observed_at=None,
        claims={**PERSON, **claims},
        facts=facts,
        changed_at=changed_at,
    )


def register(**kw: Any) -> LinkedRecord:
    return record("hukou.person", **kw)


def permit(**kw: Any) -> LinkedRecord:
    return record("hukou.resident_permit", **kw)


def insurance(**kw: Any) -> LinkedRecord:
    return record("si_core.ac01", **kw)


def medical(**kw: Any) -> LinkedRecord:
    return record("medical.insured", **kw)


def card(**kw: Any) -> LinkedRecord:
    return record("card.card_holder", **kw)


def counter(approved: datetime = APPROVED, key: str = "c-1", **claims: Any) -> LinkedRecord:
    """A collection at the counter, approved at `approved`: only what the clerk collected."""
    return LinkedRecord(
        source_table="collection.counter",
        record_key=key,
        link_kind=LinkKind.EXACT,
        position=int(approved.timestamp() * 1000),
        observed_at=approved.isoformat(),
        claims={r.DOCUMENT_TYPE: "01", r.ID_NUMBER: NUMBER, **claims},
        provenance={"handler": "clerk-1", "reviewer": "reviewer-1", "collection_id": key},
        changed_at=approved,
    )


def job(unit: str, ended_on: str | None = None) -> FactDraft:
    return FactDraft(
        "employment", {"unit_id": unit, "unit_name": f"{unit}公司", "ended_on": ended_on}
    )


def paying(unit: str | None, state: str = "paying") -> FactDraft:
    return FactDraft("enrolment", {"unit_id": unit, "state": state})


def studying(state: str = "1") -> FactDraft:
    return FactDraft("study", {"state": state})


def pension(state: str = "1") -> FactDraft:
    return FactDraft("benefit", {"insurance": "pension", "state": state})


def golden(*records: LinkedRecord) -> Golden:
    return golden_record(list(records))


def source_of(g: Golden, item: str) -> str | None:
    entry = g.values.get(item)
    return None if entry is None else entry["source"]


def gaps(g: Golden) -> list[tuple[str, str | None]]:
    return [(gap.item.value, gap.source) for gap in g.inaccurate]


# -- precedence between the sources ----------------------------------------------------------


def test_the_household_register_wins_the_name_over_the_insurance_system() -> None:
    g = golden(insurance(name="王卫", position=9000), register(name="王伟"))
    assert g.value(r.NAME) == "王伟" and source_of(g, r.NAME) == "hukou.person"


def test_the_residence_permit_answers_for_gender_and_birth_date_before_the_insurance_system() -> (
    None
):
    # No household register here (registered elsewhere): public security's permit comes next.
    g = golden(insurance(gender="2", birth_date="1990-03-08"), permit())
    assert g.value(r.GENDER) == "1" and source_of(g, r.GENDER) == "hukou.resident_permit"
    assert g.value(r.BIRTH_DATE) == "1990-03-07"


def test_the_insurance_system_answers_for_identity_before_medical_insurance() -> None:
    g = golden(medical(name="王 卫"), insurance(name="王伟"))
    assert source_of(g, r.NAME) == "si_core.ac01"


def test_a_source_outside_the_precedence_never_answers_for_an_item() -> None:
    g = golden(card(name="王卫", household_place="520102"))
    assert r.NAME not in g.values and r.HOUSEHOLD_PLACE not in g.values
    assert RegistrationItem.NAME in g.missing


def test_the_household_place_comes_from_the_register_then_the_insurance_system_not_a_permit() -> (
    None
):
    g = golden(permit(household_place="贵州省遵义市"), insurance(household_place="贵州省贵阳市"))
    assert source_of(g, r.HOUSEHOLD_PLACE) == "si_core.ac01"
    g = golden(
        insurance(household_place="贵州省贵阳市"), register(household_place="贵州省六盘水市")
    )
    assert g.value(r.HOUSEHOLD_PLACE) == "贵州省六盘水市"


def test_the_household_region_comes_from_public_security_only() -> None:
    # A permit means registered elsewhere: its region is the household region (golden.py).
    g = golden(insurance(household_region_code="520102"), permit(household_region_code="510104"))
    assert g.value(r.HOUSEHOLD_REGION) == "510104"
    assert r.HOUSEHOLD_REGION not in golden(insurance(household_region_code="520102")).values


def test_the_household_itself_is_the_household_registers_alone() -> None:
    # domain.md §2.3: the survey visits the household the register records.
    household = {
        r.HOUSEHOLD_NUMBER: "H1",
        r.HOUSEHOLD_RELATION: "02",
        r.HOUSEHOLD_ADDRESS: "某路1号",
        r.HOUSEHOLD_STATUS: "0",
    }
    g = golden(insurance(**household), counter(**household))
    assert (
        not {r.HOUSEHOLD_NUMBER, r.HOUSEHOLD_RELATION, r.HOUSEHOLD_ADDRESS, r.HOUSEHOLD_STATUS}
        & g.values.keys()
    )
    g = golden(insurance(household_number="H9"), register(**household))
    assert g.value(r.HOUSEHOLD_NUMBER) == "H1" and g.household_registered


def test_the_insurance_system_wins_the_phone_over_the_card_system_and_hukou_has_none() -> None:
    g = golden(
        register(phone="13700000001"), card(phone="13700000002"), insurance(phone="13700000003")
    )
    assert g.value(r.PHONE) == "13700000003"
    g = golden(register(phone="13700000001"), card(phone="13700000002"))
    assert source_of(g, r.PHONE) == "card.card_holder"


def test_the_residence_address_from_insurance_then_permit_then_register() -> None:
    ins, per, reg = (
        insurance(residence_address="云岩区中华北路1号"),
        permit(residence_address="南明区花果园2号"),
        register(residence_address="观山湖区林城路3号"),
    )
    assert source_of(golden(reg, per, ins), r.RESIDENCE_ADDRESS) == "si_core.ac01"
    assert source_of(golden(reg, per), r.RESIDENCE_ADDRESS) == "hukou.resident_permit"
    assert source_of(golden(reg), r.RESIDENCE_ADDRESS) == "hukou.person"


def test_the_household_type_from_insurance_then_permit_never_the_register() -> None:
    assert (
        golden(permit(household_type="20"), insurance(household_type="10")).value(r.HOUSEHOLD_TYPE)
        == "10"
    )
    assert golden(permit(household_type="20")).value(r.HOUSEHOLD_TYPE) == "20"
    assert r.HOUSEHOLD_TYPE not in golden(register(household_type="10")).values


def test_the_personal_identity_comes_from_the_insurance_system_alone() -> None:
    assert golden(insurance(personal_identity="11")).value(r.PERSONAL_IDENTITY) == "11"
    assert r.PERSONAL_IDENTITY not in golden(permit(personal_identity="11")).values


def test_the_region_is_where_insured_then_the_permit_and_a_counter_only_for_a_newcomer() -> None:
    g = golden(
        permit(region_code="520103"), medical(region_code="520102"), counter(region_code="520111")
    )
    assert g.value(r.REGION) == "520102" and source_of(g, r.REGION) == "medical.insured"
    g = golden(permit(region_code="520103"), counter(NEXT_WEEK, region_code="520111"))
    assert g.value(r.REGION) == "520103"  # a collection, even newer, only as the fallback
    assert golden(counter(region_code="520111")).value(r.REGION) == "520111"


def test_a_death_date_shows_only_for_the_deceased_and_cremation_comes_first() -> None:
    g = golden(
        register(household_status="1", death_date="2026-10-01"),
        record("civil.cremation", death_date="2026-09-30"),
    )
    assert g.deceased and g.value(r.DEATH_DATE) == "2026-09-30"
    g = golden(register(household_status="1", death_date="2026-10-01"))
    assert g.deceased and g.value(r.DEATH_DATE) == "2026-10-01"
    g = golden(register(household_status="0", death_date="2026-10-01"))
    assert not g.deceased and r.DEATH_DATE not in g.values


# -- within one source the newest change wins ------------------------------------------------


def test_the_newest_row_of_the_insurance_system_gives_the_phone() -> None:
    g = golden(
        insurance(position=2000, phone="13700000002"), insurance(position=1000, phone="13700000001")
    )
    assert g.value(r.PHONE) == "13700000002"


def test_precedence_beats_recency_between_sources() -> None:
    g = golden(card(position=9000, phone="13700000009"), insurance(position=1, phone="13700000001"))
    assert g.value(r.PHONE) == "13700000001"


def test_two_rows_at_the_same_position_are_settled_by_their_key() -> None:
    g = golden(insurance(key="k=b", phone="13700000002"), insurance(key="k=a", phone="13700000001"))
    assert g.value(r.PHONE) == "13700000001"


# -- phones ----------------------------------------------------------------------------------


def test_a_valid_mobile_is_no_gap() -> None:
    g = golden(insurance(phone="13812345678"))
    assert g.value(r.PHONE) == "13812345678" and gaps(g) == []


def test_a_landline_with_or_without_a_hyphen_is_a_phone() -> None:
    for phone in ("0851-86812345", "085186812345", "010-1234567"):
        assert gaps(golden(insurance(phone=phone))) == [], phone


def test_a_phone_typed_with_hyphens_is_the_same_phone() -> None:
    assert same_value(r.PHONE, "138-1234-5678", "13812345678")
    assert same_value(r.PHONE, "138 1234 5678", "13812345678")
    assert same_value(r.PHONE, "0851-86812345", "085186812345")  # a landline's too
    assert not same_value(r.NAME, "王-伟", "王伟")  # only a phone's hyphens are ignored


def test_a_malformed_phone_is_shown_with_a_format_gap_for_its_system() -> None:
    for phone in ("1381234", "12812345678", "85186812345", "138123456789"):
        g = golden(insurance(phone=phone))
        assert g.value(r.PHONE) == phone
        assert gaps(g) == [("phone", "si_core")], phone
        assert g.inaccurate[0].reason == "手机号码格式错误"  # value-free: it travels in events


def test_a_well_formed_phone_answers_before_a_malformed_one_which_stays_a_gap() -> None:
    g = golden(insurance(phone="1381234"), card(phone="13700000001"))
    assert g.value(r.PHONE) == "13700000001" and source_of(g, r.PHONE) == "card.card_holder"
    assert gaps(g) == [("phone", "si_core")]  # the insurance system still holds a typo
    g = golden(insurance(phone="13900000001"), card(phone="1370000"))
    assert g.value(r.PHONE) == "13900000001" and gaps(g) == []  # a lower source is not asked


def test_of_two_malformed_phones_the_one_shown_is_the_one_gap() -> None:
    g = golden(insurance(phone="1381234"), card(phone="1370000"))
    assert g.value(r.PHONE) == "1381234" and gaps(g) == [("phone", "si_core")]


def test_a_mobile_typed_with_hyphens_is_a_format_gap() -> None:
    # VALID_PHONE allows a hyphen only after a landline's area code.
    assert gaps(golden(insurance(phone="138-1234-5678"))) == [("phone", "si_core")]


def test_no_phone_anywhere_is_a_missing_item_not_a_gap() -> None:
    g = golden(register(), insurance(phone=""))
    assert RegistrationItem.PHONE in g.missing and gaps(g) == []


# -- addresses -------------------------------------------------------------------------------


def test_an_address_of_不详_is_no_address() -> None:
    for placeholder in ("不详", "无", "暂无", "-", "/", " 不详 "):
        g = golden(insurance(residence_address=placeholder))
        assert RegistrationItem.RESIDENCE_ADDRESS in g.missing, placeholder


def test_a_placeholder_address_gives_way_to_a_lower_source_with_a_real_one() -> None:
    g = golden(insurance(residence_address="无"), register(residence_address="观山湖区林城路3号"))
    assert source_of(g, r.RESIDENCE_ADDRESS) == "hukou.person"


def test_an_address_that_merely_contains_不详_is_an_address() -> None:
    g = golden(insurance(residence_address="云岩区不详路1号"))
    assert g.value(r.RESIDENCE_ADDRESS) == "云岩区不详路1号"


# -- employment ------------------------------------------------------------------------------


def test_an_open_employment_registration_names_the_employer_before_a_paying_unit() -> None:
    g = golden(insurance(facts=(paying("U2"),)), record("employment.ue01", facts=(job("U1"),)))
    assert g.value(r.EMPLOYMENT_STATUS) == {
        "status": "employed",
        "unit_id": "U1",
        "unit_name": "U1公司",
    }


def test_an_ended_employment_leaves_the_unit_that_pays_the_enrolment() -> None:
    g = golden(insurance(facts=(paying("U2"), job("U1", ended_on="2026-06-30"))))
    assert g.value(r.EMPLOYMENT_STATUS) == {
        "status": "employed",
        "unit_id": "U2",
        "unit_name": None,
    }


def test_a_suspended_or_unitless_enrolment_is_not_employment() -> None:
    g = golden(insurance(facts=(paying("U2", state="suspended"), paying(None))))
    assert r.EMPLOYMENT_STATUS not in g.values


def test_a_student_is_a_student_before_a_pensioner_and_an_employee_before_both() -> None:
    assert (
        golden(insurance(facts=(pension(), studying()))).value(r.EMPLOYMENT_STATUS)["status"]
        == "student"
    )
    assert golden(insurance(facts=(pension(),))).value(r.EMPLOYMENT_STATUS)["status"] == "retired"
    assert (
        golden(insurance(facts=(pension(), studying(), paying("U1")))).value(r.EMPLOYMENT_STATUS)[
            "status"
        ]
        == "employed"
    )
    # A graduate, a suspended pension: the form's "other", for a clerk to record.
    assert r.EMPLOYMENT_STATUS not in golden(insurance(facts=(studying("2"), pension("2")))).values


def test_of_two_open_jobs_the_newest_record_names_the_employer() -> None:
    g = golden(
        record("employment.ue01", position=1000, facts=(job("U1"),)),
        record("employment.ue01", position=2000, facts=(job("U2"),)),
    )
    assert g.value(r.EMPLOYMENT_STATUS)["unit_id"] == "U2"


# -- names, and another person behind the number ---------------------------------------------


def test_a_name_the_insurance_system_typed_differently_is_an_inaccurate_name() -> None:
    g = golden(register(), insurance(name="王卫"))
    assert gaps(g) == [("name", "si_core")]
    assert g.inaccurate[0].reason == "姓名与户籍登记不一致（社保系统）"
    assert "王卫" in g.inaccurate[0].detail and "王伟" in g.inaccurate[0].detail
    assert not g.identity_conflict  # a variant of the name, not another person (domain.md §3)


def test_a_name_typed_with_a_space_is_the_same_name() -> None:
    assert gaps(golden(register(), insurance(name="王 伟"), card(name=" 王伟"))) == []


def test_without_the_household_register_names_are_not_compared() -> None:
    assert gaps(golden(insurance(), medical(name="王卫"))) == []


def test_one_gap_per_source_and_defect() -> None:
    g = golden(register(), insurance(name="王卫"), insurance(name="王卫", position=2000))
    assert gaps(g) == [("name", "si_core")]


def test_the_same_number_with_another_name_and_birth_date_is_another_person() -> None:
    # domain.md §3: "the same number used by two different names".
    other = insurance(name="李娜", birth_date="1985-01-01", phone="13900000000")
    g = golden(register(), other)
    assert g.identity_conflict and g.conflicting == {("si_core.ac01", other.record_key)}
    assert r.PHONE not in g.values and other not in g.contributing
    assert gaps(g) == []  # not his name: no name gap for it


def test_another_name_with_his_birth_date_is_his_name_misspelt() -> None:
    g = golden(register(), insurance(name="李娜"))
    assert not g.identity_conflict and gaps(g) == [("name", "si_core")]


def test_only_an_exact_link_can_be_another_person() -> None:
    g = golden(register(), insurance(kind=LinkKind.REFERENCE, name="李娜", birth_date="1985-01-01"))
    assert not g.identity_conflict


def test_a_number_typed_with_a_lower_case_x_is_the_same_number() -> None:
    assert same_value(r.ID_NUMBER, "52010219900307401x", "52010219900307401X")


def test_a_birth_date_disagreeing_with_the_number_is_a_gap() -> None:
    g = golden(register(birth_date="1990-03-08"))
    assert gaps(g) == [("birth_date", "hukou")]
    assert gaps(golden(register())) == []


def test_a_gender_disagreeing_with_the_number_is_a_gap() -> None:
    # The 17th character of 520102199003074015 is odd: a man.
    g = golden(register(gender="2"))
    assert gaps(g) == [("gender", "hukou")]
    assert g.inaccurate[0].reason == "性别与公民身份号码不一致"
    assert gaps(golden(register())) == []
    assert gaps(golden(register(gender="9"))) == []  # GB/T 2261.1: unstated
    # Another document says nothing of the gender.
    passport = {r.DOCUMENT_TYPE: "02", r.ID_NUMBER: "E12345678"}
    assert gaps(golden(medical(gender="2", **passport))) == []


def test_birth_date_of_reads_the_golden_birth_date() -> None:
    assert birth_date_of(golden(register())) == date(1990, 3, 7)
    assert birth_date_of(golden(card())) is None


# -- records not linked by the number --------------------------------------------------------


def test_a_candidate_record_gives_no_value_but_its_number_is_a_gap() -> None:
    # Linked on name + birth date + gender only (resolution.LinkKind.CANDIDATE).
    typo = NUMBER[:-1] + "0"
    candidate = insurance(kind=LinkKind.CANDIDATE, id_number=typo, phone="13700000009")
    g = golden(register(), card(phone="13700000001"), candidate)
    assert g.value(r.PHONE) == "13700000001"
    assert g.value(r.ID_NUMBER) == NUMBER
    assert gaps(g) == [("id_number", "si_core")]
    assert candidate in g.contributing  # its facts are still the person's


# -- an approved collection against the sources (module docstring a-c, domain.md §2.2) -------


def test_a_collection_beats_an_older_source_and_asks_the_business_systems_to_write_back() -> None:
    # (c)
    entry = golden(
        insurance(phone="13900000001"),
        card(phone="13900000002"),
        register(),
        counter(phone="13812345678"),
    ).values[r.PHONE]
    assert entry["value"] == "13812345678" and entry["source"] == "collection.counter"
    assert entry["collection"] == {
        "handler": "clerk-1",
        "reviewer": "reviewer-1",
        "collection_id": "c-1",
    }
    assert entry["awaiting_write_back"] == ["card.card_holder", "si_core.ac01"]


def test_a_birth_date_collected_beats_an_older_medical_insurance_record() -> None:
    # (c) on an identity item, and medical insurance is asked to write it back.
    g = golden(medical(birth_date="1990-03-08"), counter(birth_date="1990-03-07"))
    entry = g.values[r.BIRTH_DATE]
    assert entry["source"] == "collection.counter"
    assert entry["awaiting_write_back"] == ["medical.insured"]


def test_the_household_register_is_never_asked_to_write_back() -> None:
    # (c) on a name: public security is no feedback system (topics.FEEDBACK_SYSTEMS).
    entry = golden(register(name="王卫"), counter(name="王伟伟")).values[r.NAME]
    assert entry["source"] == "collection.counter" and "awaiting_write_back" not in entry


def test_a_placeholder_address_is_asked_to_be_written_back() -> None:
    # (c): the business system holds no address, the collection has one.
    entry = golden(
        insurance(residence_address="不详"), counter(residence_address="云岩区中华北路1号")
    ).values[r.RESIDENCE_ADDRESS]
    assert entry["source"] == "collection.counter"
    assert entry["awaiting_write_back"] == ["si_core.ac01"]


def test_of_two_sources_changed_since_the_collection_precedence_decides() -> None:
    # (b), our convention: the later change does not win, the better source does.
    entry = golden(
        insurance(changed_at=NEXT_WEEK, phone="13900000001"),
        card(changed_at=NEXT_WEEK + timedelta(days=1), phone="13700000009"),
        counter(phone="13812345678"),
    ).values[r.PHONE]
    assert entry["source"] == "si_core.ac01" and entry["changed_since_collection"] == "c-1"


def test_a_source_that_caught_up_shows_the_source_again() -> None:
    # (a), once normalised
    entry = golden(
        insurance(changed_at=NEXT_WEEK, phone="138 1234 5678"), counter(phone="13812345678")
    ).values[r.PHONE]
    assert entry["source"] == "si_core.ac01" and "collection" not in entry
    # A phone's hyphens too, beside a card record still behind: the value as the system holds it.
    entry = golden(
        insurance(changed_at=NEXT_WEEK, phone="138-1234-5678"),
        card(phone="13900000002"),
        counter(phone="13812345678"),
    ).values[r.PHONE]
    assert entry["source"] == "si_core.ac01" and entry["value"] == "138-1234-5678"
    assert "collection" not in entry


def test_a_source_that_agreed_before_the_collection_takes_over_too() -> None:
    # (a) whatever its time: the card system had the phone before the clerk collected it.
    entry = golden(card(phone="13812345678"), counter(phone="13812345678")).values[r.PHONE]
    assert entry["source"] == "card.card_holder"
    # The household register on a name, the same once spaces are ignored.
    entry = golden(register(name="王 伟伟"), counter(name="王伟伟")).values[r.NAME]
    assert entry["source"] == "hukou.person"


def test_a_collection_loses_to_a_source_changed_after_it_was_approved() -> None:
    # (b): 44号 Art.22, the person changed it through the system's own procedure.
    entry = golden(
        insurance(phone="13900000001"),
        card(changed_at=NEXT_WEEK, phone="13700000009"),
        counter(phone="13812345678"),
    ).values[r.PHONE]
    assert entry["source"] == "card.card_holder" and entry["value"] == "13700000009"
    assert entry["changed_since_collection"] == "c-1"


def test_a_name_changed_in_the_household_register_after_the_collection_wins() -> None:
    # (b) on an identity item: a later change in the register is later evidence.
    g = golden(register(changed_at=NEXT_WEEK, name="王卫"), counter(name="王伟伟"))
    assert g.value(r.NAME) == "王卫" and source_of(g, r.NAME) == "hukou.person"


def test_a_change_in_the_second_of_the_approval_or_of_unknown_time_is_older() -> None:
    # Unknown: a snapshot row without its updated_at (handlers.changed_at).
    for changed in (APPROVED, None):
        entry = golden(
            insurance(changed_at=changed, phone="13900000001"), counter(phone="13812345678")
        ).values[r.PHONE]
        assert entry["source"] == "collection.counter", changed


def test_a_collected_item_silences_its_gap_until_a_source_changes_it_again() -> None:
    g = golden(
        register(),
        insurance(name="王卫", phone="1381234"),
        counter(name="王伟", phone="13812345678"),
    )
    assert gaps(g) == []
    g = golden(insurance(changed_at=NEXT_WEEK, phone="1381234"), counter(phone="13812345678"))
    assert gaps(g) == [("phone", "si_core")]  # (b): the person's change, typo and all
    g = golden(
        insurance(changed_at=NEXT_WEEK, phone="1381234"),
        card(changed_at=NEXT_WEEK, phone="13700000009"),
        counter(phone="13812345678"),
    )
    assert source_of(g, r.PHONE) == "card.card_holder"  # (b): a well-formed change first
    assert gaps(g) == [("phone", "si_core")]


def test_a_malformed_phone_in_an_older_record_is_corrected_by_the_collection() -> None:
    entry = golden(insurance(phone="1381234"), counter(phone="13812345678")).values[r.PHONE]
    assert entry["source"] == "collection.counter"
    assert entry["awaiting_write_back"] == ["si_core.ac01"]


def test_standing_of_a_source_against_the_collection_item_by_item() -> None:
    collection = counter(phone="13812345678", residence_address="花果园2号")
    assert standing(collection, insurance(phone="138-1234-5678"), r.PHONE) is Standing.AGREES
    assert (
        standing(collection, insurance(changed_at=NEXT_WEEK, phone="13700000009"), r.PHONE)
        is Standing.CHANGED_SINCE
    )
    assert standing(collection, insurance(phone="13700000009"), r.PHONE) is (
        Standing.AWAITS_WRITE_BACK
    )
    # A placeholder in the source: the collection corrects it, even from a newer record.
    assert (
        standing(
            collection,
            insurance(changed_at=NEXT_WEEK, residence_address="不详"),
            r.RESIDENCE_ADDRESS,
        )
        is Standing.AWAITS_WRITE_BACK
    )
    # Not a malformed phone: a change, typo and all.
    malformed = insurance(changed_at=NEXT_WEEK, phone="1381234")
    assert standing(collection, malformed, r.PHONE) is Standing.CHANGED_SINCE
    assert standing(collection, insurance(), r.PHONE) is None  # the source has no phone
    assert standing(counter(), insurance(phone="13700000009"), r.PHONE) is None  # nor collected


# -- several collections, several items ------------------------------------------------------


def test_the_newest_collection_speaks_for_the_person() -> None:
    older = counter(APPROVED - timedelta(days=30), "c-0", phone="13600000000")
    g = golden(insurance(phone="13900000001"), older, counter(phone="13812345678"))
    assert g.values[r.PHONE]["record_key"] == "c-1" and g.value(r.PHONE) == "13812345678"


def test_each_item_is_settled_on_its_own() -> None:
    collected = counter(phone="13812345678", residence_address="贵阳市南明区花果园2号")
    g = golden(
        insurance(
            changed_at=NEXT_WEEK, phone="13700000009", residence_address="贵阳市云岩区中华北路1号"
        ),
        collected,
    )
    # The row changed after the approval (its phone did): both its items are newer.
    assert source_of(g, r.PHONE) == "si_core.ac01"
    assert source_of(g, r.RESIDENCE_ADDRESS) == "si_core.ac01"
    g = golden(
        insurance(phone="13812345678", residence_address="贵阳市云岩区中华北路1号"), collected
    )
    assert source_of(g, r.PHONE) == "si_core.ac01"  # (a)
    assert source_of(g, r.RESIDENCE_ADDRESS) == "collection.counter"  # (c)


# -- the same records in any order -----------------------------------------------------------

_MIXED = (
    register(name="王伟", household_place="贵州省贵阳市", household_status="0"),
    permit(residence_address="南明区花果园2号", region_code="520102"),
    insurance(name="王卫", phone="13900000001", position=1000, facts=(paying("U2"),)),
    insurance(phone="13900000003", residence_address="不详", position=1000),
    card(changed_at=NEXT_WEEK, phone="13700000009"),
    medical(region_code="520103", birth_date="1990-03-08"),
    record("employment.ue01", facts=(job("U1"), job("U3"))),
    insurance(kind=LinkKind.CANDIDATE, id_number=NUMBER[:-1] + "0", phone="13600000000"),
    record("civil.cremation", name="李娜", birth_date="1985-01-01"),
    counter(APPROVED - timedelta(days=30), "c-0", phone="13812345678", name="王伟"),
    counter(phone="13812340000", residence_address="云岩区中华北路1号"),
)


@given(st.permutations(_MIXED))
def test_the_same_records_in_any_order_give_the_same_golden_record(
    records: list[LinkedRecord],
) -> None:
    assert golden_record(records) == golden_record(list(_MIXED))


# -- the golden record as identity keeps it ---------------------------------------------------


def test_the_sealed_document_opens_as_it_was_and_only_under_its_person() -> None:
    g = golden(register(gender="2"), insurance(phone="1381234"), counter(name="王伟"))
    document = GoldenDocument.of(g)
    person = uuid4()
    blob = document.sealed(PROTECTOR, person)
    opened = GoldenDocument.opened(PROTECTOR, person, blob, PROTECTOR.key_id)
    assert opened == document
    assert opened.inaccurate == g.inaccurate and opened.missing == g.missing
    assert opened.value(r.NAME) == "王伟"
    with pytest.raises(InvalidTag):  # copied to another person's row, it does not open
        GoldenDocument.opened(PROTECTOR, uuid4(), blob, PROTECTOR.key_id)
