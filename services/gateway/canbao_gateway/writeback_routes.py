"""`GET /api/v1/writebacks` (44号 Art.22, 41号 §4): the agency's list of the changes identity asked
the business systems to write back — pending, `overdue` (pending longer than identity's
configured number of days: the disagreement that lasts), applied, superseded, or refused with
the system's reason.

Who: the county (县级经办) and the reviewers (复核人) who approved the changes; scoped to their
region by the person's region. Masked: identity's list carries only the masked name (what
registry.persons publishes) and never the values. Audited: one row per page, naming the
division, as the survey's lists are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from canbao_gateway.audit import Outcome, Purpose
from canbao_gateway.auth import AuditDep, require
from canbao_gateway.persons import IdentityDep
from canbao_gateway.problems import UNAUTHENTICATED, problem_responses
from canbao_gateway.staff import Role, Staff
from canbao_gateway.survey_routes import RegionOutOfScope, region_in_scope
from canbao_platform.problems import Problem

router = APIRouter(prefix="/api/v1")
WRITEBACK_ROLES: Final = (Role.COUNTY, Role.REVIEWER)
_ERRORS: Final = problem_responses(
    {
        401: UNAUTHENTICATED,
        403: "role-not-allowed; out-of-scope (the region is not yours)",
        422: "invalid-request; invalid-cursor",
        503: "identity-unavailable",
    }
)


class WriteBack(BaseModel):
    """One item identity asked a business system to change, and where it stands."""

    feedback_id: UUID
    item: str = Field(description="RegistrationItem, e.g. phone")
    collection_id: UUID
    person_id: UUID
    masked_name: str | None
    region_code: str | None
    system: Literal["si_core", "medical", "card", "employment"]
    source_table: str
    column: str = Field(description="the system's column, e.g. aae005")
    state: Literal["pending", "applied", "superseded", "refused"]
    overdue: bool = Field(description="pending longer than the agency's limit (30 days)")
    reason: str | None = Field(description="the system's reason for a refusal")
    requested_at: datetime
    settled_at: datetime | None


class WriteBackPage(BaseModel):
    items: list[WriteBack]
    next_cursor: str | None


@router.get(
    "/writebacks",
    responses=_ERRORS,
    summary="Write-backs to the business systems (回写业务系统), page by page",
)
async def get_writebacks(
    staff: Annotated[Staff, require(*WRITEBACK_ROLES)],
    identity: IdentityDep,
    audit: AuditDep,
    state: Literal["pending", "overdue", "applied", "superseded", "refused"] | None = None,
    system: Literal["si_core", "medical", "card", "employment"] | None = None,
    region: Annotated[
        str | None, Query(pattern=r"^\d{2,6}$", description="default: your region")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> WriteBackPage:
    division = region or staff.scope
    await region_in_scope(staff, division, audit, Purpose.REVIEW)
    asked: dict[str, Any] = {
        "state": state,
        "system": system,
        "region": division,
        "cursor": cursor,
        "limit": limit,
    }
    params = {k: v for k, v in asked.items() if v is not None}
    response = await identity._send("GET", "/internal/writebacks", caller=staff, params=params)
    if response.status_code == 422 and "invalid-cursor" in response.text:
        raise InvalidCursor()
    if response.status_code == 403:
        raise RegionOutOfScope(division)
    if response.status_code != 200:
        raise identity.unavailable()
    page = WriteBackPage.model_validate(response.json())
    # One row per page, naming the division: the page shows masked names.
    await audit.record(purpose=Purpose.REVIEW, outcome=Outcome.OK, person_region=division)
    return page


class InvalidCursor(Problem):
    def __init__(self) -> None:
        super().__init__(422, "invalid-cursor", "分页游标无效 (invalid cursor)")
