"""Self-service endpoints (api.md "Self-service"): a kiosk or the mobile app backend opens a
citizen's session (self_service.py), and the citizen reads their own record with reminders in
zh-CN (reminders.py), sends corrections the agency confirms (survey's review queue: a task of
channel `self`, state submitted, 初审/审定 like a survey's), and follows them.

Every read is audited with the session's channel and device; no route takes a person from the
request: the session's person is the only one these routes reach.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from canbao_contracts.codes import (
    EmploymentStatus,
    Insurance,
    RegistrationItem,
    RegistrationState,
    StatusCode,
)
from canbao_contracts.events.statuses import Statuses
from canbao_gateway import certificate, problems, throttling, tokens
from canbao_gateway.audit import AuditTrail, Outcome, Purpose, endpoint_of, id_number_hash
from canbao_gateway.auth import ResourcesDep, SettingsDep, client_of, oauth2_scheme
from canbao_gateway.clock import ClockDep
from canbao_gateway.persons import IdentityDep, MatchingDep, SurveyDep
from canbao_gateway.popup import InaccurateItem, MissingItem, masked, popup_of
from canbao_gateway.reminders import SELF_CORRECTABLE, Reminder, ReminderKind, reminders_of
from canbao_gateway.self_service import (
    SESSION_URL,
    Channel,
    CitizenAuditDep,
    CitizenDep,
    Unverified,
    end_session,
    open_kiosk_session,
    open_mobile_session,
)
from canbao_platform.problems import Problem

router = APIRouter(prefix="/api/v1", tags=["self-service"])

# The words of api.md's collection items a citizen may send (reminders.SELF_CORRECTABLE).
CorrectableItem = Literal[
    "phone", "residence_address", "employment_status", "unit_name", "personal_identity"
]
MAX_ITEM_LENGTH: Final = 200


class SessionRequest(BaseModel):
    """Either what a kiosk read from the ID card chip, or the app's ID token (api.md)."""

    model_config = ConfigDict(extra="forbid")

    id_number: str | None = Field(None, min_length=1, max_length=40)
    name: str | None = Field(None, min_length=1, max_length=50)
    id_token: str | None = Field(None, min_length=1, max_length=8192)

    @model_validator(mode="after")
    def _one_way(self) -> SessionRequest:
        card = self.id_number is not None and self.name is not None
        if card == (self.id_token is not None) or (self.id_number is None) != (self.name is None):
            raise ValueError("send either id_number and name (a kiosk) or id_token (the app)")
        return self


class SessionToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Correction(BaseModel):
    """api.md: `{"client_id": "<uuid>", "items": {"phone": "…", …}}`; identity items (name,
    number, gender, birth date) and the household register's only at a counter, with the
    document."""

    model_config = ConfigDict(extra="forbid")

    client_id: UUID
    items: dict[str, Annotated[str, Field(min_length=1, max_length=MAX_ITEM_LENGTH)]] = Field(
        min_length=1, max_length=len(SELF_CORRECTABLE)
    )

    def __repr__(self) -> str:  # the values are personal data
        return f"Correction(client_id={self.client_id}, items=<{sorted(self.items)}>)"

    __str__ = __repr__


class CounterOnlyItems(Problem):
    def __init__(self, items: list[str]) -> None:
        labels = "、".join(
            RegistrationItem(i).label if i in RegistrationItem.__members__.values() else i
            for i in items
        )
        super().__init__(
            422,
            "counter-only-items",
            "该信息须携带证件到社保经办窗口办理 (corrected at a counter only)",
            f"{labels}：请携带居民身份证件到窗口办理",
            items=items,
        )


class CorrectionAccepted(BaseModel):
    task_id: UUID
    state: str
    state_label: str


class CorrectionState(BaseModel):
    task_id: UUID
    client_id: UUID
    items: list[dict[str, str]]  # [{item, code, label}]: which items, never the values
    state: str
    state_label: str  # 待初审, 待审定, 已审定, 已退回…
    comment: str | None
    submitted_at: datetime
    updated_at: datetime


class ReminderOut(BaseModel):
    kind: ReminderKind
    text: str
    insurance: Insurance | None = None
    item: RegistrationItem | None = None
    self_service: bool


class OwnRecord(BaseModel):
    """api.md `GET /api/v1/self/me`, plus the masked name and number (the kiosk shows whose record
    this is), the record's contact items (masked), `registration_label`, `verdict_pending` and
    the person's own corrections."""

    name: str | None
    id_number: str | None
    registration: RegistrationState | None
    registration_label: str | None
    statuses: Statuses | None
    status_labels: dict[str, str | None] | None
    missing: list[MissingItem]
    inaccurate: list[InaccurateItem]
    reminders: list[ReminderOut]
    contact: dict[str, str | None]
    corrections: list[CorrectionState] | None  # null: survey did not answer
    deceased: bool
    verdict_pending: bool
    as_of: datetime


SESSION_ERRORS: Final = problems.problem_responses(
    {
        400: "bad-request: a body that cannot be parsed",
        401: "unauthenticated, invalid-token, token-expired, token-revoked (a kiosk's token); "
        "id-token-invalid, id-token-replayed (the app's ID token)",
        403: "role-not-allowed (not a kiosk's token), name-mismatch",
        404: "not-registered",
        413: "body-too-large",
        422: "invalid-request, invalid-id-number",
        429: "self-service-throttled",
        503: "identity-unavailable, mobile-channel-unavailable",
    }
)
SELF_ERRORS: Final = problems.problem_responses(
    {
        401: "unauthenticated, invalid-token, token-expired, session-ended",
        403: problems.ROLE_NOT_ALLOWED,
        404: "not-registered",
        503: "identity-unavailable, matching-unavailable",
    }
)
CORRECTION_ERRORS: Final = problems.problem_responses(
    {
        400: "bad-request: a body that cannot be parsed",
        401: "unauthenticated, invalid-token, token-expired, session-ended",
        403: problems.ROLE_NOT_ALLOWED,
        409: "client-id-reused",
        413: "body-too-large",
        422: "invalid-request, counter-only-items, invalid-items",
        503: "survey-unavailable",
    }
)


@router.post(
    SESSION_URL.removeprefix("/api/v1"),
    status_code=201,
    responses=SESSION_ERRORS,
    summary="Open a citizen's session: an ID card a kiosk read, or the app's ID token",
)
async def open_session(
    body: SessionRequest,
    request: Request,
    resources: ResourcesDep,
    settings: SettingsDep,
    clock: ClockDep,
    identity: IdentityDep,
    kiosk_token: Annotated[str | None, Depends(oauth2_scheme)],  # a kiosk's client token
) -> SessionToken:
    now = clock()
    common: dict[str, Any] = {
        "identity": identity,
        "database": resources.database,
        "settings": settings,
        "now": now,
    }
    if body.id_token is not None:
        actor = Unverified(Channel.MOBILE, "id-token")
        opened = await open_mobile_session(
            id_token=body.id_token,
            audit=_audit(request, actor, resources, settings, clock),
            **common,
        )
    else:
        if not kiosk_token:
            raise problems.missing_token()
        holder = tokens.read_client(kiosk_token, key=settings.jwt_key(), now=now)
        await tokens.check_current(resources.database, holder)
        assert body.id_number is not None and body.name is not None
        opened = await open_kiosk_session(
            kiosk=holder.client,
            id_number=body.id_number,
            name=body.name,
            audit=_audit(request, holder.client, resources, settings, clock),
            **common,
        )
    return SessionToken(access_token=opened.token, expires_in=opened.expires_in)


def _audit(request: Request, actor: Any, resources: Any, settings: Any, clock: Any) -> AuditTrail:
    return AuditTrail(
        database=resources.database,
        staff=actor,
        endpoint=endpoint_of(request),
        client=client_of(request),
        key=settings.audit_key(),
        now=clock,
    )


@router.delete(
    SESSION_URL.removeprefix("/api/v1"),
    status_code=204,
    responses=SELF_ERRORS,
    summary="End the citizen's session (the citizen leaves the kiosk)",
)
async def close_session(citizen: CitizenDep, resources: ResourcesDep, clock: ClockDep) -> Response:
    await end_session(resources.database, citizen, now=clock())
    return Response(status_code=204)


@router.get("/self/me", responses=SELF_ERRORS, summary="The citizen's own record and reminders")
async def own_record(
    citizen: CitizenDep,
    audit: CitizenAuditDep,
    identity: IdentityDep,
    matching: MatchingDep,
    survey: SurveyDep,
    clock: ClockDep,
) -> OwnRecord:
    person = await identity.person_by_id(citizen.person_id, caller=citizen)
    verdict = await matching.verdict(citizen.person_id, caller=citizen)
    corrections = await _corrections(survey, citizen)
    await audit.record(
        purpose=Purpose.SELF_SERVICE,
        outcome=Outcome.OK,
        person_id=citizen.person_id,
        person_region=citizen.region,
    )
    golden = person["golden"]
    number = str((golden.get("id_number") or {}).get("value") or "")
    popup = popup_of(person, verdict, id_number=number, now=clock())
    waiting = frozenset(
        RegistrationItem(i["item"])
        for c in corrections or []
        if c.state in WAITING
        for i in c.items
    )
    return OwnRecord(
        name=popup.name,
        id_number=popup.id_number,
        registration=popup.registration,
        registration_label=popup.registration.label if popup.registration else None,
        statuses=popup.statuses,
        status_labels=_labels(popup.statuses),
        missing=popup.missing,
        inaccurate=popup.inaccurate,
        reminders=[_reminder(r) for r in reminders_of(popup, pending_items=waiting)],
        contact=_contact(golden),
        corrections=corrections,
        deceased=popup.deceased,
        verdict_pending=popup.verdict_pending,
        as_of=popup.as_of,
    )


# Survey's task states that wait for the agency (submitted, first_reviewed): not asked for again.
WAITING: Final = frozenset({"submitted", "first_reviewed"})


def _contact(golden: dict[str, Any]) -> dict[str, str | None]:
    """The items a citizen may correct themself, as the kiosk shows them: the phone and the
    address masked (a kiosk stands in a hall), the employment status by its label and the unit
    by name (identity keeps both in one golden `employment_status`)."""

    def value(field: str) -> Any:
        return (golden.get(field) or {}).get("value")

    employment = value("employment_status")
    status = employment.get("status") if isinstance(employment, dict) else employment
    unit = employment.get("unit_name") if isinstance(employment, dict) else None
    return {
        "phone": masked("phone", value("phone")),
        "residence_address": masked("residence_address", value("residence_address")),
        "employment_status": EmploymentStatus(status).label if status in _EMPLOYMENT else None,
        "unit_name": unit,
    }


_EMPLOYMENT: Final = frozenset(status.value for status in EmploymentStatus)


def _labels(statuses: Statuses | None) -> dict[str, str | None] | None:
    if statuses is None:
        return None
    return {insurance.value: code.label if code else None for insurance, code in statuses.items()}


def _reminder(reminder: Reminder) -> ReminderOut:
    return ReminderOut(
        kind=reminder.kind,
        text=reminder.text,
        insurance=reminder.insurance,
        item=reminder.item,
        self_service=reminder.self_service,
    )


async def _corrections(survey: Any, citizen: Any) -> list[CorrectionState] | None:
    """The person's own corrections (survey's), None when survey does not answer: the record is
    identity's and matching's and is shown without them."""
    try:
        response = await survey.call(
            "GET", "/corrections", caller=citizen, params={"person_id": str(citizen.person_id)}
        )
    except Problem:
        return None
    return [CorrectionState.model_validate(c) for c in response.json()]


@router.post(
    "/self/me/corrections",
    status_code=202,
    responses=CORRECTION_ERRORS,
    summary="Correct one's own record, to be confirmed by the agency (初审/审定)",
)
async def correct(
    body: Correction,
    citizen: CitizenDep,
    audit: CitizenAuditDep,
    survey: SurveyDep,
    response: Response,
) -> CorrectionAccepted:
    counter_only = sorted(item for item in body.items if item not in SELF_CORRECTABLE)
    if counter_only:
        await audit.record(
            purpose=Purpose.SELF_SERVICE,
            outcome=Outcome.REJECTED,
            person_id=citizen.person_id,
            person_region=citizen.region,
        )
        raise CounterOnlyItems(counter_only)
    payload = {
        "client_id": str(body.client_id),
        "person_id": str(citizen.person_id),
        "region_code": citizen.region,
        "origin": citizen.channel.value,
        "items": body.items,
    }
    try:
        answer = await survey.call("POST", "/corrections", caller=citizen, json=payload)
    except Problem as refused:
        if refused.status == 422:
            await audit.record(
                purpose=Purpose.SELF_SERVICE,
                outcome=Outcome.REJECTED,
                person_id=citizen.person_id,
                person_region=citizen.region,
            )
        raise
    await audit.record(
        purpose=Purpose.SELF_SERVICE,
        outcome=Outcome.OK,
        person_id=citizen.person_id,
        person_region=citizen.region,
    )
    if answer.headers.get("Idempotent-Replayed"):
        response.headers["Idempotent-Replayed"] = "true"
    found = answer.json()
    return CorrectionAccepted(
        task_id=found["task_id"], state=found["state"], state_label=found["state_label"]
    )


@router.get(
    "/self/me/corrections",
    responses=SELF_ERRORS,
    summary="The citizen's own corrections and where they stand",
)
async def own_corrections(
    citizen: CitizenDep, audit: CitizenAuditDep, survey: SurveyDep
) -> list[CorrectionState]:
    response = await survey.call(
        "GET", "/corrections", caller=citizen, params={"person_id": str(citizen.person_id)}
    )
    await audit.record(
        purpose=Purpose.SELF_SERVICE,
        outcome=Outcome.OK,
        person_id=citizen.person_id,
        person_region=citizen.region,
    )
    return [CorrectionState.model_validate(c) for c in response.json()]


# -- The proof of insurance (参保证明) -------------------------------------------------------------


class NoVerdictYet(Problem):
    def __init__(self) -> None:
        super().__init__(
            409,
            "no-verdict-yet",
            "参保状态尚在核定中，暂不能出具参保证明 (no verdict yet)",
            "请稍后再试，或到社保经办窗口办理",
        )


class CertificateNotFound(Problem):
    def __init__(self) -> None:
        super().__init__(
            404,
            "certificate-not-found",
            "未找到该验证码对应的参保证明 (no certificate with this code)",
            "请核对验证码：16位数字和字母，如 7K3M-Q9XA-2B4T-HN8P",
        )


CERTIFICATE_ERRORS: Final = problems.problem_responses(
    {
        401: "unauthenticated, invalid-token, token-expired, session-ended",
        403: problems.ROLE_NOT_ALLOWED,
        404: "not-registered",
        409: "no-verdict-yet",
        503: "identity-unavailable, matching-unavailable",
    }
)
VERIFY_ERRORS: Final = problems.problem_responses(
    {
        404: "certificate-not-found",
        422: "invalid-request: longer than any code",
        429: "verify-throttled",
    }
)


@router.get(
    "/self/me/certificate.pdf",
    responses=CERTIFICATE_ERRORS,
    response_class=Response,
    summary="The proof of insurance (参保证明), as a PDF",
    openapi_extra={
        "responses": {
            "200": {
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}
            }
        }
    },
)
async def own_certificate(
    citizen: CitizenDep,
    audit: CitizenAuditDep,
    identity: IdentityDep,
    matching: MatchingDep,
    resources: ResourcesDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    person = await identity.person_by_id(citizen.person_id, caller=citizen)
    verdict = await matching.verdict(citizen.person_id, caller=citizen)
    if verdict is None or verdict.get("verdict") is None:
        raise NoVerdictYet()
    insurance = await matching.insurance(citizen.person_id, caller=citizen)
    golden = person["golden"]
    name = str((golden.get("name") or {}).get("value") or "")
    number = str((golden.get("id_number") or {}).get("value") or "")
    found = verdict["verdict"]
    issued = certificate.Certificate(
        code=certificate.new_code(),
        person_id=citizen.person_id,
        name=name,
        id_number=number,
        masked_name=masked("name", name),
        masked_number=masked("id_number", number),
        registration=RegistrationState(found["registration"])
        if found.get("registration")
        else None,
        statuses=dict(found.get("statuses") or {}),
        enrolments=certificate.enrolment_lines(insurance),
        as_of=datetime.fromisoformat(verdict["as_of"]) if verdict.get("as_of") else clock(),
        issued_at=clock(),
        channel=citizen.channel.value,
        device=citizen.device,
    )
    verify_url = settings.public_url.rstrip("/") + certificate.VERIFY_PATH + issued.code
    pdf = await asyncio.to_thread(
        certificate.render_pdf, issued, verify_url=verify_url, font_path=settings.cjk_font
    )
    await certificate.issue(
        resources.database, issued, id_number_hash=id_number_hash(number, key=settings.audit_key())
    )
    await audit.record(
        purpose=Purpose.SELF_SERVICE,
        outcome=Outcome.OK,
        person_id=citizen.person_id,
        person_region=citizen.region,
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="canbao-certificate-{issued.code}.pdf"',
            "Cache-Control": "no-store",
        },
    )


class Verification(BaseModel):
    """`GET /api/v1/verify/{code}`: the certificate is genuine, and what it said at issue."""

    genuine: bool
    code: str  # XXXX-XXXX-XXXX-XXXX
    name: str  # masked: 王*
    id_number: str  # masked: 5201**********123X
    registration: RegistrationState | None
    registration_label: str | None
    statuses: dict[str, str | None]
    status_labels: dict[str, str | None]
    as_of: datetime  # the registry's verdict the certificate printed
    issued_at: datetime
    channel: str
    note: str


@router.get(
    certificate.VERIFY_PATH.removeprefix("/api/v1") + "{code}",
    tags=["verification"],
    responses=VERIFY_ERRORS,
    summary="Whether a proof of insurance is genuine, and what it said",
)
async def verify(
    code: Annotated[str, Path(max_length=40, description="as printed: XXXX-XXXX-XXXX-XXXX")],
    request: Request,
    resources: ResourcesDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Verification:
    now = clock()
    client = throttling.client_key(client_of(request))
    async with resources.database.engine.begin() as connection:
        await throttling.take(
            connection,
            throttling.VERIFICATIONS_PER_CLIENT,
            client,
            now=now,
            refuse=problems.verify_throttled,
        )
    stored = certificate.normalise(code)
    found = await certificate.find(resources.database, stored) if stored else None
    audit = AuditTrail(
        database=resources.database,
        staff=certificate.VERIFIER,
        endpoint=endpoint_of(request),
        client=client_of(request),
        key=settings.audit_key(),
        now=clock,
    )
    if found is None:
        await audit.record(purpose=Purpose.CERTIFICATE_CHECK, outcome=Outcome.NOT_FOUND)
        raise CertificateNotFound()
    await audit.record(
        purpose=Purpose.CERTIFICATE_CHECK, outcome=Outcome.OK, person_id=found.person_id
    )
    return Verification(
        genuine=True,
        code=certificate.formatted(found.code),
        name=found.masked_name,
        id_number=found.masked_number,
        registration=found.registration,
        registration_label=found.registration.label if found.registration else None,
        statuses=found.statuses,
        status_labels={k: StatusCode(v).label if v else None for k, v in found.statuses.items()},
        as_of=found.as_of,
        issued_at=found.issued_at,
        channel=found.channel,
        note="此为出具时的参保状态；当前状态以经办机构记录为准",
    )
