"""Collections and their review (domain.md §2.2-2.4): the domain, without database or Kafka.

Every channel's collection goes submitted → (first_reviewed →) approved, or rejected; only an
approved one is published for identity and matching to apply. A counter collection waits,
`submitted`, for its 复核: a second member of the agency's staff (the `reviewer` role, AAE014),
never the clerk who collected it (AAE011), passes or returns it (41号 表4 makes AAE014/AAE015
required on every record a clerk handles; 44号 Art.13 updates the registry "录入校核后").

A day's batch (our convention, grounded in 41号 表4 and 44号 Art.13): a reviewer may pass at once
the collections that only bring a registered person's contact details up to date (BATCH_ITEMS:
phone, residence address, employment status and employer's name: what the person declares of
themself, which a business system changes by its own procedure without identity documents).
Anything else needs a 复核 of its own, one collection at a time: the identity items (name,
number, gender, birth date, 41号 表4's 基本信息), the household register's items (household type,
place, book and family numbers), the personal identity (it decides the scheme a person belongs
to), a new registration, a move to another region, and a status verified from documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

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


RECHECK: Final = "recheck"  # the ledger's stage of a 复核 (survey_0004)

# Items a reviewer may pass in a day's batch (the module's docstring says why).
BATCH_ITEMS: Final = frozenset(
    {
        RegistrationItem.PHONE,
        RegistrationItem.RESIDENCE_ADDRESS,
        RegistrationItem.EMPLOYMENT_STATUS,
        RegistrationItem.UNIT_NAME,
    }
)
# What a clerk checks against the identity document (41号 表4's 基本信息): always a 复核 of its own.
IDENTITY_ITEMS: Final = frozenset(
    {
        RegistrationItem.NAME,
        RegistrationItem.ID_NUMBER,
        RegistrationItem.GENDER,
        RegistrationItem.BIRTH_DATE,
    }
)
# Reasons a contact collection may resolve on its own: the gaps it fills.
BATCH_REASONS: Final = frozenset({SurveyReason.MISSING_INFO, SurveyReason.INACCURATE_INFO})


class Risk(LabelledCode):
    """How a collection is rechecked: `contact` ones may be passed in a day's batch, `identity`
    ones (identity items, or anything else beyond contact details) one by one."""

    CONTACT = "contact", "联系信息（可批量复核）"
    IDENTITY = "identity", "身份信息（须逐条复核）"


def batch_refusals(
    *,
    person_id: UUID | None,
    region_code: str | None,
    item_names: list[str],
    resolved_reasons: list[str],
    verified_statuses: list[Any],
) -> list[str]:
    """Why a stored collection may not be passed in a batch (what needs an individual 复核):
    the items beyond BATCH_ITEMS, and `new_registration`, `region_code`, `verified_statuses`,
    `resolved_reasons`; empty when it may."""
    why = [name for name in item_names if name not in BATCH_ITEMS]
    if person_id is None:
        why.append("new_registration")
    if region_code is not None:
        why.append("region_code")
    if verified_statuses:
        why.append("verified_statuses")
    if any(reason not in BATCH_REASONS for reason in resolved_reasons):
        why.append("resolved_reasons")
    return why


def risk_of(refusals: list[str]) -> Risk:
    return Risk.IDENTITY if refusals else Risk.CONTACT


_Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class RecheckRequest(BaseModel):
    """A reviewer's 复核 of one counter collection."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["pass", "reject"]
    comment: _Comment = ""

    @model_validator(mode="after")
    def _rejection_says_why(self) -> Self:
        if self.decision == "reject" and not self.comment:
            raise ValueError("a rejection says why (comment), for the clerk to act on")
        return self


MAX_BATCH: Final = 200


class BatchRequest(BaseModel):
    """A day's batch: collections the reviewer saw in the list, each passed on its own row."""

    model_config = ConfigDict(extra="forbid")

    collection_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_BATCH)]
    comment: _Comment = ""

    @field_validator("collection_ids")
    @classmethod
    def _once_each(cls, ids: list[UUID]) -> list[UUID]:
        return list(dict.fromkeys(ids))


class CollectionSubmission(BaseModel):
    """What a counter clerk collected while serving a person (POST /internal/collections); who
    the clerk is comes from the gateway's signed service token, never from the body."""

    model_config = ConfigDict(extra="forbid")

    person_id: UUID | None = None
    """Identity's person; null registers someone new (the required items are then needed)."""
    document_type: CertificateType = CertificateType.CITIZEN_ID
    region_code: RegionCode | None = None
    """Where the person lives and registers (CollectionApproved.region_code)."""
    person_region: RegionCode | None = None
    """Where the gateway placed the person when it checked the clerk's scope (identity's region
    for them; a new registration's region_code or number): whose reviewers see it. Kept, never
    published; survey's own copy of identity's region (subjects) goes first once it has one."""
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


def placed_in(collection: CollectionSubmission) -> str | None:
    """The region a collection is reviewed in, when survey knows no region of the person: the
    gateway's placement, else where a new registrant registers, else their citizen number's."""
    if collection.person_region or collection.region_code:
        return collection.person_region or collection.region_code
    number = collection.items.get(RegistrationItem.ID_NUMBER.value)
    if collection.document_type is CertificateType.CITIZEN_ID and number:
        normal = normalised({"id_number": number}, document_type=collection.document_type)
        return normal["id_number"][:6]
    return None


def defects(collection: CounterCollection) -> list[ItemDefect]:
    """Every field-level defect (the rules of `canbao_contracts.collected_items`)."""
    found = item_defects(collection.items, document_type=collection.document_type)
    if collection.person_id is None:
        found += missing_required(collection.items)
    return found


def approved_at_counter(
    collection: CounterCollection,
    *,
    collection_id: UUID,
    handled_at: datetime,
    reviewer: str,
    reviewed_at: datetime,
) -> CollectionApproved:
    """The event of a counter collection that passed `defects` and its 复核 (raises ValueError
    otherwise, and when the reviewer is the handler: the contract's maker-checker)."""
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
        handled_at=handled_at,
        reviewer=reviewer,
        reviewed_at=reviewed_at,
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
