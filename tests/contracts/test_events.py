"""The event models of the registry topics: what they carry, what they refuse, and that JSON
brings every one of them back unchanged."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args
from uuid import UUID, uuid4, uuid5

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from canbao_contracts.codes import (
    FlagType,
    Insurance,
    RegistrationItem,
    RegistrationState,
    StatusCode,
    SurveyReason,
    codes_for,
)
from canbao_contracts.events import (
    EVENT_CLASSES,
    EVENT_TYPES,
    Channel,
    CollectionApproved,
    ComparisonScope,
    CrossRegionEnrolmentFact,
    DeathFact,
    EnrolmentFact,
    Event,
    Fact,
    FactAsserted,
    FactsAsserted,
    FactSource,
    FeedbackReplied,
    FeedbackRequested,
    Flag,
    PersonDeceased,
    PersonRegistered,
    PersonsMerged,
    PersonUpdated,
    Statuses,
    StatusesChanged,
    UnitChanged,
    UnitDeleted,
    Verdict,
    VerifiedStatus,
    fact_id_for,
)
from canbao_contracts.events.fact_kinds import FACT_ID_NAMESPACE, FactBase
from canbao_contracts.events.facts import MAX_FACTS_PER_EVENT
from tests.contracts.event_examples import (
    AT,
    CONFIRMED,
    ENROLMENT_SOURCE,
    EVENTS,
    FACTS,
    FEEDBACK_ID,
    OTHER_PERSON_ID,
    PERSON,
    PERSON_ID,
    VERDICT,
    fact_fields,
    source,
)

# -- every event, every kind of fact ---------------------------------------------------------------


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
def test_every_event_survives_json(event: Event) -> None:
    assert type(event).model_validate_json(event.model_dump_json()) == event


def test_the_examples_cover_every_event_type_and_every_kind_of_fact() -> None:
    assert {type(event) for event in EVENTS.values()} == set(EVENT_CLASSES)
    kinds = {cls.model_fields["kind"].default for cls in _FACT_KINDS}
    assert set(FACTS) == kinds


def test_event_types_are_versioned_reverse_dns_names_registered_once() -> None:
    for event_type, cls in EVENT_TYPES.items():
        assert re.fullmatch(r"cn\.canbao\.registry\.[a-z]+\.[a-z]+\.v[0-9]+", event_type)
        assert cls.type == event_type
    assert len(EVENT_TYPES) == len(EVENT_CLASSES)


_PERSONS_EVENTS = {k: e for k, e in EVENTS.items() if not k.startswith(("feedback", "unit"))}


@pytest.mark.parametrize("event", _PERSONS_EVENTS.values(), ids=_PERSONS_EVENTS.keys())
def test_the_subject_is_the_person(event: Event) -> None:
    person = getattr(event, "person_id", None) or getattr(event, "merged_person_id", None)
    expected = person or getattr(event, "collection_id", None)
    assert event.subject == str(expected)
    assert UUID(event.subject)


def test_a_unit_event_is_keyed_by_the_units_aab001() -> None:
    for name in ("unit changed: 张伟's employer", "unit deleted"):
        event = EVENTS[name]
        assert isinstance(event, UnitChanged | UnitDeleted)
        assert event.subject == event.unit_id and event.destination.name == "registry.units"


@pytest.mark.parametrize("code", ["91520102MA6DK3XC4", "91520102MA6DK3XC4I", "91520102ma6dk3xc4l"])
def test_a_units_credit_code_is_18_characters_of_gb_32100(code: str) -> None:
    with pytest.raises(ValidationError, match="credit_code"):
        UnitChanged(unit_id="U1", revision=1, credit_code=code)


def test_a_merge_is_keyed_by_the_retired_person() -> None:
    merge = EVENTS["persons merged"]
    assert merge.subject == str(OTHER_PERSON_ID)


def test_a_collection_for_someone_not_yet_registered_is_keyed_by_the_collection() -> None:
    collection = EVENTS["collection approved: survey of a new person"]
    assert isinstance(collection, CollectionApproved) and collection.person_id is None
    assert collection.subject == str(collection.collection_id)


def test_events_refuse_fields_they_do_not_define() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PersonRegistered(**PERSON, name="张伟")  # type: ignore[call-arg]


def test_events_are_immutable() -> None:
    with pytest.raises(ValidationError):
        EVENTS["person registered"].region_code = "520103"  # type: ignore[attr-defined]


# -- no personal data in clear on the registry topics, except where it must travel ----------------

_CLEAR_PERSONAL_DATA = {"name", "id_number", "phone", "address", "residence_address", "xm", "sfzh"}


def _property_names(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        names = set(schema.get("properties", {}))
        return names | set().union(*(_property_names(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_property_names(v) for v in schema))
    return set()


@pytest.mark.parametrize(
    "cls", [c for c in EVENT_CLASSES if c not in (CollectionApproved, FeedbackRequested)]
)
def test_registry_events_carry_no_name_number_phone_or_address(cls: type[Event]) -> None:
    assert not _property_names(cls.model_json_schema()) & _CLEAR_PERSONAL_DATA


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("masked_name", "张伟"),
        ("masked_name", "*伟"),
        ("masked_id_number", "52010219900307123X"),
        ("masked_id_number", "5201****0307123X"),
    ],
)
def test_a_person_event_refuses_an_unmasked_name_or_number(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        PersonRegistered(**{**PERSON, field: value})


def test_a_collected_value_stays_out_of_repr() -> None:
    collection = EVENTS["collection approved: counter"]
    assert "13812345678" not in repr(collection) and "张伟" not in str(collection)


# -- feedback.<system> ----------------------------------------------------------------------


def test_a_feedback_request_travels_to_its_system_keyed_by_the_record() -> None:
    request = EVENTS["feedback requested: si_core's phone"]
    assert isinstance(request, FeedbackRequested)
    assert request.destination.name == "feedback.si_core"
    assert request.subject == "aac001=5201000042"
    assert "13812345678" not in repr(request) and "13812345678" not in str(request)
    card = request.model_copy(update={"system": "card"})
    assert card.destination.name == "feedback.card"


def test_a_reply_travels_on_its_systems_replies_topic_keyed_by_the_request() -> None:
    reply = EVENTS["feedback replied: refused by the card system"]
    assert reply.destination.name == "feedback.card.replies"
    assert reply.subject == str(FEEDBACK_ID)
    assert "注销" not in repr(reply)


def test_feedback_is_only_for_the_business_systems_that_own_items() -> None:
    request = EVENTS["feedback requested: si_core's phone"].model_dump()
    with pytest.raises(ValidationError, match="not a business system"):
        FeedbackRequested(**{**request, "system": "hukou"})
    with pytest.raises(ValidationError, match="at least one item"):
        FeedbackRequested(**{**request, "changes": ()})


def test_a_refusal_gives_its_reason() -> None:
    reply = EVENTS["feedback replied: refused by the card system"].model_dump()
    with pytest.raises(ValidationError, match="gives its reason"):
        FeedbackReplied(**{**reply, "reason": None})
    assert FeedbackReplied(**{**reply, "outcome": "applied", "reason": None}).reason is None


# -- registry.persons ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["52010", "5201021", "52O102", "990102", "５２０１０２"])
def test_a_region_code_is_a_gb_t_2260_division(code: str) -> None:
    with pytest.raises(ValidationError, match="region_code"):
        PersonRegistered(**{**PERSON, "region_code": code})


def test_gaps_are_listed_in_the_registration_forms_order_whatever_the_producer_did() -> None:
    missing = (RegistrationItem.PHONE, RegistrationItem.NAME, RegistrationItem.BIRTH_DATE)
    person = PersonRegistered(**{**PERSON, "missing": missing})
    assert person.missing == (
        RegistrationItem.NAME,
        RegistrationItem.BIRTH_DATE,
        RegistrationItem.PHONE,
    )
    reversed_ = PersonRegistered(**{**PERSON, "missing": tuple(reversed(missing))})
    assert reversed_.model_dump_json() == person.model_dump_json()


def test_only_a_required_item_can_be_missing() -> None:
    with pytest.raises(ValidationError, match="only required items"):
        PersonRegistered(**{**PERSON, "missing": (RegistrationItem.FAMILY_NUMBER,)})


def test_an_item_is_missing_once() -> None:
    with pytest.raises(ValidationError, match="twice"):
        PersonRegistered(**{**PERSON, "missing": (RegistrationItem.PHONE, RegistrationItem.PHONE)})


def test_an_update_names_what_changed_among_the_persons_fields() -> None:
    with pytest.raises(ValidationError, match="does not have"):
        PersonUpdated(**PERSON, changed=("salary",))
    with pytest.raises(ValidationError, match="changed"):
        PersonUpdated(**PERSON, changed=())
    update = PersonUpdated(**PERSON, changed=("region_code", "missing"))
    assert update.changed == ("missing", "region_code")


def test_a_death_date_belongs_to_a_deceased_person() -> None:
    with pytest.raises(ValidationError, match="deceased is false"):
        PersonRegistered(**PERSON, death_date=date(2026, 10, 1))
    with pytest.raises(ValidationError, match="deceased = true"):
        PersonDeceased(**PERSON)


def test_a_person_is_not_merged_into_itself() -> None:
    with pytest.raises(ValidationError, match="itself"):
        PersonsMerged(merged_person_id=PERSON_ID, surviving_person_id=PERSON_ID)


# -- registry.facts --------------------------------------------------------------------------------


def test_the_same_source_record_gives_the_same_fact_id() -> None:
    again = source("si_core", "ac02", "aac001=P0001,aae140=110,aab301=520102")
    assert fact_id_for(PERSON_ID, "enrolment", again) == FACTS["enrolment"].fact_id


def test_a_fact_id_differs_by_person_kind_and_record() -> None:
    ids = {
        fact_id_for(PERSON_ID, "enrolment", ENROLMENT_SOURCE),
        fact_id_for(OTHER_PERSON_ID, "enrolment", ENROLMENT_SOURCE),
        fact_id_for(PERSON_ID, "benefit", ENROLMENT_SOURCE),
        fact_id_for(PERSON_ID, "enrolment", source("si_core", "ac02", "aac001=P0002")),
    }
    assert len(ids) == 4


@given(
    st.uuids(),
    st.sampled_from(["enrolment", "benefit", "custody"]),
    st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True),
    st.text(min_size=1, max_size=200),
)
def test_a_fact_id_is_the_uuid5_of_its_person_kind_and_record(
    person_id: UUID, kind: str, table: str, record_key: str
) -> None:
    """Fixed forever (FACT_ID_NAMESPACE): RFC 4122's name-based id, whatever computes it."""
    record = source("si_core", table, record_key)
    name = f"{person_id}|{kind}|si_core.{table}|{record_key}"
    assert fact_id_for(person_id, kind, record) == uuid5(FACT_ID_NAMESPACE, name)


def test_a_fact_id_not_derived_from_its_source_is_refused() -> None:
    fact = FACTS["enrolment"].model_copy(update={"fact_id": uuid4()})
    with pytest.raises(ValidationError, match="derived from its source record"):
        FactAsserted(person_id=PERSON_ID, fact=fact)


def test_a_fact_of_another_person_is_refused() -> None:
    with pytest.raises(ValidationError, match="fact_id"):
        FactAsserted(person_id=OTHER_PERSON_ID, fact=FACTS["enrolment"])


def test_facts_asserted_together_are_each_derived_from_their_source_and_stated_once() -> None:
    """What one rebuild changed, in one event: each fact as FactAsserted would state it."""
    enrolment, study = FACTS["enrolment"], FACTS["study"]
    assert FactsAsserted(person_id=PERSON_ID, facts=(enrolment, study)).facts == (enrolment, study)
    underived = study.model_copy(update={"fact_id": uuid4()})
    with pytest.raises(ValidationError, match="derived from its source record"):
        FactsAsserted(person_id=PERSON_ID, facts=(enrolment, underived))
    with pytest.raises(ValidationError, match="fact_id"):
        FactsAsserted(person_id=OTHER_PERSON_ID, facts=(enrolment,))
    newer = enrolment.model_copy(update={"revision": enrolment.revision + 1})
    with pytest.raises(ValidationError, match="stated twice"):
        FactsAsserted(person_id=PERSON_ID, facts=(enrolment, newer))
    with pytest.raises(ValidationError, match="at least 1"):
        FactsAsserted(person_id=PERSON_ID, facts=())
    with pytest.raises(ValidationError, match=f"at most {MAX_FACTS_PER_EVENT}"):
        FactsAsserted(person_id=PERSON_ID, facts=(enrolment,) * (MAX_FACTS_PER_EVENT + 1))


def test_the_largest_facts_asserted_the_contract_allows_fits_a_default_kafka_message() -> None:
    """MAX_FACTS_PER_EVENT facts with every bounded string at its longest, of the character JSON
    writes longest (a control character: six bytes), stay under a broker's default message size
    limit (1 MiB): what identity publishes can always be sent."""
    widest = "\x01"
    facts = []
    for n in range(MAX_FACTS_PER_EVENT):
        key = f"{n:03}" + widest * 197
        source = FactSource(system="employment", table="job_registration", record_key=key)
        facts.append(
            FACTS["employment"].model_copy(
                update={
                    "fact_id": fact_id_for(PERSON_ID, "employment", source),
                    "source": source,
                    "unit_id": widest * 64,
                    "unit_name": widest * 100,
                }
            )
        )
    event = FactsAsserted(person_id=PERSON_ID, facts=tuple(facts))
    assert FactsAsserted.model_validate_json(event.model_dump_json()) == event
    assert len(event.model_dump_json().encode()) < 2**20


def test_a_retracted_fact_keeps_its_id() -> None:
    retracted = FACTS["enrolment"].model_copy(update={"retracted": True, "revision": 10**9})
    event = FactAsserted(person_id=PERSON_ID, fact=retracted)
    assert event.fact.fact_id == FACTS["enrolment"].fact_id


def test_an_enrolment_scheme_belongs_to_its_insurance() -> None:
    fields = {**FACTS["enrolment"].model_dump(), "scheme": StatusCode.EMPLOYEE_MEDICAL}
    with pytest.raises(ValidationError, match="not a pension scheme"):
        EnrolmentFact(**fields)


def test_a_cross_region_enrolment_is_provincial_or_national() -> None:
    fields = {**FACTS["cross_region_enrolment"].model_dump(), "scope": ComparisonScope.LOCAL}
    with pytest.raises(ValidationError, match="scope"):
        CrossRegionEnrolmentFact(**fields)


def test_a_fact_without_a_time_zone_is_refused() -> None:
    fields = {**FACTS["death"].model_dump(), "observed_at": datetime(2026, 11, 22, 10)}
    with pytest.raises(ValidationError, match="observed_at"):
        DeathFact(**fields)


# Every kind of the `Fact` union (Annotated[EnrolmentFact | …, discriminator]).
_FACT_KINDS: tuple[type[FactBase], ...] = get_args(get_args(Fact)[0])
_regions = st.sampled_from(["520102", "520103", "530102", "440305", "110101"]) | st.none()
_dates = st.dates(date(1900, 1, 1), date(2030, 12, 31)) | st.none()
_times = st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC))
_keys = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=50)


@st.composite
def fact_events(draw: st.DrawFn) -> FactAsserted:
    person_id = draw(st.uuids())
    kind_class = draw(st.sampled_from(_FACT_KINDS))
    kind = kind_class.model_fields["kind"].default
    fact_source = source(
        draw(st.sampled_from(["si_core", "medical", "collection"])), "t", draw(_keys)
    )
    insurance = draw(st.sampled_from(list(Insurance)))
    schemes = [code for code in codes_for(insurance) if code.insurance is insurance]
    fields: dict[str, Any] = {
        **fact_fields(kind, fact_source, person_id),
        "observed_at": draw(_times),
        "revision": draw(st.integers(0, 2**62)),
        "retracted": draw(st.booleans()),
        "insurance": insurance,
        "scheme": draw(st.sampled_from(schemes)),
        "region_code": draw(_regions),
        "scope": draw(st.sampled_from([ComparisonScope.PROVINCE, ComparisonScope.NATIONAL])),
        "unit_id": draw(st.none() | st.text("U0123456789", min_size=1, max_size=20)),
        "unit_name": draw(st.none() | st.text(max_size=100)),
        "reported_at": draw(st.none() | _times),
        "receiving_benefit": draw(st.booleans()),
        **{name: draw(_dates) for name in _DATE_FIELDS},
    }
    enums = {name: draw(st.sampled_from(list(_enum_of(kind_class, name)))) for name in _ENUMS}
    wanted = set(kind_class.model_fields) - {"kind"}
    values = {k: v for k, v in {**fields, **enums}.items() if k in wanted}
    return FactAsserted(person_id=person_id, fact=kind_class(**values))


_DATE_FIELDS = (
    *("first_enrolled_on", "period_start", "period_end", "started_on", "ended_on"),
    *("enrolled_on", "graduated_on", "admitted_on", "released_on", "cancelled_on", "died_on"),
)
_ENUMS = ("state", "level", "status")


def _enum_of(cls: type[BaseModel], name: str) -> Any:
    field = cls.model_fields.get(name)
    if field is None:
        return [None]
    annotation = field.annotation
    members = [a for a in getattr(annotation, "__args__", (annotation,)) if a is not type(None)]
    return members[0]


@given(fact_events())
def test_every_kind_of_fact_survives_json(event: FactAsserted) -> None:
    assert FactAsserted.model_validate_json(event.model_dump_json()) == event


# -- registry.statuses -----------------------------------------------------------------------------


@st.composite
def verdicts(draw: st.DrawFn) -> Verdict:
    """Consistent verdicts: the combinations domain.md §5 allows."""
    deceased = draw(st.booleans())
    statuses = Statuses(
        **{
            insurance.value: None if deceased else draw(st.sampled_from(codes_for(insurance)))
            for insurance in Insurance
        }
    )
    reasons = draw(st.lists(st.sampled_from(list(SurveyReason)), unique=True))
    registration = (
        RegistrationState.NEEDS_SURVEY
        if reasons
        else draw(st.sampled_from([RegistrationState.CONFIRMED, RegistrationState.VERIFIED]))
    )
    confirmed = registration is RegistrationState.CONFIRMED and not deceased
    flags = st.builds(
        Flag, type=st.sampled_from(list(FlagType)), insurance=st.sampled_from(list(Insurance))
    )
    return Verdict(
        region_code=draw(_regions),
        birth_date=draw(_dates),
        gender=draw(st.none() | st.sampled_from(["1", "2"])),
        household_registered_locally=draw(st.booleans()),
        household_data_obtained=draw(st.booleans()),
        deceased=deceased,
        statuses=statuses,
        flags=draw(st.lists(flags, unique_by=lambda f: (f.type, f.insurance))),
        needs_survey=bool(reasons),
        survey_reasons=reasons,
        registration=registration,
        confirmed_by=draw(st.sampled_from(list(ComparisonScope))) if confirmed else None,
    )


@given(verdicts(), st.none() | verdicts(), _times)
def test_every_verdict_change_survives_json(
    verdict: Verdict, previous: Verdict | None, at: datetime
) -> None:
    if verdict == previous:
        return  # nothing changed: never published
    event = StatusesChanged(
        person_id=PERSON_ID, verdict=verdict, previous=previous, evaluated_at=at
    )
    assert StatusesChanged.model_validate_json(event.model_dump_json()) == event


def _quarterly_row(people: list[Verdict]) -> dict[int, int]:
    """Columns 1-8 of domain.md §6 for one city, computed from verdicts alone."""
    living = [v for v in people if not v.deceased]
    home = [v for v in living if v.household_registered_locally]

    def confirmed_by(scope: ComparisonScope, among: list[Verdict]) -> list[Verdict]:
        return [v for v in among if v.confirmed_by is scope]

    return {
        1: len(home),
        2: len([v for v in home if v.household_data_obtained]),
        3: len(confirmed_by(ComparisonScope.LOCAL, living)),
        4: len([v for v in confirmed_by(ComparisonScope.LOCAL, living) if v not in home]),
        5: len(confirmed_by(ComparisonScope.PROVINCE, home)),
        6: len(confirmed_by(ComparisonScope.NATIONAL, home)),
        7: len([v for v in home if v.registration is not RegistrationState.CONFIRMED]),
        8: len([v for v in home if v.registration is RegistrationState.VERIFIED]),
    }


@given(st.lists(verdicts(), max_size=30))
def test_the_quarterly_tables_logical_check_holds_on_any_verdicts(people: list[Verdict]) -> None:
    row = _quarterly_row(people)
    assert row[1] == row[3] - row[4] + row[5] + row[6] + row[7]
    assert row[8] <= row[7]


def test_changed_lists_what_differs_from_the_previous_verdict() -> None:
    event = EVENTS["statuses changed: confirmed after collection"]
    assert isinstance(event, StatusesChanged)
    assert event.changed == (
        "statuses",
        "needs_survey",
        "survey_reasons",
        "registration",
        "confirmed_by",
    )


def test_a_first_verdict_changes_everything() -> None:
    event = EVENTS["statuses changed: first verdict"]
    assert isinstance(event, StatusesChanged) and event.changed == tuple(Verdict.model_fields)


def test_changed_cannot_lie() -> None:
    with pytest.raises(ValidationError, match="the difference is"):
        StatusesChanged(
            person_id=PERSON_ID,
            verdict=CONFIRMED,
            previous=VERDICT,
            changed=("flags",),
            evaluated_at=AT,
        )


def test_an_unchanged_verdict_is_not_an_event() -> None:
    with pytest.raises(ValidationError, match="nothing changed"):
        StatusesChanged(person_id=PERSON_ID, verdict=VERDICT, previous=VERDICT, evaluated_at=AT)


def test_a_status_belongs_to_its_insurance() -> None:
    with pytest.raises(ValidationError, match="21 is not a status of pension"):
        Statuses(pension="21", medical="21", injury="30", unemployment="40", maternity="50")


def test_a_dead_person_has_no_statuses_and_a_living_one_has_all_five() -> None:
    with pytest.raises(ValidationError, match="exactly when deceased"):
        Verdict(**{**VERDICT.model_dump(), "deceased": True})
    nothing = Statuses(pension=None, medical=None, injury=None, unemployment=None, maternity=None)
    with pytest.raises(ValidationError, match="exactly when deceased"):
        Verdict(**{**VERDICT.model_dump(), "statuses": nothing})


def test_needs_survey_goes_with_its_reasons_and_the_registration_state() -> None:
    with pytest.raises(ValidationError, match="survey_reasons"):
        Verdict(**{**VERDICT.model_dump(), "survey_reasons": ()})
    with pytest.raises(ValidationError, match="registration is needs_survey"):
        Verdict(**{**VERDICT.model_dump(), "registration": RegistrationState.VERIFIED})


def test_a_confirmed_registration_says_which_comparison_confirmed_it() -> None:
    with pytest.raises(ValidationError, match="which comparison"):
        Verdict(**{**CONFIRMED.model_dump(), "confirmed_by": None})
    with pytest.raises(ValidationError, match="not confirmed"):
        Verdict(**{**VERDICT.model_dump(), "confirmed_by": ComparisonScope.LOCAL})


def test_a_flag_is_raised_once() -> None:
    flag = Flag(type=FlagType.DUPLICATE_INSURANCE, insurance=Insurance.MEDICAL)
    with pytest.raises(ValidationError, match="twice"):
        Verdict(**{**VERDICT.model_dump(), "flags": (flag, flag)})


def test_statuses_read_by_insurance() -> None:
    assert VERDICT.statuses[Insurance.UNEMPLOYMENT] is StatusCode.UNINSURED_BY_EMPLOYER
    assert [insurance for insurance, _ in VERDICT.statuses.items()] == list(Insurance)


# -- registry.collections --------------------------------------------------------------------------

COLLECTION: dict[str, Any] = EVENTS["collection approved: survey of a new person"].model_dump()


@pytest.mark.parametrize("channel", list(Channel))
def test_maker_checker_the_reviewer_is_not_the_handler(channel: Channel) -> None:
    with pytest.raises(ValidationError, match="must not be the handler"):
        CollectionApproved(**{**COLLECTION, "channel": channel, "reviewer": COLLECTION["handler"]})


def test_a_counter_collection_is_rechecked_by_someone_other_than_the_clerk() -> None:
    """复核 (41号 表4): the clerk who collected (AAE011) never passes it (AAE014) themself."""
    counter = EVENTS["collection approved: counter"].model_dump()
    assert counter["reviewer"] != counter["handler"]
    assert CollectionApproved(**counter).reviewer == "reviewer-0007"
    with pytest.raises(ValidationError, match="must not be the handler"):
        CollectionApproved(**{**counter, "reviewer": counter["handler"]})


@pytest.mark.parametrize("channel", [Channel.PLATFORM, Channel.KIOSK, Channel.MOBILE])
def test_a_platform_change_and_a_self_service_entry_are_first_reviewed(channel: Channel) -> None:
    with pytest.raises(ValidationError, match="初审"):
        CollectionApproved(
            **{**COLLECTION, "channel": channel, "first_reviewer": None, "first_reviewed_at": None}
        )


def test_a_survey_collection_is_first_reviewed_by_the_platform() -> None:
    with pytest.raises(ValidationError, match="初审"):
        CollectionApproved(**{**COLLECTION, "first_reviewer": None, "first_reviewed_at": None})


def test_a_review_comes_after_the_collection() -> None:
    earlier = COLLECTION["handled_at"] - timedelta(minutes=1)
    with pytest.raises(ValidationError, match="AAE015"):
        CollectionApproved(**{**COLLECTION, "reviewed_at": earlier})


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("gender", "男"),
        ("household_type", "13"),
        ("personal_identity", "99"),
        ("birth_date", "19900230"),
    ],
)
def test_coded_collected_items_are_checked(item: str, value: str) -> None:
    items = {**COLLECTION["items"], item: value}
    with pytest.raises(ValidationError, match=item):
        CollectionApproved(**{**COLLECTION, "items": items})


def test_an_empty_collected_value_is_refused() -> None:
    with pytest.raises(ValidationError, match="items"):
        CollectionApproved(**{**COLLECTION, "items": {"phone": "  "}})


@pytest.mark.parametrize(
    "code", [StatusCode.URBAN_EMPLOYEE_PENSION, StatusCode.INTERRUPTED, StatusCode.EMPLOYEE_MEDICAL]
)
def test_a_collection_cannot_verify_an_enrolment_or_an_interruption(code: StatusCode) -> None:
    with pytest.raises(ValidationError, match="cannot be verified"):
        VerifiedStatus(insurance=Insurance.PENSION, status=code)
