"""`POST /api/v1/counter/collections` (api.md): what a counter clerk collected while serving a
person. Checked here with the rules every channel shares (canbao_contracts.collected_items), so a
clerk hears at once what to fix; then forwarded to survey, which keeps it `submitted` until a
reviewer (复核人, review_routes.py) passes it; only then is it published for identity and
matching to apply (41号 表4, 44号 Art.13). Survey is told where the person was placed here
(`person_region`), so that the reviewers of that region see it.

The handler AAE011 is the clerk's staff id, taken from the token, never from the body. Every
outcome that touches personal data is audited as a change (purpose counter_service): accepted
`ok` (written before survey is asked), refused as invalid `rejected`, outside the clerk's region
`out_of_scope`. A registered person is placed by identity's region for them, not by what the
clerk types (collection_subject)."""

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
from canbao_gateway.auth import (
    AuditDep,
    PersonInQuestion,
    person_in_scope,
    require,
)
from canbao_gateway.persons import IdentityDep, document_number, region_of
from canbao_gateway.problems import UNAUTHENTICATED, NotRegistered, OutOfScope, problem_responses
from canbao_gateway.service_clients import IdentityClient
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
    """The number on the document the person presented (a citizen number in any valid form):
    names them in the audit log; for a registered person it must be theirs, for a new one it
    places them unless `region_code` is given."""
    person_id: UUID | None = None
    """Identity's person (from the popup); null registers someone new (then every required item
    of domain.md §4, and the phone, is needed)."""
    document_type: CertificateType = CertificateType.CITIZEN_ID
    region_code: RegionCode | None = None
    """Where the person lives (GB/T 2260 county), inside the clerk's region: for a new
    registration, where they register (needed without a citizen number, a passport…), even when
    their number names another province (a newcomer); for a registered person, a move identity
    applies. A registered person is placed by identity's region for them, never by this."""
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
    """`submitted`: a counter collection waits for its 复核 (已提交，待复核); a repeated
    Idempotency-Key answers the collection's state now."""


class RegionUnknown(Problem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "person-region-unknown",
            "请提供公民身份号码或所属行政区划代码 (id_number or region_code is required)",
        )


class IdNumberMismatch(Problem):
    """The presented document's number is not that of the person the collection names."""

    def __init__(self) -> None:
        super().__init__(
            422,
            "id-number-mismatch",
            "证件号码与所办理人员不符 (the presented number is not this person's)",
            "请重新读取证件并打开此人的弹窗后再提交 (read the document again, open this person's "
            "popup, then submit)",
        )


async def collection_subject(
    collection: CounterCollectionRequest, identity: IdentityDep, audit: AuditDep
) -> PersonInQuestion:
    """The person the collection is about, placed where the clerk's scope is checked (auth.py).

    A registered person (`person_id`) is placed by the region identity holds for them (as the
    popup: persons.region_of), never by anything the clerk types: collected values win over
    every source (identity: an approved collection is first in precedence), so a clerk may
    change only people of their own region. The presented number, when given, must be that
    person's (422 `id-number-mismatch`, audited as rejected); an unknown person_id is 404
    `not-registered`, audited.

    A new registration is placed by its `region_code` (where the person lives and registers,
    which may differ from the province of the number, a newcomer), else by the presented or
    collected citizen number; 422 `person-region-unknown` when neither is given."""
    citizen = collection.document_type is CertificateType.CITIZEN_ID
    presented = _number(collection.id_number, collection.document_type)
    if collection.person_id is not None:
        return await _registered(collection, presented, identity, audit)
    number = presented or (
        _number(collection.items.get("id_number"), CertificateType.CITIZEN_ID) if citizen else None
    )
    region = collection.region_code or (number[:6] if number and citizen else None)
    if region is None:
        raise RegionUnknown()
    return PersonInQuestion(region=region, id_number=number)


def _number(value: str | None, document_type: CertificateType) -> str | None:
    return None if value is None else document_number(value, document_type.value)


async def _registered(
    collection: CounterCollectionRequest,
    presented: str | None,
    identity: IdentityClient,
    audit: AuditTrail,
) -> PersonInQuestion:
    person_id = collection.person_id
    assert person_id is not None
    try:
        if presented is None:
            record = await identity.person_by_id(person_id, caller=audit.staff)
        else:  # one look-up both checks the number and gives the person's record
            record = await identity.person(
                presented, collection.document_type.value, caller=audit.staff
            )
    except NotRegistered:
        if presented is None:
            await audit.record(
                purpose=Purpose.COUNTER_SERVICE, outcome=Outcome.NOT_FOUND, person_id=person_id
            )
            raise
        record = None
    if record is None or UUID(record["person_id"]) != person_id:
        await audit.record(
            purpose=Purpose.COUNTER_SERVICE,
            outcome=Outcome.REJECTED,
            person_id=person_id,
            id_number=presented,
        )
        raise IdNumberMismatch()
    number = presented or _golden_number(record)
    citizen = collection.document_type is CertificateType.CITIZEN_ID
    fallback = number[:6] if citizen and number else ""  # "": covers no scope
    return PersonInQuestion(
        region=region_of(record) or fallback, id_number=number, person_id=person_id
    )


def _golden_number(record: dict[str, Any]) -> str | None:
    value = (record["golden"].get("id_number") or {}).get("value")
    return str(value) if value else None


@router.post(
    "/collections",
    status_code=201,
    summary="Items collected at the counter (submitted for 复核)",
    responses=problem_responses(
        {
            400: "bad-request: a body that cannot be parsed",
            401: UNAUTHENTICATED,
            403: "role-not-allowed; out-of-scope (the person, or the region_code, is outside "
            "your region)",
            404: "not-registered: the person_id is not identity's",
            409: "idempotency-key-reused: the Idempotency-Key was used for other data",
            413: "body-too-large",
            422: "invalid-items, invalid-id-number, invalid-document-number, "
            "person-region-unknown, id-number-mismatch, invalid-request",
            503: "identity-unavailable; survey-unavailable: nothing saved; retry with the same key",
        }
    ),
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
    moved_to = collection.region_code if collection.person_id is not None else None
    if moved_to is not None and not person_in_scope(staff, moved_to):
        # A registered person's region_code is a collected value identity applies (it moves
        # them): the clerk may not place someone in a region outside their own scope.
        await _record(audit, person, Outcome.OUT_OF_SCOPE)
        raise OutOfScope()
    defects = item_defects(collection.items, document_type=collection.document_type)
    if collection.person_id is None:
        defects += missing_required(collection.items)
    if defects:
        await _record(audit, person, Outcome.REJECTED)
        raise InvalidItems(defects)
    body: dict[str, Any] = collection.model_dump(mode="json", include=FORWARDED)
    if len(person.region) == 6 and person.region.isdigit():  # whose reviewers see it
        body["person_region"] = person.region
    # The change's row is committed before survey hears of it (audit.py): a log that cannot be
    # written stops the change, and no change reaches survey without its row. Like a read's row
    # (persons.py), the log may so say more than was done, never less: survey away leaves the
    # `ok` row of a change not made, and survey's refusal adds a `rejected` row after it.
    await _record(audit, person, Outcome.OK)
    try:
        answer = await survey.submit_collection(  # the handler: the service token's subject
            body, idempotency_key=idempotency_key or f"gateway-{uuid.uuid4()}", caller=staff
        )
    except Problem as problem:
        if problem.status < 500:
            await _record(audit, person, Outcome.REJECTED)
        raise
    return CollectionAccepted.model_validate(answer)


async def _record(audit: AuditTrail, person: PersonInQuestion, outcome: Outcome) -> None:
    await audit.record(
        purpose=Purpose.COUNTER_SERVICE,
        outcome=outcome,
        person_id=person.person_id,
        id_number=person.id_number,
        person_region=person.region,
    )
