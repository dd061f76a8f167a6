"""`/api/v1/survey/...` (api.md "Survey"): the household survey (入户调查, 44号 §15-19) on the
public interface, forwarded to survey's internal API (survey.py's `SurveyClient`) on behalf of
the member of staff, whose role and region the gateway checks first; survey checks them again
and applies the rules only it can (the team, the roster, maker-checker), and its problems reach
the client unchanged.

Who (api.md "Who calls"): the platform (基层平台) makes lists, assigns teams and does 初审; the
county (县级经办) does 审定 and keeps the surveyor roster; a surveyor sees and submits its own
team's tasks only (survey enforces "its own").

The audit log (audit.py): every answer that carries personal data, and every change of it, has
its row, with the person when one is concerned (identity's person_id: survey names the task's
person in its answer), else the division; survey's refusals too (not found, out of scope,
rejected). Purpose `survey` for the surveyors' work and the lists, `review` for the reviewers'.
A read's row is written when survey has answered and before the client is; a submission's or a
decision's likewise, since only survey knows whom the task is about (survey's own ledger holds
the maker and every decision, with when). A list and a discovery name their division, or
person, up front: their row is written before survey is asked, as a counter collection's.
Progress counts and the roster hold no one's personal data: not audited.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
from fastapi import APIRouter, Depends, Path, Query
from fastapi import Response as HttpResponse
from fastapi.responses import JSONResponse

from canbao_contracts.codes import CertificateType
from canbao_contracts.id_numbers import validate
from canbao_gateway.audit import AuditTrail, Outcome, Purpose
from canbao_gateway.auth import AuditDep, require
from canbao_gateway.problems import UNAUTHENTICATED, problem_responses
from canbao_gateway.staff import Role, Staff
from canbao_gateway.survey import DOCUMENT_TIMEOUT_S, SurveyClient, survey_client
from canbao_gateway.survey_models import (
    Approval,
    Assigned,
    Decided,
    Discovery,
    DivisionPrefix,
    Ledger,
    ListCreated,
    Progress,
    Review,
    RosterEntry,
    SubmissionAccepted,
    SurveyListRequest,
    Surveyor,
    SurveySubmission,
    TaskDetail,
    TaskPage,
    TaskStateName,
)
from canbao_gateway.survey_models import Assignment as AssignmentRequest
from canbao_platform.problems import Problem

router = APIRouter(prefix="/api/v1/survey", tags=["survey"])
T = TypeVar("T")
SurveyDep = Annotated[SurveyClient, Depends(survey_client)]
TASK_ROLES: Final = (Role.SURVEYOR, Role.PLATFORM, Role.COUNTY)
REVIEWERS: Final = (Role.PLATFORM, Role.COUNTY)
# A submission may carry the signed form's scan (2 MiB): survey seals and stores it.
UPLOAD_TIMEOUT_S: Final = 30.0
PDF, XLSX = "application/pdf", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Survey names the person a form is about in these headers, for this audit log only.
SUBJECT_PERSON, SUBJECT_REGION = "Canbao-Person-Id", "Canbao-Region-Code"
REPLAYED: Final = "Idempotent-Replayed"
# GB/T 2260 codes as far as survey divides: a county, a township (9), a community (12).
Division = Annotated[str, Path(pattern=r"^\d{6,12}$")]
TaskId = Annotated[UUID, Path()]
Responses = dict[int | str, dict[str, Any]]  # a route's `responses=`


class RegionOutOfScope(Problem):
    """The division asked for lies outside the staff member's region (same type as survey's)."""

    def __init__(self, region_code: str) -> None:
        title = "该区划不在您的管辖区域内 (division outside your region)"
        super().__init__(
            403,
            "out-of-scope",
            title,
            f"区划 {region_code} 不在授权范围内",
            region_code=region_code,
        )


def errors(
    forbidden: str,
    more: dict[int, str] | None = None,
    *,
    body: bool = False,
    unprocessable: str = "",
) -> Responses:
    """A route's problems: each answers 401, 403 (`forbidden`: which), 422 (`invalid-request`,
    and `unprocessable`) and 503; a route with a body 400 and 413 too; `more` the others."""
    declared = {
        401: UNAUTHENTICATED,
        403: forbidden,
        422: ", ".join(filter(None, ("invalid-request", unprocessable))),
        503: "survey-unavailable: nothing done; retry",
    }
    if body:
        declared |= {400: "bad-request: a body that cannot be parsed", 413: "body-too-large"}
    return problem_responses(declared | (more or {}))


def purpose_of(staff: Staff) -> Purpose:
    return Purpose.SURVEY if staff.role is Role.SURVEYOR else Purpose.REVIEW


async def region_in_scope(
    staff: Staff, region: str, audit: AuditTrail | None = None, purpose: Purpose = Purpose.SURVEY
) -> None:
    """403 out-of-scope for a division outside the staff member's region (staff.covers: a list
    of a region keeps the scope as it is), audited when the route reads personal data."""
    if not staff.covers(region):
        if audit is not None:
            await audit.record(purpose=purpose, outcome=Outcome.OUT_OF_SCOPE, person_region=region)
        raise RegionOutOfScope(region)


async def audited(audit: AuditTrail, purpose: Purpose, call: Awaitable[T]) -> T:
    """Survey's answer; its refusal recorded before it is passed on (503: nothing was done)."""
    try:
        return await call
    except Problem as problem:
        if problem.status < 500:
            outcome = Outcome.REJECTED
            if problem.slug == "out-of-scope":
                outcome = Outcome.OUT_OF_SCOPE
            elif problem.status == 404:
                outcome = Outcome.NOT_FOUND
            region = problem.extensions.get("region_code")
            known = isinstance(region, str) and region.isdigit() and len(region) <= 12
            await audit.record(
                purpose=purpose, outcome=outcome, person_region=region if known else None
            )
        raise


async def record_subject(audit: AuditTrail, purpose: Purpose, answer: dict[str, Any]) -> None:
    """The row of a task's read or change: the person survey names, and the task's division."""
    person = answer.get("person_id")
    await audit.record(
        purpose=purpose,
        outcome=Outcome.OK,
        person_id=UUID(person) if person else None,
        person_region=answer.get("region_code"),
    )


# -- Lists and tasks ------------------------------------------------------------------------


LIST_ERRORS: Final = errors(
    "role-not-allowed; out-of-scope (the division is outside your region)",
    {
        503: "survey-unavailable, identity-unavailable: no list made; retry (a list made twice "
        "adds only whom the first missed)"
    },
    body=True,
)


@router.post(
    "/lists",
    status_code=201,
    responses=LIST_ERRORS,
    summary="A survey target list (调查对象名单) for a division",
)
async def post_list(
    staff: Annotated[Staff, require(Role.PLATFORM)],
    body: SurveyListRequest,
    survey: SurveyDep,
    audit: AuditDep,
) -> ListCreated:
    await region_in_scope(staff, body.region_code, audit)
    # Survey copies the division's households from identity: recorded before it is asked.
    await audit.record(purpose=Purpose.SURVEY, outcome=Outcome.OK, person_region=body.region_code)
    answer = await audited(audit, Purpose.SURVEY, survey.make_list(body.region_code, caller=staff))
    return ListCreated.model_validate(answer)


TASKS_ERRORS: Final = errors(
    "role-not-allowed; out-of-scope (the region is outside yours)", unprocessable="invalid-cursor"
)


@router.get(
    "/tasks", responses=TASKS_ERRORS, summary="Survey tasks, page by page (a surveyor: its own)"
)
async def get_tasks(
    staff: Annotated[Staff, require(*TASK_ROLES)],
    survey: SurveyDep,
    audit: AuditDep,
    region: Annotated[
        str | None, Query(pattern=r"^\d{2,12}$", description="default: your region")
    ] = None,
    state: TaskStateName | None = None,
    surveyor: Annotated[str | None, Query(max_length=64)] = None,
    channel: Literal["survey", "self", "change"] | None = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TaskPage:
    division, purpose = region or staff.scope, purpose_of(staff)
    await region_in_scope(staff, division, audit, purpose)
    asked = {
        "region": division,
        "state": state,
        "surveyor": surveyor,
        "channel": channel,
        "cursor": cursor,
        "limit": limit,
    }
    params = {name: value for name, value in asked.items() if value is not None}
    response = await audited(
        audit, purpose, survey.call("GET", "/tasks", caller=staff, params=params)
    )
    page = TaskPage.model_validate(response.json())
    # One row per page, naming the division: the page shows masked names and numbers.
    await audit.record(purpose=purpose, outcome=Outcome.OK, person_region=division)
    return page


OUT_OF_SCOPE_TASK: Final = "role-not-allowed; out-of-scope (the task's division is not yours)"
NOT_FOUND_TASK: Final = {404: "task-not-found (or not your team's)"}


@router.get(
    "/tasks/{task_id}",
    responses=errors(OUT_OF_SCOPE_TASK, NOT_FOUND_TASK),
    summary="A task: the prefilled values, household, submission",
)
async def get_task(
    task_id: TaskId,
    staff: Annotated[Staff, require(*TASK_ROLES)],
    survey: SurveyDep,
    audit: AuditDep,
) -> TaskDetail:
    purpose = purpose_of(staff)
    response = await audited(audit, purpose, survey.call("GET", f"/tasks/{task_id}", caller=staff))
    detail = TaskDetail.model_validate(response.json())
    await audit.record(
        purpose=purpose,
        outcome=Outcome.OK,
        person_id=detail.person.person_id,
        person_region=detail.region_code,
    )
    return detail


ASSIGN_ERRORS: Final = errors(
    OUT_OF_SCOPE_TASK,
    {404: "task-not-found", 409: "task-changed (no longer open)"},
    body=True,
    unprocessable="surveyor-not-in-roster (`usernames`)",
)


@router.post(
    "/tasks/{task_id}/assign",
    responses=ASSIGN_ERRORS,
    summary="Assign the task's household to a team",
)
async def post_assign(
    task_id: TaskId,
    body: AssignmentRequest,
    staff: Annotated[Staff, require(Role.PLATFORM)],
    survey: SurveyDep,
) -> Assigned:
    # Who is to visit, not anyone's data: survey records who assigned.
    response = await survey.call(
        "POST", f"/tasks/{task_id}/assign", caller=staff, json=body.model_dump(mode="json")
    )
    return Assigned.model_validate(response.json())


SUBMITTED_AGAIN: Final[Responses] = {
    200: {
        "description": "the same client_id again: the first submission "
        "(header Idempotent-Replayed: true)",
        "model": SubmissionAccepted,
        "headers": {REPLAYED: {"schema": {"type": "string"}}},
    }
}


SUBMIT_ERRORS: Final = errors(
    OUT_OF_SCOPE_TASK,
    NOT_FOUND_TASK
    | {
        409: "task-changed (`task`: its state now; a late submission is kept, "
        "`submission_id`), client-id-reused"
    },
    body=True,
    unprocessable="invalid-items, visited-in-future",
)


@router.post(
    "/tasks/{task_id}/submit",
    status_code=201,
    responses=SUBMITTED_AGAIN | SUBMIT_ERRORS,
    summary="A surveyor's submission (idempotent by client_id)",
)
async def post_submit(
    task_id: TaskId,
    body: SurveySubmission,
    staff: Annotated[Staff, require(Role.SURVEYOR)],
    survey: SurveyDep,
    audit: AuditDep,
    http: HttpResponse,
) -> SubmissionAccepted:
    response = await audited(
        audit,
        Purpose.SURVEY,
        survey.call(
            "POST",
            f"/tasks/{task_id}/submit",
            caller=staff,
            json=body.model_dump(mode="json"),
            time_limit_s=UPLOAD_TIMEOUT_S,
        ),
    )
    return await _submitted(response, audit, http)


DISCOVERY_ERRORS: Final = errors(
    "role-not-allowed; out-of-scope (region_code is outside your region)",
    {409: "client-id-reused"},
    body=True,
    unprocessable="invalid-items, visited-in-future",
)


@router.post(
    "/discoveries",
    status_code=201,
    responses=SUBMITTED_AGAIN | DISCOVERY_ERRORS,
    summary="A person found in the division whom the registry does not know",
)
async def post_discovery(
    body: Discovery,
    staff: Annotated[Staff, require(Role.SURVEYOR)],
    survey: SurveyDep,
    audit: AuditDep,
    http: HttpResponse,
) -> SubmissionAccepted:
    await region_in_scope(staff, body.region_code, audit)
    number = body.items.get("id_number")
    citizen = body.document_type is CertificateType.CITIZEN_ID
    # A new person: named by their number (hashed) and division, before survey is asked.
    named = number if citizen and number and not validate(number) else None
    await audit.record(
        purpose=Purpose.SURVEY, outcome=Outcome.OK, person_region=body.region_code, id_number=named
    )
    response = await audited(
        audit,
        Purpose.SURVEY,
        survey.call(
            "POST",
            "/discoveries",
            caller=staff,
            json=body.model_dump(mode="json"),
            time_limit_s=UPLOAD_TIMEOUT_S,
        ),
    )
    answer = response.json()
    return _accepted(response, answer, http)


async def _submitted(
    response: httpx.Response, audit: AuditTrail, http: HttpResponse
) -> SubmissionAccepted:
    answer = response.json()
    await record_subject(audit, Purpose.SURVEY, answer)
    return _accepted(response, answer, http)


def _accepted(response: httpx.Response, answer: Any, http: HttpResponse) -> SubmissionAccepted:
    if response.headers.get(REPLAYED) == "true":  # the phone synced it twice: one submission
        http.status_code = 200
        http.headers[REPLAYED] = "true"
    return SubmissionAccepted.model_validate(answer)


DECISION_ERRORS: Final = errors(
    OUT_OF_SCOPE_TASK,
    {
        404: "task-not-found",
        409: "task-changed (`task`: its state now, e.g. already decided), "
        "maker-checker (you made or already decided this submission)",
    },
    body=True,
)


@router.post(
    "/tasks/{task_id}/review", responses=DECISION_ERRORS, summary="初审 by the grass-roots platform"
)
async def post_review(
    task_id: TaskId,
    body: Review,
    staff: Annotated[Staff, require(Role.PLATFORM)],
    survey: SurveyDep,
    audit: AuditDep,
) -> Decided:
    return await _decide(task_id, "review", body.model_dump(mode="json"), staff, survey, audit)


@router.post(
    "/tasks/{task_id}/approve", responses=DECISION_ERRORS, summary="审定 by the county agency"
)
async def post_approve(
    task_id: TaskId,
    body: Approval,
    staff: Annotated[Staff, require(Role.COUNTY)],
    survey: SurveyDep,
    audit: AuditDep,
) -> Decided:
    return await _decide(task_id, "approve", body.model_dump(mode="json"), staff, survey, audit)


async def _decide(
    task_id: UUID,
    stage: str,
    body: dict[str, Any],
    staff: Staff,
    survey: SurveyClient,
    audit: AuditTrail,
) -> Decided:
    # Not sent twice: a decision that reached survey and is asked again is task-changed.
    response = await audited(
        audit,
        Purpose.REVIEW,
        survey.call("POST", f"/tasks/{task_id}/{stage}", caller=staff, json=body, replayable=False),
    )
    answer = response.json()
    await record_subject(audit, Purpose.REVIEW, answer)
    return Decided.model_validate(answer)


# -- Printed documents ----------------------------------------------------------------------


BINARY: Final[dict[str, Any]] = {"schema": {"type": "string", "format": "binary"}}
FORM_ANSWERS: Final[Responses] = errors(OUT_OF_SCOPE_TASK, NOT_FOUND_TASK) | {
    200: {
        "content": {PDF: BINARY},
        "description": "the form, values in clear (printed for the visit)",
    }
}


@router.get(
    "/tasks/{task_id}/form.pdf",
    response_class=HttpResponse,
    responses=FORM_ANSWERS,
    summary="The prefilled registration form (全民参保登记表)",
)
async def get_form(
    task_id: TaskId,
    staff: Annotated[Staff, require(*TASK_ROLES)],
    survey: SurveyDep,
    audit: AuditDep,
) -> HttpResponse:
    purpose = purpose_of(staff)
    response = await audited(
        audit,
        purpose,
        survey.call(
            "GET", f"/tasks/{task_id}/form.pdf", caller=staff, time_limit_s=DOCUMENT_TIMEOUT_S
        ),
    )
    subject = {
        "person_id": response.headers.get(SUBJECT_PERSON),
        "region_code": response.headers.get(SUBJECT_REGION),
    }
    await record_subject(audit, purpose, subject)
    return _document(response, PDF)


LEDGER_FORMATS: Final = {"json": "application/json", "pdf": PDF, "xlsx": XLSX}


LEDGER_ANSWERS: Final[Responses] = errors(
    "role-not-allowed; out-of-scope (the division is outside your region)"
) | {
    200: {
        "model": Ledger,
        "description": "json, pdf or xlsx (`format`)",
        "content": {PDF: BINARY, XLSX: BINARY},
    }
}


@router.get(
    "/ledger/{community_code}",
    response_model=None,
    responses=LEDGER_ANSWERS,
    summary="The community ledger (全民参保登记个人信息汇总表)",
)
async def get_ledger(
    community_code: Division,
    staff: Annotated[Staff, require(*REVIEWERS)],
    survey: SurveyDep,
    audit: AuditDep,
    format: Literal["json", "pdf", "xlsx"] = "json",
) -> HttpResponse:
    await region_in_scope(staff, community_code, audit, Purpose.REVIEW)
    response = await audited(
        audit,
        Purpose.REVIEW,
        survey.call(
            "GET",
            f"/ledger/{community_code}",
            caller=staff,
            params={"format": format},
            time_limit_s=DOCUMENT_TIMEOUT_S,
        ),
    )
    # The division's residents, by name: one row for the division.
    await audit.record(purpose=Purpose.REVIEW, outcome=Outcome.OK, person_region=community_code)
    if format == "json":
        return JSONResponse(Ledger.model_validate(response.json()).model_dump(mode="json"))
    return _document(response, LEDGER_FORMATS[format])


def _document(response: httpx.Response, media_type: str) -> HttpResponse:
    """Survey's document as it drew it, with its file name and none of survey's other headers."""
    disposition = response.headers.get("Content-Disposition", "attachment")
    return HttpResponse(
        response.content, media_type=media_type, headers={"Content-Disposition": disposition}
    )


# -- Progress and the surveyor roster -------------------------------------------------------


@router.get(
    "/progress",
    responses=errors("role-not-allowed; out-of-scope"),
    summary="The survey rate per county and the open tasks per team",
)
async def get_progress(
    staff: Annotated[Staff, require(*REVIEWERS)],
    survey: SurveyDep,
    region: Annotated[DivisionPrefix | None, Query(description="default: your region")] = None,
) -> Progress:
    await region_in_scope(staff, region or staff.scope)
    params = {"region": region} if region else {}
    response = await survey.call("GET", "/progress", caller=staff, params=params)
    return Progress.model_validate(response.json())


ROSTER_ERRORS: Final = errors(
    "role-not-allowed; out-of-scope (county_code is outside your region)",
    {409: "certificate-number-taken"},
    body=True,
    unprocessable="username-mismatch (path and body differ)",
)


@router.put(
    "/surveyors/{username}",
    responses=ROSTER_ERRORS,
    summary="Put a surveyor on the county's roster (or update them)",
)
async def put_surveyor(
    username: Annotated[str, Path(min_length=1, max_length=64)],
    body: Surveyor,
    staff: Annotated[Staff, require(Role.COUNTY)],
    survey: SurveyDep,
) -> Surveyor:
    await region_in_scope(staff, body.county_code)
    response = await survey.call(
        "PUT",
        f"/surveyors/{quote(username, safe='')}",
        caller=staff,
        json=body.model_dump(mode="json"),
    )
    return Surveyor.model_validate(response.json())


@router.get(
    "/surveyors",
    responses=errors("role-not-allowed; out-of-scope"),
    summary="The surveyor roster of a division",
)
async def get_surveyors(
    staff: Annotated[Staff, require(*REVIEWERS)],
    survey: SurveyDep,
    region: Annotated[DivisionPrefix | None, Query(description="default: your region")] = None,
) -> list[RosterEntry]:
    await region_in_scope(staff, region or staff.scope)
    params = {"region": region} if region else {}
    response = await survey.call("GET", "/surveyors", caller=staff, params=params)
    return [RosterEntry.model_validate(entry) for entry in response.json()]
