"""`registry.collections`: registration data collected at a counter, a kiosk, on the mobile app,
by a survey team or from a partner department, approved (domain.md §2.2-2.4), for identity to
apply to the golden record and matching to clear the reasons it resolves.

PERSONAL DATA: `items` holds what the person or the surveyor gave, in clear (a name, an ID
number, a phone, an address). It is the one place personal data travels on the registry's
topics, and it must: identity is the registry of names and numbers (architecture.md), so the
values have to reach it, and a collection is only final once reviewed, which happens in survey,
not in identity. Hence the short retention of the topic (canbao_contracts.topics.COLLECTIONS);
consumers other than identity read the other fields and must not store or log `items`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Self
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, StringConstraints, model_validator

from canbao_contracts.codes import (
    CertificateType,
    EmploymentStatus,
    Gender,
    HouseholdType,
    Insurance,
    PersonalIdentity,
    RegistrationItem,
    StatusCode,
    SurveyReason,
)
from canbao_contracts.events.base import (
    ContractModel,
    Event,
    RegionCode,
    canonical_order,
    table_position,
)
from canbao_contracts.events.vocabulary import Channel
from canbao_contracts.text import canonical, forbidden_character
from canbao_contracts.topics import COLLECTIONS

# Channels whose collections go 初审 (platform) → 审定 (county): the household survey (44号
# Art.17-18), a change registered at the platform (Art.21) and a self-service entry the agency
# confirms (Art.14, api.md "Self-service").
FIRST_REVIEWED_CHANNELS: Final = frozenset(
    {Channel.SURVEY, Channel.PLATFORM, Channel.KIOSK, Channel.MOBILE}
)


def _clean_text(value: str) -> str:
    """The text rules (canbao_contracts.text): the value in its one spelling (an event of a
    producer that did not normalise yet is normalised, not refused); a value holding what the
    database cannot store or the eye cannot see is refused, so it never reaches a consumer's
    transaction."""
    value = canonical(value)
    if (bad := forbidden_character(value)) is not None:
        where = f"{bad.code_point}, at {bad.position}"
        raise ValueError(f"holds a forbidden {bad.kind} character ({where})")
    if not 1 <= len(value) <= 150:
        raise ValueError("is empty or longer than 150 characters once normalised")
    return value


_Value = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=150),
    AfterValidator(_clean_text),
]
# A collected value as it travels (write-back requests carry the same values: events.feedback).
CollectedValue = _Value
_StaffId = Annotated[str, StringConstraints(min_length=1, max_length=64)]  # AAE011 / AAE014
StaffId = _StaffId
# Items whose values come from a code table: checked here, as everywhere.
_CODED_ITEMS = {
    RegistrationItem.GENDER: Gender,
    RegistrationItem.HOUSEHOLD_TYPE: HouseholdType,
    RegistrationItem.PERSONAL_IDENTITY: PersonalIdentity,
    RegistrationItem.EMPLOYMENT_STATUS: EmploymentStatus,
}


def _items(items: dict[RegistrationItem, str]) -> dict[RegistrationItem, str]:
    for item, table in _CODED_ITEMS.items():
        if item in items and items[item] not in {code.value for code in table}:
            raise ValueError(f"{item.value} ({item.code}) is not a code of {table.__name__}")
    if RegistrationItem.BIRTH_DATE in items:
        try:  # AAC006 is YYYYMMDD (domain.md §4)
            datetime.strptime(items[RegistrationItem.BIRTH_DATE], "%Y%m%d")
        except ValueError:
            raise ValueError("birth_date (AAC006) is not a date YYYYMMDD") from None
    return dict(sorted(items.items(), key=lambda pair: table_position(pair[0])))


def _resolved(reasons: tuple[SurveyReason, ...]) -> tuple[SurveyReason, ...]:
    return canonical_order(reasons, key=table_position, what="resolved_reasons")


class VerifiedStatus(ContractModel):
    """A status the person's documents or a survey established where the systems could not: a
    reason for not being insured (91, 92, 93, 95) or insurance elsewhere (81, 82, with the region),
    as the registration form records them (经办规程 attachment 1). Scheme codes only ever come
    from the business systems, and 94 from their payment records."""

    insurance: Insurance
    status: StatusCode
    region_code: RegionCode | None = None
    """Where insured, for 81 and 82."""

    @model_validator(mode="after")
    def _a_shared_code(self) -> Self:
        if self.status.insurance is not None or self.status is StatusCode.INTERRUPTED:
            raise ValueError(f"{self.status.value} cannot be verified by a collection")
        return self


class CollectionApproved(Event):
    """A reviewed collection (maker-checker, domain.md §4): apply it."""

    type = "cn.canbao.registry.collection.approved.v1"
    topic = COLLECTIONS

    collection_id: UUID
    person_id: UUID | None
    """None when the collection registers someone not yet in the registry (a counter's new
    registration, a person a survey team discovered): identity resolves them by the collected
    ID number like any source record. Then the Kafka key is the collection_id."""
    channel: Channel
    document_type: CertificateType = CertificateType.CITIZEN_ID
    region_code: RegionCode | None = None
    """Where the person lives and was registered (GB/T 2260 county), when the collection says:
    a newcomer from another province registered at a counter here, whose number names their
    birthplace. Identity takes it as the region of residence. Added after v1; may be absent."""
    items: Annotated[dict[RegistrationItem, _Value], AfterValidator(_items)]
    """PERSONAL DATA, in clear: item → collected value (codes for gender, household type and
    personal identity; YYYYMMDD for the birth date). For identity only (see the module)."""
    resolved_reasons: Annotated[tuple[SurveyReason, ...], AfterValidator(_resolved)] = ()
    """What the collector saw resolved; matching removes them from the person's survey_reasons
    (domain.md §5). Data gaps also close when identity's next PersonUpdated shows them filled."""
    verified_statuses: tuple[VerifiedStatus, ...] = ()
    handler: _StaffId
    """AAE011: who collected (a clerk, a surveyor, the kiosk or app session)."""
    handled_at: AwareDatetime
    """AAE036."""
    first_reviewer: _StaffId | None = None
    """The first review (初审) by the grass-roots platform (domain.md §2.3), required for the
    channels of FIRST_REVIEWED_CHANNELS."""
    first_reviewed_at: AwareDatetime | None = None
    reviewer: _StaffId
    """AAE014: who approved (审定, or 复核 of a counter collection); never the handler."""
    reviewed_at: AwareDatetime
    """AAE015."""

    @property
    def subject(self) -> str:
        return str(self.person_id or self.collection_id)

    @model_validator(mode="after")
    def _maker_checker(self) -> Self:
        if self.reviewed_at < self.handled_at:
            raise ValueError("reviewed_at (AAE015) is before handled_at (AAE036)")
        # Every channel, the counter's too: 41号 表4 makes the reviewer (复核人) a required item
        # of every record a clerk handles, and 44号 Art.13 updates the registry "录入校核后".
        if self.reviewer == self.handler:
            raise ValueError("the reviewer (AAE014) must not be the handler (AAE011)")
        if self.channel in FIRST_REVIEWED_CHANNELS and (
            self.first_reviewer is None or self.first_reviewed_at is None
        ):
            raise ValueError(f"a {self.channel.value} collection is first reviewed (初审) first")
        if self.first_reviewed_at is not None and not (
            self.handled_at <= self.first_reviewed_at <= self.reviewed_at
        ):
            raise ValueError("first_reviewed_at is not between handled_at and reviewed_at")
        return self

    def __repr__(self) -> str:  # keep collected values out of logs and tracebacks
        return f"CollectionApproved(collection_id={self.collection_id}, items=<{len(self.items)}>)"

    __str__ = __repr__
