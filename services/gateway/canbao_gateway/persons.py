"""`GET /api/v1/counter/popup/{id_number}` and `GET /api/v1/persons/{id_number}` (api.md): a
person as identity knows them and as matching judged them, for staff of their region, audited.

Who may read (api.md "Who calls"): the popup is the counter clerk's; the full record is for the
staff who work on one person's registration: counter, grass-roots platform (初审) and county
(审定). Not the analyst (reports and masked detail lists of a region, not one person's record)
nor the surveyor (its assigned tasks only, through survey), nor the auditor.

The region scope is checked against the person's region as identity records it (household
region, else the region of their insurance records, else of their residence permit), not the
number's first six digits: a person born in Zunyi who lives in Guiyang is Guiyang's, and so is
one whose number was issued in Yunnan and who is insured or holds a permit here. Only a person
identity knows no region of falls back to the number.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Depends

from canbao_gateway import problems
from canbao_gateway.audit import AuditTrail, Outcome, Purpose
from canbao_gateway.auth import AuditDep, PersonInQuestion, person_by_id_number, require
from canbao_gateway.clock import ClockDep
from canbao_gateway.popup import Popup, RegistrationRecord, popup_of, registration_record_of
from canbao_gateway.problems import NotRegistered
from canbao_gateway.service_clients import (
    IdentityClient,
    MatchingClient,
    identity_client,
    matching_client,
)
from canbao_gateway.staff import Actor, Role, Staff
from canbao_gateway.survey import SurveyClient, survey_client
from canbao_platform.problems import Problem

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")
# A person's values waiting for 复核 (survey): the popup waits this long for them at most.
PENDING_TIMEOUT_S: Final = 1.0
RECORD_ROLES: Final = (Role.COUNTER, Role.PLATFORM, Role.COUNTY)
# The documents a person may register with (the registration form; identity's lookup): 01 the
# citizen ID, else passport, HK/Macao/Taiwan residence permit, foreigner's permanent residence ID.
DocumentType = Literal["01", "02", "03", "04"]
# The longest document number identity's lookup takes (and any of those documents has).
DOCUMENT_NUMBER_MAX: Final = 40

IdentityDep = Annotated[IdentityClient, Depends(identity_client)]
MatchingDep = Annotated[MatchingClient, Depends(matching_client)]
SurveyDep = Annotated[SurveyClient, Depends(survey_client)]


@dataclass(frozen=True, slots=True)
class RegisteredPerson(PersonInQuestion):
    """The person of `{id_number}` as identity knows them (`record`: its PersonRecord, in clear:
    it never leaves the gateway unmasked)."""

    record: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # keep the clear record out of logs and tracebacks
        return f"RegisteredPerson(person_id={self.person_id}, region={self.region})"


def document_number(value: str, document_type: str) -> str:
    """A presented document's number as identity's lookup takes it: a citizen number validated
    and normalised (422 `invalid-id-number` naming the defects), another document's stripped and
    1 to DOCUMENT_NUMBER_MAX characters long (422 `invalid-document-number`): identity would
    refuse anything else, which is the caller's mistake, not an outage."""
    if document_type == "01":
        number = person_by_id_number(value).id_number
        assert number is not None
        return number
    number = value.strip()
    if not 0 < len(number) <= DOCUMENT_NUMBER_MAX:
        raise problems.InvalidDocumentNumber(DOCUMENT_NUMBER_MAX)
    return number


def registered_person(purpose: Purpose) -> Callable[..., Awaitable[RegisteredPerson]]:
    """The dependency giving the person of the `{id_number}` path parameter: 422
    `invalid-id-number` naming the defects (`invalid-document-number`: another document's), 404
    `not-registered` (audited) for a number identity does not know, 503 `identity-unavailable`."""

    async def person(
        id_number: str, identity: IdentityDep, audit: AuditDep, document_type: DocumentType = "01"
    ) -> RegisteredPerson:
        citizen = document_type == "01"
        number = document_number(id_number, document_type)
        fallback = number[:6] if citizen else ""  # "": covers no scope
        try:
            record = await identity.person(number, document_type, caller=audit.staff)
        except NotRegistered:
            await audit.record(
                purpose=purpose,
                outcome=Outcome.NOT_FOUND,
                id_number=number,
                person_region=fallback or None,
            )
            raise
        return RegisteredPerson(
            region=region_of(record) or fallback,
            id_number=number,
            person_id=UUID(record["person_id"]),
            record=record,
        )

    return person


def region_of(record: dict[str, Any]) -> str | None:
    """The person's 6-digit region as identity has it: what it published, else the golden
    record's own fields by the same rule (PersonState.region_code): the household region for the
    locally household-registered, else where they are insured or live. A residence permit
    holder's household region is in another province: never their region here."""
    state = record.get("public_state") or {}
    golden = record["golden"]
    household = golden.get("household_region_code") if record.get("household_registered") else None
    for candidate in (
        state.get("region_code"),
        (household or {}).get("value"),
        (golden.get("region_code") or {}).get("value"),
    ):
        if isinstance(candidate, str) and len(candidate) == 6 and candidate.isdigit():
            return candidate
    return None


popup_person = registered_person(Purpose.COUNTER_SERVICE)
record_person = registered_person(Purpose.REGISTRATION_RECORD)

ERRORS: Final = problems.problem_responses(
    {
        401: problems.UNAUTHENTICATED,
        403: "role-not-allowed; out-of-scope (the person lives outside your region)",
        404: "not-registered: the clerk may start a registration",
        422: "invalid-id-number (`defects` says what is wrong with the number), "
        "invalid-document-number, invalid-request",
        503: "identity-unavailable, matching-unavailable",
    }
)


@router.get(
    "/counter/popup/{id_number}",
    tags=["counter"],
    responses=ERRORS,
    summary="The counter popup: what is missing, inaccurate and uninsured",
)
async def popup(
    staff: Annotated[
        Staff, require(Role.COUNTER, person=popup_person, purpose=Purpose.COUNTER_SERVICE)
    ],
    person: Annotated[RegisteredPerson, Depends(popup_person)],
    matching: MatchingDep,
    survey: SurveyDep,
    audit: AuditDep,
    now: ClockDep,
) -> Popup:
    record, number = _known(person)
    verdict, pending = await _audited_verdict(
        matching, survey, audit, person, Purpose.COUNTER_SERVICE
    )
    return popup_of(record, verdict, id_number=number, now=now(), pending=pending)


@router.get(
    "/persons/{id_number}",
    tags=["persons"],
    responses=ERRORS,
    summary="The full registration record (masked)",
)
async def registration_record(
    staff: Annotated[
        Staff, require(*RECORD_ROLES, person=record_person, purpose=Purpose.REGISTRATION_RECORD)
    ],
    person: Annotated[RegisteredPerson, Depends(record_person)],
    matching: MatchingDep,
    survey: SurveyDep,
    audit: AuditDep,
    now: ClockDep,
) -> RegistrationRecord:
    return await audited_record(
        person, matching, survey, audit, purpose=Purpose.REGISTRATION_RECORD, now=now()
    )


async def audited_record(
    person: RegisteredPerson,
    matching: MatchingClient,
    survey: SurveyClient,
    audit: AuditTrail,
    *,
    purpose: Purpose,
    now: datetime,
) -> RegistrationRecord:
    """The person's full registration record (masked), the read audited for `purpose`: the
    persons route's answer, and the platform's look-up before a change (变更登记)."""
    record, number = _known(person)
    verdict, pending = await _audited_verdict(matching, survey, audit, person, purpose)
    return registration_record_of(record, verdict, id_number=number, now=now, pending=pending)


def _known(person: RegisteredPerson) -> tuple[dict[str, Any], str]:
    assert person.id_number is not None  # set by registered_person
    return person.record, person.id_number


async def _audited_verdict(
    matching: MatchingClient,
    survey: SurveyClient,
    audit: AuditTrail,
    person: RegisteredPerson,
    purpose: Purpose,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """Matching's verdict and survey's values waiting for 复核, asked while the read's audit row
    is written: the answer waits for all three (a read whose row is not committed is not
    answered), in the time of the slowest.

    The row is written as the verdict is asked, so when matching then fails the log holds a
    read the clerk did not see (the gateway had read identity's record): the log may say more
    than was shown, never less."""
    assert person.person_id is not None  # set by registered_person
    # Both settled before answering, whichever fails: no row still being written after a 503.
    verdict, recorded, pending = await asyncio.gather(
        matching.verdict(person.person_id, caller=audit.staff),
        _record_read(audit, person, purpose),
        _pending(survey, person.person_id, audit.staff),
        return_exceptions=True,
    )
    if isinstance(recorded, BaseException):
        raise recorded
    if isinstance(verdict, BaseException):
        raise verdict
    if isinstance(pending, BaseException):
        raise pending
    return verdict, pending


async def _pending(
    survey: SurveyClient, person_id: UUID, staff: Actor
) -> list[dict[str, Any]] | None:
    """The person's values waiting for 复核, masked; None when survey does not answer (the
    popup is identity's and matching's: it is shown without them, saying so)."""
    try:
        response = await survey.call(
            "GET",
            f"/persons/{person_id}/collections",
            caller=staff,
            prefix="/internal",
            time_limit_s=PENDING_TIMEOUT_S,
        )
    except Problem as problem:
        log.warning("no pending values for the popup: survey answered %s", problem.slug)
        return None
    pending: list[dict[str, Any]] = response.json()["pending"]
    return pending


async def _record_read(audit: AuditTrail, person: RegisteredPerson, purpose: Purpose) -> None:
    await audit.record(
        purpose=purpose,
        outcome=Outcome.OK,
        person_id=person.person_id,
        id_number=person.id_number,
        person_region=person.region,
    )
