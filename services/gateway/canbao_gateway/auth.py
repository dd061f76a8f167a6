"""Authorisation: the dependencies every endpoint declares (the Netflix/dispatch and
full-stack-fastapi-template way: `Annotated[..., Depends(...)]` aliases).

* `require(*roles)`: a valid bearer token of one of `roles`, else 401 / 403 problem+json.
* `require(*roles, person=..., purpose=...)`: and the person the request is about lives inside
  the staff member's region scope (`person_in_scope`: staff.py's `covers`, a township scope
  standing for its county), else 403 `out-of-scope`, audited.
  `person` is a dependency giving that person's region, best the household region: for a
  registered person `persons.registered_person(purpose)` asks identity (household region, else
  the region of their insurance records; 404 `not-registered` audited); `person_by_id_number`
  only validates the number and takes its first six digits (a person not registered yet, as a
  new registration's collection).
* `AuditDep`: the request's audit trail (audit.py), for every read or change of personal data.

The dependencies are `async def` though most await nothing: FastAPI runs a plain `def`
dependency in its thread pool, one thread hop per dependency per request, and the popup's budget
is 20 ms p99 (bench/popup.py).

A personal-data endpoint reads:

    popup_person = registered_person(Purpose.COUNTER_SERVICE)  # persons.py

    @router.get("/counter/popup/{id_number}")
    async def popup(
        staff: Annotated[Staff, require(Role.COUNTER, person=popup_person,
                                        purpose=Purpose.COUNTER_SERVICE)],
        person: Annotated[RegisteredPerson, Depends(popup_person)],  # same call, cached
        audit: AuditDep,
    ) -> Popup:
        ...load the person...
        await audit.record(purpose=Purpose.COUNTER_SERVICE, outcome=Outcome.OK, ...)
        return ...
"""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import Depends, Request
from fastapi.openapi.models import OAuth2, OAuthFlowClientCredentials
from fastapi.security import OAuth2PasswordBearer

from canbao_contracts.id_numbers import normalise, validate
from canbao_gateway import problems, tokens
from canbao_gateway.audit import AuditTrail, Outcome, Purpose, endpoint_of
from canbao_gateway.clock import ClockDep
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.staff import Role, Staff, covers
from canbao_platform.service import Resources

TOKEN_URL = "/api/v1/auth/token"
# auto_error=False: a missing token is our own problem+json, not FastAPI's bare 401.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
# The same endpoint also gives registered clients (kiosks) their tokens (routes.py).
assert isinstance(oauth2_scheme.model, OAuth2)
oauth2_scheme.model.flows.clientCredentials = OAuthFlowClientCredentials(tokenUrl=TOKEN_URL)


async def resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def settings(request: Request) -> GatewaySettings:
    settings = request.app.state.resources.settings
    assert isinstance(settings, GatewaySettings)
    return settings


ResourcesDep = Annotated[Resources, Depends(resources)]
SettingsDep = Annotated[GatewaySettings, Depends(settings)]


async def current_staff(
    token: Annotated[str | None, Depends(oauth2_scheme)],
    settings: SettingsDep,
    now: ClockDep,
    resources: ResourcesDep,
) -> Staff:
    """Whoever the bearer token says, if it is valid now and not revoked (tokens.py)."""
    if not token:
        raise problems.missing_token()
    holder = tokens.read(token, key=settings.jwt_key(), now=now())
    await tokens.check_current(resources.database, holder)
    return holder.staff


CurrentStaff = Annotated[Staff, Depends(current_staff)]


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


async def audit_trail(
    request: Request,
    staff: CurrentStaff,
    resources: ResourcesDep,
    settings: SettingsDep,
    now: ClockDep,
) -> AuditTrail:
    return AuditTrail(
        database=resources.database,
        staff=staff,
        endpoint=endpoint_of(request),
        client=client_of(request),
        key=settings.audit_key(),
        now=now,
    )


AuditDep = Annotated[AuditTrail, Depends(audit_trail)]


@dataclass(frozen=True, slots=True)
class PersonInQuestion:
    """The person a request is about, as far as the scope check and the audit need them."""

    region: str  # 6-digit GB/T 2260 code: household region, else the ID number's first six
    id_number: str | None = None  # normalised; only ever stored as its blind hash
    person_id: UUID | None = None


def person_by_id_number(id_number: str) -> PersonInQuestion:
    """The person of the `{id_number}` path parameter (any valid form, api.md); 422
    `invalid-id-number` saying what is wrong otherwise."""
    if defects := validate(id_number):
        raise problems.InvalidIdNumber(
            [
                {"code": d.code.value, "message": d.message, "message_zh": d.message_zh}
                for d in defects
            ]
        )
    number = normalise(id_number)
    return PersonInQuestion(region=number[:6], id_number=number)


# GB/T 2260: a county-level division (区/县/县级市) has six digits; townships (乡/镇/街道) nine.
COUNTY_DIGITS: Final = 6


def person_in_scope(staff: Staff, region: str) -> bool:
    """Whether `staff` may serve one person of `region` (a 6-digit county code): read their
    record, take their collection.

    Our convention for township scopes: a person's region is at most their county (identity
    knows the household region as AAC010's county-level division, never the township), so no
    person would match a 9- or 12-digit scope and a township clerk would see nobody. A township
    (or community) service centre serves, at its counter, residents of its county: for serving
    one person, a scope longer than six digits stands for its county. Lists and reports of a
    region are not one person's business: they keep the scope as it is (staff.py's `covers`)."""
    return covers(staff.scope[:COUNTY_DIGITS], region)


PersonDependency = Callable[..., PersonInQuestion | Coroutine[Any, Any, PersonInQuestion]]


def require(
    *roles: Role, person: PersonDependency | None = None, purpose: Purpose | None = None
) -> Any:
    """The dependency of an endpoint open to `roles` (and, with `person`, to staff whose scope
    covers that person; `purpose` is then the endpoint's, for the audit row of a refusal).
    Gives the `Staff`; use as `Annotated[Staff, require(...)]`."""
    allowed = frozenset(roles)
    if person is not None and purpose is None:
        raise TypeError("require(..., person=...) needs the endpoint's purpose for the audit")

    async def staff_in_role(staff: CurrentStaff) -> Staff:
        if staff.role not in allowed:
            raise problems.RoleNotAllowed(staff.role.value)
        return staff

    if person is None or purpose is None:
        return Depends(staff_in_role)
    endpoint_purpose: Purpose = purpose

    # (No `from __future__ import annotations` in this module: FastAPI would then resolve these
    # annotations in the module's globals, where the local dependencies are not.)
    async def staff_in_scope(
        staff: Annotated[Staff, Depends(staff_in_role)],
        subject: Annotated[PersonInQuestion, Depends(person)],
        audit: AuditDep,
    ) -> Staff:
        if not person_in_scope(staff, subject.region):
            # A refused attempt is audited too: probing other regions is what auditors look for.
            await audit.record(
                purpose=endpoint_purpose,
                outcome=Outcome.OUT_OF_SCOPE,
                person_id=subject.person_id,
                id_number=subject.id_number,
                person_region=subject.region,
            )
            raise problems.OutOfScope()
        return staff

    return Depends(staff_in_scope)
