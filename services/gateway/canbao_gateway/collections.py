"""`POST /api/v1/counter/collections` (api.md): what a counter clerk collected while serving a
person. Checked here with the rules every channel shares (canbao_contracts.collected_items), so a
clerk hears at once what to fix; then forwarded to survey, which keeps it, approves it (the clerk
checked the documents, issue 7) and publishes it for identity and matching to apply.

The handler AAE011 is the clerk's staff id, taken from the token, never from the body. Every
outcome that touches personal data is audited as a change (purpose counter_service): accepted
`ok`, refused as invalid `rejected`, outside the clerk's region `out_of_scope`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from canbao_contracts.codes import CertificateType, RegistrationItem, SurveyReason
from canbao_contracts.collected_items import item_defects, missing_required
from canbao_contracts.events.base import RegionCode
from canbao_contracts.events.collection import VerifiedStatus
from canbao_gateway.audit import AuditTrail, Outcome, Purpose
from canbao_gateway.auth import AuditDep, PersonInQuestion, person_by_id_number, require
from canbao_gateway.staff import Role, Staff
from canbao_gateway.survey import SurveyClient, survey_client
from canbao_platform.problems import InvalidItems, Problem

router = APIRouter(prefix="/api/v1/counter", tags=["counter"])
MAX_IDEMPOTENCY_KEY: Final = 128
# What survey is given of the request (the handler comes from the token).
FORWARDED: Final = {"person_id", "document_type", "region_code", "items", "resolved_reasons",
                    "verified_statuses"}  # fmt: skip


class CounterCollectionRequest(BaseModel):
    """What the clerk collected. PERSONAL DATA in `id_number` and `items`."""

    model_config = ConfigDict(extra="forbid")

    id_number: str | None = None
    """The citizen number on the document the person presented (any valid form): places them in
    the clerk's region and names them in the audit log. Needed unless `region_code` is given."""
    person_id: UUID | None = None
    """Identity's person (from the popup); null registers someone new (then every required item
    of domain.md §4, and the phone, is needed)."""
    document_type: CertificateType = CertificateType.CITIZEN_ID
    region_code: RegionCode | None = None
    """Where the person lives (GB/T 2260 county): needed for a person without a citizen number
    (passport…); for a new registration, where they register, which places them in the clerk's
    region even when their number names another province (a newcomer)."""
    items: dict[str, str] = Field(max_length=len(RegistrationItem))
    """Item (api.md's names: `phone`) → collected value (codes for gender, household type and
    personal identity; YYYYMMDD for the birth date)."""
    resolved_reasons: list[SurveyReason] = []
    verified_statuses: list[VerifiedStatus] = []

    def __repr__(self) -> str:  # the values are personal data: keep them out of logs
        return f"CounterCollectionRequest(person_id={self.person_id}, items=<{len(self.items)}>)"

    __str__ = __repr__


class CollectionAccepted(BaseModel):
    collection_id: UUID
    state: str
    """`approved`: a counter collection is approved on submission."""


class RegionUnknown(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "person-region-unknown",
            "请提供公民身份号码或所属行政区划代码 (id_number or region_code is required)",
        )


def collection_subject(collection: CounterCollectionRequest) -> PersonInQuestion:
    """The person the collection is about: placed by the presented number, else by the
    collected one, else by `region_code` (422 when none, or when the number is invalid). A new
    registration with a `region_code` is placed where the person lives and registers."""
    citizen = collection.document_type is CertificateType.CITIZEN_ID
    number = collection.id_number or (collection.items.get("id_number") if citizen else None)
    if number is not None:
        person = person_by_id_number(number)
        registers_here = collection.region_code if collection.person_id is None else None
        return PersonInQuestion(
            region=registers_here or person.region,
            id_number=person.id_number,
            person_id=collection.person_id,
        )
    if collection.region_code is None:
        raise RegionUnknown()
    return PersonInQuestion(region=collection.region_code, person_id=collection.person_id)


@router.post(
    "/collections",
    status_code=201,
    summary="Items collected at the counter (approved at once)",
    responses={
        422: {"description": "invalid-items, invalid-id-number, person-region-unknown"},
        503: {"description": "survey-unavailable: nothing saved; retry with the same key"},
    },
)
async def post_collection(
    staff: Annotated[
        Staff, require(Role.COUNTER, person=collection_subject, purpose=Purpose.COUNTER_SERVICE)
    ],
    person: Annotated[PersonInQuestion, Depends(collection_subject)],
    collection: CounterCollectionRequest,
    survey: Annotated[SurveyClient, Depends(survey_client)],
    audit: AuditDep,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_IDEMPOTENCY_KEY)] = None,
) -> CollectionAccepted:
    defects = item_defects(collection.items, document_type=collection.document_type)
    if collection.person_id is None:
        defects += missing_required(collection.items)
    if defects:
        await _record(audit, person, Outcome.REJECTED)
        raise InvalidItems(defects)
    body: dict[str, Any] = collection.model_dump(mode="json", include=FORWARDED)
    try:
        answer = await survey.submit_collection(  # the handler: the service token's subject
            body, idempotency_key=idempotency_key or f"gateway-{uuid.uuid4()}", caller=staff
        )
    except Problem as problem:
        if problem.status < 500:
            await _record(audit, person, Outcome.REJECTED)
        raise
    await _record(audit, person, Outcome.OK)
    return CollectionAccepted.model_validate(answer)


async def _record(audit: AuditTrail, person: PersonInQuestion, outcome: Outcome) -> None:
    await audit.record(
        purpose=Purpose.COUNTER_SERVICE,
        outcome=outcome,
        person_id=person.person_id,
        id_number=person.id_number,
        person_region=person.region,
    )
