"""`registry.facts`: what the source systems say about a person, in one vocabulary whatever the
system (canonical, source-agnostic facts), for matching to apply domain.md §5 to.

A `Fact` is every kind of fact as a discriminated union on `kind`. That keeps consumers simple:
one idempotency rule (the highest `revision` per `fact_id` wins; a retraction is the same fact
with `retracted=True`), and a `match` on the kind where the rules differ. A new kind is a new
union member, not a new event type or operation.

Identity publishes what one rebuild of a person changed as one `FactsAsserted`; `FactAsserted`
(one fact per event) is its first version, which it published before and consumers still read
(a topic keeps what was published for its retention). Both mean the same for each fact.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Self
from uuid import UUID

from pydantic import Field, model_validator

from canbao_contracts.events.base import Event
from canbao_contracts.events.fact_kinds import (
    BenefitFact,
    CrossRegionEnrolmentFact,
    CustodyFact,
    DeathFact,
    EmploymentFact,
    EnrolmentFact,
    HouseholdStatusFact,
    ResidencePermitFact,
    StudyFact,
    fact_id_for,
)
from canbao_contracts.topics import FACTS

Fact = Annotated[
    EnrolmentFact
    | BenefitFact
    | EmploymentFact
    | StudyFact
    | CustodyFact
    | HouseholdStatusFact
    | CrossRegionEnrolmentFact
    | DeathFact
    | ResidencePermitFact,
    Field(discriminator="kind"),
]


class FactAsserted(Event):
    """A fact about a person holds, has changed, or (`fact.retracted`) no longer holds.

    Consumers keep, per `fact.fact_id`, the fact with the highest `revision` and ignore one with
    an equal or lower revision (a duplicate, or a late copy); they keep a retracted fact as a
    tombstone, so a late copy of an older revision cannot bring it back. When people merge,
    identity retracts the merged person's facts and asserts them under the survivor."""

    type: ClassVar[str] = "cn.canbao.registry.fact.asserted.v1"
    topic = FACTS

    person_id: UUID
    fact: Fact

    @property
    def subject(self) -> str:
        return str(self.person_id)

    @model_validator(mode="after")
    def _fact_id_is_derived(self) -> Self:
        _check_derived(self.person_id, self.fact)
        return self


# A FactsAsserted carries at most this many facts: a fact's strings are bounded, so its JSON is
# at most ~2.5 KB and an event at most ~250 KB, below a broker's message size limit (1 MiB by
# default; tests/contracts/test_events.py builds the largest one).
MAX_FACTS_PER_EVENT: Final = 100


class FactsAsserted(Event):
    """Facts about one person, each as its own `FactAsserted` would state it: what one rebuild
    of the person changed (asserted, changed or retracted facts), in one message instead of one
    per fact (several when it changed more than `MAX_FACTS_PER_EVENT`). Consumers apply each
    fact by the same rule (the highest `revision` per `fact_id` wins, a retraction kept as a
    tombstone); the facts' order means nothing."""

    type: ClassVar[str] = "cn.canbao.registry.facts.asserted.v1"
    topic = FACTS

    person_id: UUID
    facts: tuple[Fact, ...] = Field(min_length=1, max_length=MAX_FACTS_PER_EVENT)

    @property
    def subject(self) -> str:
        return str(self.person_id)

    @model_validator(mode="after")
    def _fact_ids_are_derived_and_distinct(self) -> Self:
        seen: set[UUID] = set()
        for fact in self.facts:
            _check_derived(self.person_id, fact)
            if fact.fact_id in seen:
                raise ValueError(f"fact_id {fact.fact_id} is stated twice")
            seen.add(fact.fact_id)
        return self


def _check_derived(person_id: UUID, fact: Fact) -> None:
    expected = fact_id_for(person_id, fact.kind, fact.source)
    if fact.fact_id != expected:
        raise ValueError(
            f"fact_id {fact.fact_id} is not fact_id_for(person_id, {fact.kind!r}, "
            f"source) = {expected}: a fact's id is derived from its source record"
        )
