"""Collections and their review (domain.md §2.2-2.4): the domain, without database or Kafka.

Every channel's collection goes submitted → (first_reviewed →) approved, or rejected; only an
approved one is published for identity and matching to apply. A counter collection is approved on
submission by the clerk who made it (our convention, issue 7: the clerk checked the documents of
the person in front of them), so its handler AAE011 and reviewer AAE014 are the same person.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from canbao_contracts.codes import CertificateType, LabelledCode, RegistrationItem, SurveyReason
from canbao_contracts.collected_items import ItemDefect, item_defects, missing_required, normalised
from canbao_contracts.events import CollectionApproved
from canbao_contracts.events.base import RegionCode
from canbao_contracts.events.collection import VerifiedStatus
from canbao_contracts.events.vocabulary import Channel
from canbao_contracts.id_numbers import mask, mask_name


class ReviewState(LabelledCode):
    SUBMITTED = "submitted", "已提交"
    FIRST_REVIEWED = "first_reviewed", "已初审"
    APPROVED = "approved", "已审定"
    REJECTED = "rejected", "已退回"


class CollectionSubmission(BaseModel):
    """What a counter clerk collected while serving a person (POST /internal/collections); who
    the clerk is comes from the gateway's signed service token, never from the body."""

    model_config = ConfigDict(extra="forbid")

    person_id: UUID | None = None
    """Identity's person; null registers someone new (the required items are then needed)."""
    document_type: CertificateType = CertificateType.CITIZEN_ID
    region_code: RegionCode | None = None
    """Where the person lives and registers (CollectionApproved.region_code)."""
    items: dict[str, str] = Field(max_length=len(RegistrationItem))
    """Item name (api.md: `phone`) → collected value. PERSONAL DATA."""
    resolved_reasons: list[SurveyReason] = []
    """A set: a reason named twice is named once (the event lists each once)."""
    verified_statuses: list[VerifiedStatus] = []
    """At most one per insurance: two statuses of one insurance contradict each other."""

    @field_validator("resolved_reasons")
    @classmethod
    def _once_each(cls, reasons: list[SurveyReason]) -> list[SurveyReason]:
        return list(dict.fromkeys(reasons))

    @field_validator("verified_statuses")
    @classmethod
    def _one_per_insurance(cls, statuses: list[VerifiedStatus]) -> list[VerifiedStatus]:
        insurances = [status.insurance for status in statuses]
        if len(set(insurances)) != len(insurances):
            raise ValueError("one verified status per insurance")
        return statuses

    def __repr__(self) -> str:  # the items are personal data: keep them out of logs
        return f"{type(self).__name__}(person_id={self.person_id}, items=<{len(self.items)}>)"

    __str__ = __repr__


class CounterCollection(CollectionSubmission):
    """A submission and the clerk who made it."""

    handler: str = Field(min_length=1, max_length=64)
    """AAE011: the clerk's staff id (the service token's subject)."""


def defects(collection: CounterCollection) -> list[ItemDefect]:
    """Every field-level defect (the rules of `canbao_contracts.collected_items`)."""
    found = item_defects(collection.items, document_type=collection.document_type)
    if collection.person_id is None:
        found += missing_required(collection.items)
    return found


def approved_at_counter(
    collection: CounterCollection, *, collection_id: UUID, at: datetime
) -> CollectionApproved:
    """The event of a counter collection that passed `defects` (raises ValueError otherwise)."""
    return CollectionApproved(
        collection_id=collection_id,
        person_id=collection.person_id,
        channel=Channel.COUNTER,
        document_type=collection.document_type,
        region_code=collection.region_code,
        items={
            RegistrationItem(name): value
            for name, value in normalised(
                collection.items, document_type=collection.document_type
            ).items()
        },
        resolved_reasons=tuple(collection.resolved_reasons),
        verified_statuses=tuple(collection.verified_statuses),
        handler=collection.handler,
        handled_at=at,
        reviewer=collection.handler,
        reviewed_at=at,
    )


def masked(item: str, value: str) -> str:
    """A collected value as staff reads it back (api.md: masked for every role that does not
    need it in clear): codes in clear, numbers as `5201**********123X`, the rest as `张**`."""
    if item in (
        RegistrationItem.GENDER,
        RegistrationItem.HOUSEHOLD_TYPE,
        RegistrationItem.PERSONAL_IDENTITY,
        RegistrationItem.EMPLOYMENT_STATUS,
    ):
        return value
    if item in (RegistrationItem.ID_NUMBER, RegistrationItem.PHONE):
        return mask(value) if len(value) >= 11 else "*" * len(value)
    if item == RegistrationItem.BIRTH_DATE:
        return value[:4] + "****"
    return mask_name(value)
