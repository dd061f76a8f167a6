"""Every event on the registry's topics (architecture.md), as pydantic models.

| topic                | events                                                         | producer |
|----------------------|----------------------------------------------------------------|----------|
| registry.persons     | PersonRegistered, PersonUpdated, PersonsMerged, PersonDeceased | identity |
| registry.facts       | FactsAsserted (`Fact`s: nine kinds), FactAsserted (one; older) | identity |
| registry.statuses    | StatusesChanged, StatusesWithdrawn                             | matching |
| registry.collections | CollectionApproved                                             | survey   |
| feedback.<system>    | FeedbackRequested (one topic per business system)              | identity |
| feedback.<system>.replies | FeedbackReplied                                           | <system> |
| registry.units       | UnitChanged, UnitDeleted                                       | identity |

Each class has its CloudEvents `type` (the `ce_type` header: reverse-DNS name + version), the
`topic` it travels on, and a `subject` (the Kafka key and `ce_subject`: the person_id; a unit's
AAB001 on registry.units).
`canbao_contracts.envelope` puts them on Kafka; `canbao_contracts.schemas` exports them.

Evolving a contract: models refuse unknown fields, so an added optional field is rolled out to
consumers before producers; renaming, removing or changing the meaning of a field is a new
event type (`….v2`), published beside the old one until every consumer reads it.
"""

from __future__ import annotations

from typing import Final

from canbao_contracts.events.base import Event
from canbao_contracts.events.collection import CollectionApproved, VerifiedStatus
from canbao_contracts.events.fact_kinds import (
    BenefitFact,
    CrossRegionEnrolmentFact,
    CustodyFact,
    DeathFact,
    EmploymentFact,
    EnrolmentFact,
    FactSource,
    HouseholdStatusFact,
    ResidencePermitFact,
    StudyFact,
    fact_id_for,
)
from canbao_contracts.events.facts import Fact, FactAsserted, FactsAsserted
from canbao_contracts.events.feedback import (
    FeedbackChange,
    FeedbackOutcome,
    FeedbackReplied,
    FeedbackRequested,
)
from canbao_contracts.events.persons import (
    InaccurateItem,
    PersonDeceased,
    PersonRegistered,
    PersonsMerged,
    PersonUpdated,
)
from canbao_contracts.events.statuses import (
    Flag,
    Statuses,
    StatusesChanged,
    StatusesWithdrawn,
    Verdict,
)
from canbao_contracts.events.units import UnitChanged, UnitDeleted
from canbao_contracts.events.vocabulary import Channel, ComparisonScope, EnrolmentState, StudyLevel

EVENT_CLASSES: Final[tuple[type[Event], ...]] = (
    PersonRegistered,
    PersonUpdated,
    PersonsMerged,
    PersonDeceased,
    FactAsserted,
    FactsAsserted,
    StatusesChanged,
    StatusesWithdrawn,
    CollectionApproved,
    FeedbackRequested,
    FeedbackReplied,
    UnitChanged,
    UnitDeleted,
)
EVENT_TYPES: Final[dict[str, type[Event]]] = {cls.type: cls for cls in EVENT_CLASSES}
assert len(EVENT_TYPES) == len(EVENT_CLASSES), "two event classes share a CloudEvents type"

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "BenefitFact",
    "Channel",
    "CollectionApproved",
    "ComparisonScope",
    "CrossRegionEnrolmentFact",
    "CustodyFact",
    "DeathFact",
    "EmploymentFact",
    "EnrolmentFact",
    "EnrolmentState",
    "Event",
    "Fact",
    "FactAsserted",
    "FactSource",
    "FactsAsserted",
    "FeedbackChange",
    "FeedbackOutcome",
    "FeedbackReplied",
    "FeedbackRequested",
    "Flag",
    "HouseholdStatusFact",
    "InaccurateItem",
    "PersonDeceased",
    "PersonRegistered",
    "PersonUpdated",
    "PersonsMerged",
    "ResidencePermitFact",
    "Statuses",
    "StatusesChanged",
    "StatusesWithdrawn",
    "StudyFact",
    "StudyLevel",
    "UnitChanged",
    "UnitDeleted",
    "Verdict",
    "VerifiedStatus",
    "fact_id_for",
]
