"""What identity publishes of a golden record (publication.public_state): the fields of the
contract's PersonState, nothing personal beyond the masked name and number; and its facts as the
contract's FactsAsserted validates them (publication.facts_events)."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID, uuid4

import pytest

from canbao_contracts.events import FactsAsserted, FactSource, PersonRegistered, fact_id_for
from canbao_contracts.events.facts import MAX_FACTS_PER_EVENT
from canbao_identity import records as r
from canbao_identity.golden import LinkedRecord, golden_record
from canbao_identity.publication import current_facts, facts_events, public_state
from canbao_identity.records import FactDraft
from canbao_identity.resolution import LinkKind
from canbao_identity.store import Store
from tests.identity.conftest import PROTECTOR
from tests.identity.generated import ORDER, linked, stored_rows

NUMBER = "520102199003074015"
CLAIMS = {r.NAME: "王伟", r.ID_NUMBER: NUMBER, r.GENDER: "1", r.BIRTH_DATE: "1990-03-07"}


def record(source_table: str, **claims: str) -> LinkedRecord:
    return LinkedRecord(
        source_table=source_table,
        record_key=f"{source_table}:1",
        link_kind=LinkKind.EXACT,
        position=0,
        observed_at="2026-11-23T02:00:00+00:00",
        claims=CLAIMS | claims,
    )


def test_a_newcomer_registered_at_a_counter_is_registered_by_collection() -> None:
    state = public_state(golden_record([record("collection.counter", **{r.PHONE: "13812345678"})]))
    assert state["registered_by_collection"] is True
    assert state["household_registered_locally"] is False
    event = PersonRegistered(person_id=uuid4(), **state)  # the contract takes it as it is
    assert event.masked_name == "王*" and event.registered_by_collection


def test_a_person_only_the_business_systems_know_is_not() -> None:
    state = public_state(golden_record([record("hukou.person"), record("si_core.ac01")]))
    assert state["registered_by_collection"] is False
    assert state["household_registered_locally"] is True


def test_a_migrant_registered_here_is_of_the_region_where_they_registered() -> None:
    """Born in Nanbu, Sichuan (the number says so), registered at a Guiyang counter: Guiyang's."""
    migrant = {r.ID_NUMBER: "511321199003074014", r.REGION: "520102"}
    state = public_state(golden_record([record("collection.counter", **migrant)]))
    assert state["region_code"] == "520102" and state["household_region_code"] is None


def test_nothing_published_rebuilds_the_id_number() -> None:
    """GB 11643: region (6) + birth date (8) + sequence (3) + check (1). The household region
    and the birth date are published; the masked number's last four would complete them."""
    state = public_state(golden_record([record("hukou.person", **{r.HOUSEHOLD_REGION: "520102"})]))
    event = PersonRegistered(person_id=UUID(int=1), **state)
    assert event.household_region_code == NUMBER[:6]
    assert event.birth_date is not None and event.birth_date.strftime("%Y%m%d") == NUMBER[6:14]
    assert event.masked_id_number is None
    assert NUMBER[-4:] not in event.model_dump_json()


def test_a_fact_is_published_as_the_contract_validates_it() -> None:
    """facts_events builds the events of the facts it derived without the events' own
    validation (FactsAsserted.model_construct): over generated people, first built, then rebuilt
    with one source table more (a changed fact asserted again) and one less (retracted), each
    event is the bytes the validated event has, and a consumer takes it; a rebuild that changes
    no fact publishes none."""
    store = Store(None, PROTECTOR)  # type: ignore[arg-type]  # only its _linked
    asserted = 0
    for person_id, rows in stored_rows(150):
        last = max(ORDER[row.source_table] for row in rows)
        fewer = [row for row in rows if ORDER[row.source_table] != last]
        emitted: dict[str, list[Any]] = {}
        for now in (fewer, rows, fewer):
            golden = golden_record(linked(store, now))
            events, emitted = facts_events(person_id, current_facts(person_id, golden), emitted)
            assert len(events) <= 1
            for event in events:
                raw = event.model_dump_json()
                facts = event.facts
                assert FactsAsserted(person_id=person_id, facts=facts).model_dump_json() == raw
                assert FactsAsserted.model_validate_json(raw) == event
                asserted += sum(not fact.retracted for fact in facts)
        golden = golden_record(linked(store, fewer))
        assert facts_events(person_id, current_facts(person_id, golden), emitted) == ([], emitted)
    assert asserted > 150 * 3


def test_a_rebuild_that_changed_many_facts_publishes_them_in_events_of_at_most_a_hundred() -> None:
    """Each event stays far below the broker's message size limit, however many records a
    person has: 250 facts (say, a long history of employment records) are three events, each
    fact in one of them, retracted together the same way."""
    [(person_id, rows)] = stored_rows(1)
    golden = golden_record(linked(Store(None, PROTECTOR), rows))  # type: ignore[arg-type]
    kind, content = next((c["kind"], c) for _, _, c in current_facts(person_id, golden).values())
    current = {}
    for n in range(250):
        source = {**content["source"], "record_key": f"row={n}"}
        fact_id = fact_id_for(person_id, kind, FactSource(**source))
        current[str(fact_id)] = (1, f"digest{n}", {**content, "source": source})
    events, emitted = facts_events(person_id, current, {})
    assert [len(e.facts) for e in events] == [MAX_FACTS_PER_EVENT, MAX_FACTS_PER_EVENT, 50]
    validated = [FactsAsserted.model_validate_json(e.model_dump_json()) for e in events]
    assert sorted(str(f.fact_id) for e in validated for f in e.facts) == sorted(current)
    retractions, _ = facts_events(person_id, {}, emitted)
    assert [len(e.facts) for e in retractions] == [100, 100, 50]
    assert all(f.retracted for e in retractions for f in e.facts)


def test_a_fact_whose_fields_name_another_kind_or_source_is_refused() -> None:
    """Its fact_id is derived from the record's kind and source: the fields must not say others."""
    x = record("si_core.ac02")
    for fields in (
        {"kind": "benefit"},
        {"source": {"system": "x", "table": "y", "record_key": "z"}},
    ):
        bad = dataclasses.replace(x, facts=(FactDraft("enrolment", fields),))
        with pytest.raises(ValueError, match="kind or a source"):
            current_facts(UUID(int=1), golden_record([bad]))
