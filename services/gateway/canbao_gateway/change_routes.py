"""`/api/v1/survey/changes` (变更登记, 44号 Art.5, Art.21): the grass-roots platform looks up a
person who walks in or calls, and records the change they bring with the documents it saw;
survey keeps it as a task of channel change, submitted by the member who recorded it (AAE011),
for 初审 by another member of the platform and 审定 by the county through the survey's review
routes (survey_routes.py), and publishes it only when approved (channel platform).

The person is looked up as the full registration record is (persons.py: identity's region for
them, the platform's scope, a township's standing for its county; masked), audited with the
purpose change_registration: a read `ok`, an unknown number `not_found`, another division's
person `out_of_scope`; a change `ok` before survey hears of it (as a counter collection's),
`rejected` when its items or survey refuse it.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends
from fastapi import Response as HttpResponse
from pydantic import BaseModel, ConfigDict, Field

from canbao_contracts.codes import ChangeDocument, RegistrationItem
from canbao_contracts.collected_items import item_defects
from canbao_gateway.audit import AuditTrail, Outcome, Purpose
from canbao_gateway.auth import AuditDep, PersonInQuestion, require
from canbao_gateway.clock import ClockDep
from canbao_gateway.persons import (
    IdentityDep,
    MatchingDep,
    RegisteredPerson,
    SurveyDep,
    audited_record,
    registered_person,
)
from canbao_gateway.popup import RegistrationRecord
from canbao_gateway.problems import UNAUTHENTICATED, problem_responses
from canbao_gateway.staff import Role, Staff
from canbao_gateway.survey_models import Comment, Declaration, SubmissionAccepted
from canbao_platform.problems import InvalidItems, Problem

router = APIRouter(prefix="/api/v1/survey/changes", tags=["survey"])
REPLAYED: Final = "Idempotent-Replayed"
PURPOSE: Final = Purpose.CHANGE_REGISTRATION

# The look-up of persons.py (identity by number; 404 not-registered audited), for this purpose.
change_person = registered_person(PURPOSE)


class ChangeRequest(BaseModel):
    """A change the platform records for a registered person. PERSONAL DATA in `id_number` and
    `items`."""

    model_config = ConfigDict(extra="forbid")

    client_id: UUID
    """Made by the client when the member saves: the same change sent twice is one."""
    id_number: str = Field(max_length=40)
    """The person's citizen number (any valid form), as on the document presented."""
    items: Annotated[dict[str, str], Field(min_length=1, max_length=len(RegistrationItem))]
    """Item (`phone`, as counter collections) → the changed value."""
    documents: Annotated[list[ChangeDocument], Field(min_length=1, max_length=len(ChangeDocument))]
    """The documents seen (at least one): 居民身份证, 户口簿, 社会保障卡…"""
    reason: Annotated[Comment, Field(min_length=1)]
    """Why the registration changes (e.g. 更换手机号码)."""
    declaration: Declaration | None = None
    """Who signed the change form; absent: the person themself, on the day it is recorded."""

    def __repr__(self) -> str:  # the values are personal data: keep them out of logs
        return f"ChangeRequest(client_id={self.client_id}, items=<{len(self.items)}>)"

    __str__ = __repr__


async def change_subject(
    change: ChangeRequest, identity: IdentityDep, audit: AuditDep
) -> RegisteredPerson:
    """The person of the change, looked up as the lookup route does (the same call)."""
    return await change_person(change.id_number, identity, audit)


LOOKUP_ERRORS: Final = problem_responses(
    {
        401: UNAUTHENTICATED,
        403: "role-not-allowed; out-of-scope (the person lives outside your division)",
        404: "not-registered",
        422: "invalid-id-number (`defects`), invalid-request",
        503: "identity-unavailable, matching-unavailable",
    }
)


@router.get(
    "/lookup/{id_number}",
    responses=LOOKUP_ERRORS,
    summary="变更登记: the registration record of a person at the platform (masked)",
)
async def lookup(
    staff: Annotated[Staff, require(Role.PLATFORM, person=change_person, purpose=PURPOSE)],
    person: Annotated[RegisteredPerson, Depends(change_person)],
    matching: MatchingDep,
    survey: SurveyDep,
    audit: AuditDep,
    now: ClockDep,
) -> RegistrationRecord:
    return await audited_record(person, matching, survey, audit, purpose=PURPOSE, now=now())


CHANGE_ERRORS: Final = problem_responses(
    {
        400: "bad-request: a body that cannot be parsed",
        401: UNAUTHENTICATED,
        403: "role-not-allowed; out-of-scope (the person lives outside your division)",
        404: "not-registered: record the person as a new registration at the counter",
        409: "change-pending (`task`: the person's change waiting for review), client-id-reused",
        413: "body-too-large",
        422: "invalid-items, invalid-id-number, invalid-request",
        503: (
            "identity-unavailable; survey-unavailable: nothing saved; retry with the same client_id"
        ),
    }
)
ACCEPTED_AGAIN: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "the same client_id again: the first change (header "
        "Idempotent-Replayed: true)",
        "model": SubmissionAccepted,
        "headers": {REPLAYED: {"schema": {"type": "string"}}},
    }
}


@router.post(
    "",
    status_code=201,
    responses=ACCEPTED_AGAIN | CHANGE_ERRORS,
    summary="变更登记: a change recorded at the platform, for 初审 and 审定",
)
async def post_change(
    staff: Annotated[Staff, require(Role.PLATFORM, person=change_subject, purpose=PURPOSE)],
    person: Annotated[RegisteredPerson, Depends(change_subject)],
    change: ChangeRequest,
    survey: SurveyDep,
    audit: AuditDep,
    http: HttpResponse,
) -> SubmissionAccepted:
    if defects := item_defects(change.items):
        await _record(audit, person, Outcome.REJECTED)
        raise InvalidItems(defects)
    body = change.model_dump(mode="json", exclude={"id_number"}) | {
        "person_id": str(person.person_id),
        "region_code": person.region,
    }
    # The change's row is committed before survey hears of it (collections.py says why).
    await _record(audit, person, Outcome.OK)
    try:
        response: httpx.Response = await survey.call("POST", "/changes", caller=staff, json=body)
    except Problem as problem:
        if problem.status < 500:
            await _record(audit, person, Outcome.REJECTED)
        raise
    if response.headers.get(REPLAYED) == "true":
        http.status_code = 200
        http.headers[REPLAYED] = "true"
    return SubmissionAccepted.model_validate(response.json())


async def _record(audit: AuditTrail, person: PersonInQuestion, outcome: Outcome) -> None:
    await audit.record(
        purpose=PURPOSE,
        outcome=outcome,
        person_id=person.person_id,
        id_number=person.id_number,
        person_region=person.region,
    )
