"""The gateway's HTTP endpoints so far: staff login (`/api/v1/auth/...`) and the audit log.

Routes only parse, call the module that does the work, and shape the answer."""

from __future__ import annotations

from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import AwareDatetime, BaseModel

from canbao_gateway import problems, tokens
from canbao_gateway.audit import AuditEntry, AuditFilter, Outcome, Purpose, search
from canbao_gateway.auth import (
    AuditDep,
    CurrentStaff,
    ResourcesDep,
    SettingsDep,
    client_of,
    person_by_id_number,
    require,
)
from canbao_gateway.clock import ClockDep
from canbao_gateway.login import log_in
from canbao_gateway.login_gate import LoginGate, login_gate
from canbao_gateway.staff import Role, Staff

router = APIRouter(prefix="/api/v1")
MAX_PAGE: Final = 500


class AccessToken(BaseModel):
    """RFC 6749 §5.1."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int  # seconds


class Me(BaseModel):
    username: str
    role: Role
    scope: str  # GB/T 2260 prefix: 52 province, 5201 city, 520102 county


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before: int | None
    """Pass as `before` for the next (older) page; null on the last one."""


LOGIN_ERRORS: Final = problems.problem_responses({
    400: "bad-request: a form body that cannot be parsed",
    401: "invalid-credentials: wrong username or password",
    413: "body-too-large",
    422: "invalid-request: a form field missing or malformed",
    429: "login-throttled: too many failed logins; too-many-logins: too many at once; see "
         "Retry-After",
})  # fmt: skip
ME_ERRORS: Final = problems.problem_responses({401: problems.UNAUTHENTICATED})
AUDIT_ERRORS: Final = problems.problem_responses({
    401: problems.UNAUTHENTICATED,
    403: problems.ROLE_NOT_ALLOWED,
    422: "invalid-request (a malformed parameter), invalid-id-number",
})  # fmt: skip


@router.post("/auth/token", tags=["auth"], summary="Staff login (OAuth2 password grant)",
             responses=LOGIN_ERRORS)  # fmt: skip
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request,
    resources: ResourcesDep, settings: SettingsDep, clock: ClockDep,
    gate: Annotated[LoginGate, Depends(login_gate)],
) -> AccessToken:  # fmt: skip
    now = clock()
    account = await log_in(resources.database, gate, username=form.username,
                           password=form.password, client=client_of(request), now=now)  # fmt: skip
    lifetime = settings.access_token_lifetime
    token = tokens.issue(account.staff, version=account.token_version, key=settings.jwt_key(),
                         now=now, lifetime=lifetime)  # fmt: skip
    return AccessToken(access_token=token, expires_in=int(lifetime.total_seconds()))


@router.get("/auth/me", tags=["auth"], summary="Who the bearer token stands for",
            responses=ME_ERRORS)  # fmt: skip
async def me(staff: CurrentStaff) -> Me:
    return Me(username=staff.username, role=staff.role, scope=staff.scope)


@router.get("/audit", tags=["audit"], summary="The audit log (auditor role), newest first",
            responses=AUDIT_ERRORS)  # fmt: skip
async def audit_entries(
    staff: Annotated[Staff, require(Role.AUDITOR)], resources: ResourcesDep, audit: AuditDep,
    person_id: UUID | None = None,
    id_number: Annotated[str | None, Query(description="any valid form; matched by hash")] = None,
    staff_username: Annotated[str | None, Query(alias="staff")] = None,
    since: AwareDatetime | None = None, until: AwareDatetime | None = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1,  # the audit id is a bigint
                                        description="`next_before` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPage:  # fmt: skip
    number = person_by_id_number(id_number).id_number if id_number is not None else None
    query = AuditFilter(scope=staff.scope, person_id=person_id, id_number=number,
                        staff=staff_username, since=since, until=until)  # fmt: skip
    entries = await search(resources.database, query, key=audit.key, before=before, limit=limit)
    # Reading the log is itself recorded: auditors are audited too.
    await audit.record(purpose=Purpose.AUDIT_REVIEW, outcome=Outcome.OK, person_id=person_id,
                       id_number=number)  # fmt: skip
    next_before = entries[-1].id if len(entries) == limit else None
    return AuditPage(items=entries, next_before=next_before)
