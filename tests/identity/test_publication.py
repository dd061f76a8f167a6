"""What identity publishes of a golden record (publication.public_state): the fields of the
contract's PersonState, nothing personal beyond the masked name and number."""

from __future__ import annotations

from uuid import UUID, uuid4

from canbao_contracts.events import PersonRegistered
from canbao_identity import records as r
from canbao_identity.golden import LinkedRecord, golden_record
from canbao_identity.publication import public_state
from canbao_identity.resolution import LinkKind

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
