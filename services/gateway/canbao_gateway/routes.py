"""The gateway's HTTP endpoints of logins (`/api/v1/auth/...`: staff, and registered clients
such as kiosks) and of the audit log.

Routes only parse, call the module that does the work, and shape the answer."""

from __future__ import annotations

import base64
from typing import Annotated, Final
from urllib.parse import unquote_plus
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.exceptions import RequestValidationError
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
from canbao_gateway.login import log_in, log_in_client
from canbao_gateway.login_gate import LoginGate, login_gate
from canbao_gateway.staff import Role, Staff

router = APIRouter(prefix="/api/v1")
MAX_PAGE: Final = 500


class TokenRequest:
    """The token request's form (RFC 6749 §4.3.2 password grant, §4.4.2 client credentials);
    `grant_type` absent means a staff login, as the counter software has always sent it."""

    def __init__(
        self,
        grant_type: Annotated[str | None, Form(pattern="^(password|client_credentials)$")] = None,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form(json_schema_extra={"format": "password"})] = "",
        client_id: Annotated[str, Form()] = "",
        client_secret: Annotated[str, Form(json_schema_extra={"format": "password"})] = "",
        scope: Annotated[str, Form()] = "",
    ) -> None:
        self.grant_type = grant_type or "password"
        if self.grant_type == "password":  # RFC 6749 §4.3.2: both REQUIRED
            missing = [
                name
                for name, value in (("username", username), ("password", password))
                if not value
            ]
            if missing:
                raise RequestValidationError(
                    [
                        {
                            "type": "missing",
                            "loc": ("body", name),
                            "msg": "Field required",
                            "input": None,
                        }
                        for name in missing
                    ]
                )
        self.username, self.password = username, password
        self.client_id, self.client_secret = client_id, client_secret


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


LOGIN_ERRORS: Final = problems.problem_responses(
    {
        400: "bad-request: a form body that cannot be parsed",
        401: "invalid-credentials: wrong username or password; invalid-client: wrong client "
        "credentials",
        413: "body-too-large",
        422: "invalid-request: a form field missing or malformed",
        429: "login-throttled: too many failed logins; too-many-logins: too many at once; see "
        "Retry-After",
    }
)
# invalid-client carries a challenge only to a client that used HTTP Basic (problems.py).
LOGIN_ERRORS[401]["headers"] = {
    "WWW-Authenticate": {
        "required": False,
        "schema": {"type": "string"},
        "description": "Bearer with invalid-credentials; Basic with invalid-client to a client "
        "that authenticated with HTTP Basic (RFC 6749 §5.2)",
    }
}
ME_ERRORS: Final = problems.problem_responses({401: problems.UNAUTHENTICATED})
AUDIT_ERRORS: Final = problems.problem_responses(
    {
        401: problems.UNAUTHENTICATED,
        403: problems.ROLE_NOT_ALLOWED,
        422: "invalid-request (a malformed parameter), invalid-id-number",
    }
)


@router.post(
    "/auth/token",
    tags=["auth"],
    responses=LOGIN_ERRORS,
    summary="Staff login (password grant); a kiosk's login (client credentials)",
)
async def login(
    form: Annotated[TokenRequest, Depends()],
    request: Request,
    resources: ResourcesDep,
    settings: SettingsDep,
    clock: ClockDep,
    gate: Annotated[LoginGate, Depends(login_gate)],
) -> AccessToken:
    now = clock()
    if form.grant_type == "client_credentials":
        basic = _basic_credentials(request)
        client_id, secret = basic or (form.client_id, form.client_secret)
        if not client_id:
            raise problems.InvalidClient(basic=basic is not None)
        found = await log_in_client(
            resources.database,
            gate,
            client_id=client_id,
            secret=secret,
            client=client_of(request),
            now=now,
            basic=basic is not None,
        )
        lifetime = settings.client_token_lifetime
        token = tokens.issue_client(
            found.client,
            version=found.token_version,
            key=settings.jwt_key(),
            now=now,
            lifetime=lifetime,
        )
        return AccessToken(access_token=token, expires_in=int(lifetime.total_seconds()))
    account = await log_in(
        resources.database,
        gate,
        username=form.username,
        password=form.password,
        client=client_of(request),
        now=now,
    )
    lifetime = settings.access_token_lifetime
    token = tokens.issue(
        account.staff,
        version=account.token_version,
        key=settings.jwt_key(),
        now=now,
        lifetime=lifetime,
    )
    return AccessToken(access_token=token, expires_in=int(lifetime.total_seconds()))


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: a client may authenticate with HTTP Basic (id and secret form-encoded)
    instead of the form's fields. Read here rather than declared as a security scheme: the token
    endpoint is where credentials are presented, not a route behind them."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise problems.InvalidClient(basic=True) from None
    return unquote_plus(client_id), unquote_plus(secret)


@router.get(
    "/auth/me", tags=["auth"], summary="Who the bearer token stands for", responses=ME_ERRORS
)
async def me(staff: CurrentStaff) -> Me:
    return Me(username=staff.username, role=staff.role, scope=staff.scope)


@router.get(
    "/audit",
    tags=["audit"],
    summary="The audit log (auditor role), newest first",
    responses=AUDIT_ERRORS,
)
async def audit_entries(
    staff: Annotated[Staff, require(Role.AUDITOR)],
    resources: ResourcesDep,
    audit: AuditDep,
    person_id: UUID | None = None,
    id_number: Annotated[str | None, Query(description="any valid form; matched by hash")] = None,
    staff_username: Annotated[str | None, Query(alias="staff")] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    before: Annotated[
        int | None,
        Query(
            ge=1,
            le=2**63 - 1,  # the audit id is a bigint
            description="`next_before` of the previous page",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPage:
    number = person_by_id_number(id_number).id_number if id_number is not None else None
    query = AuditFilter(
        scope=staff.scope,
        person_id=person_id,
        id_number=number,
        staff=staff_username,
        since=since,
        until=until,
    )
    entries = await search(resources.database, query, key=audit.key, before=before, limit=limit)
    # Reading the log is itself recorded: auditors are audited too.
    await audit.record(
        purpose=Purpose.AUDIT_REVIEW, outcome=Outcome.OK, person_id=person_id, id_number=number
    )
    next_before = entries[-1].id if len(entries) == limit else None
    return AuditPage(items=entries, next_before=next_before)
