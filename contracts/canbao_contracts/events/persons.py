"""`registry.persons`: identity's people (see `person_state` for what a person carries).

Every event but a merge carries the whole current state, so the topic is compacted: the newest
message per person is the person (canbao_contracts.topics.PERSONS), and a new consumer rebuilds
from the beginning of the topic.
"""

from __future__ import annotations

from typing import Annotated, Self
from uuid import UUID

from pydantic import AfterValidator, Field, model_validator

from canbao_contracts.events.base import Event, canonical_order
from canbao_contracts.events.person_state import PERSON_FIELDS, InaccurateItem, PersonState
from canbao_contracts.topics import PERSONS

__all__ = [
    "InaccurateItem",
    "PersonDeceased",
    "PersonRegistered",
    "PersonState",
    "PersonUpdated",
    "PersonsMerged",
]


class PersonRegistered(PersonState):
    """A person enters the registry: a record resolved to no one known."""

    type = "cn.canbao.registry.person.registered.v1"
    topic = PERSONS


def _changed(fields: tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(fields) - PERSON_FIELDS)
    if unknown:
        raise ValueError(f"changed names fields a person does not have: {unknown}")
    return canonical_order(fields, key=str, what="changed")


class PersonUpdated(PersonState):
    """Something downstream can see about the person changed; `changed` says what."""

    type = "cn.canbao.registry.person.updated.v1"
    topic = PERSONS

    changed: Annotated[tuple[str, ...], AfterValidator(_changed), Field(min_length=1)]
    """The names of the fields above whose value changed, sorted."""


class PersonDeceased(PersonState):
    """The person died (household status, cremation or health death record, domain.md §5): they
    leave the scope of "should be insured"; their benefits are watched for payment after death."""

    type = "cn.canbao.registry.person.deceased.v1"
    topic = PERSONS

    @model_validator(mode="after")
    def _is_deceased(self) -> Self:
        if not self.deceased:
            raise ValueError("a PersonDeceased must have deceased = true")
        return self


class PersonsMerged(Event):
    """Two person_ids turned out to be one person (a 15- and an 18-digit number, a reviewed
    candidate link): `merged_person_id` is retired in favour of `surviving_person_id`.

    Keyed by the retired id, so on the compacted topic this stays that id's last word. In the
    same transaction identity retracts the retired id's facts, asserts them again under the
    survivor, and publishes the survivor's PersonUpdated. Consumers forget the retired id."""

    type = "cn.canbao.registry.person.merged.v1"
    topic = PERSONS

    merged_person_id: UUID
    """Retired: no event names it again."""
    surviving_person_id: UUID

    @property
    def subject(self) -> str:
        return str(self.merged_person_id)

    @model_validator(mode="after")
    def _two_people(self) -> Self:
        if self.merged_person_id == self.surviving_person_id:
            raise ValueError("a person cannot be merged into itself")
        return self
