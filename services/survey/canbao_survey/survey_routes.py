"""Survey's internal API for the household survey (api.md "Survey"), called by the gateway on
behalf of a member of staff (service_tokens.py): the gateway checks roles and audits; survey
checks them again, and applies the rules only it can (the team, the roster, maker-checker).

Routes only parse, call lists.py / review.py / survey_views.py and shape the answer."""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from canbao_platform.service import Resources
from canbao_platform.service_tokens import CallerDep, current_caller, require_role
from canbao_survey import documents, lists, review, roster, survey_views
from canbao_survey.problems import InvalidCursor, OutOfScope, UsernameMismatch
from canbao_survey.settings import SurveySettings
from canbao_survey.tasks import (
    ChangeRegistration,
    DecisionRequest,
    Discovery,
    SelfCorrection,
    Stage,
    SurveySubmission,
    TaskState,
)

router = APIRouter(
    prefix="/internal/survey", tags=["survey"], dependencies=[Depends(current_caller)]
)
SURVEYOR, PLATFORM, COUNTY = "surveyor", "platform", "county"
REVIEWERS: Final = (PLATFORM, COUNTY)
PDF, XLSX = "application/pdf", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SUBJECT_PERSON, SUBJECT_REGION = "Canbao-Person-Id", "Canbao-Region-Code"


class Context:
    def __init__(self, request: Request) -> None:
        resources: Resources = request.app.state.resources
        settings = resources.settings
        assert isinstance(settings, SurveySettings)
        self.settings, self.database, self.sealer = settings, resources.database, settings.sealer()
        self.identity_transport = getattr(request.app.state, "identity_transport", None)


ContextDep = Annotated[Context, Depends(Context)]


def now() -> datetime:
    return datetime.now(UTC)


class ListRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region_code: Annotated[str, Field(pattern=r"^\d{2,6}$")]
    """A county, or a prefix of one (a city, the province)."""


class ListCreated(BaseModel):
    list_id: UUID
    region_code: str
    tasks: int
    households: int
    residents: int


@router.post("/lists", status_code=201, summary="A survey target list for a division")
async def post_list(
    body: ListRequest,
    caller: CallerDep,
    context: ContextDep,
    identity_token: Annotated[str, Header(alias="Canbao-Identity-Token", max_length=4096)],
) -> ListCreated:
    require_role(caller, PLATFORM)
    if not review.covers(caller, body.region_code):
        raise OutOfScope(body.region_code)
    stream = lists.identity_subjects(
        context.settings.identity_url,
        identity_token,
        {"region_code": body.region_code},
        transport=context.identity_transport,
    )
    made = await lists.make_list(
        context.database,
        context.sealer,
        region_code=body.region_code,
        created_by=caller.username,
        now=now(),
        subjects_stream=stream,
    )
    return ListCreated(
        list_id=made.list_id,
        region_code=made.region_code,
        tasks=made.tasks,
        households=made.households,
        residents=made.residents,
    )


@router.get("/tasks", summary="Tasks page by page; a surveyor sees only its own")
async def get_tasks(
    caller: CallerDep,
    context: ContextDep,
    region: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None,
    state: TaskState | None = None,
    surveyor: Annotated[str | None, Query(max_length=64)] = None,
    channel: Literal["survey", "self", "change"] | None = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = survey_views.PAGE,
) -> dict[str, Any]:
    require_role(caller, SURVEYOR, *REVIEWERS)
    try:
        return await survey_views.list_tasks(
            context.database,
            context.sealer,
            caller,
            region=region,
            state=state.value if state else None,
            surveyor=surveyor,
            channel=channel,
            cursor=cursor,
            limit=limit,
        )
    except ValueError:
        raise InvalidCursor() from None


@router.get("/tasks/{task_id}", summary="A task with its household and current submission")
async def get_task(task_id: UUID, caller: CallerDep, context: ContextDep) -> dict[str, Any]:
    require_role(caller, SURVEYOR, *REVIEWERS)
    return await survey_views.task_detail(context.database, context.sealer, task_id, caller)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1, max_length=3)
    ]
    """1-3 surveyors of the county's roster (44号 §16: teams of 2-3)."""


@router.post("/tasks/{task_id}/assign", summary="Assign the task's household to a team")
async def post_assign(
    task_id: UUID, body: Assignment, caller: CallerDep, context: ContextDep
) -> dict[str, Any]:
    require_role(caller, PLATFORM)
    team = list(dict.fromkeys(body.team))
    assigned = await review.assign(context.database, task_id, team, caller, now=now())
    return {"task_id": str(task_id), "team": team, "assigned": [str(t) for t in assigned]}


@router.post(
    "/tasks/{task_id}/submit",
    status_code=201,
    summary="A surveyor's submission (idempotent by client_id)",
)
async def post_submit(
    task_id: UUID,
    body: SurveySubmission,
    caller: CallerDep,
    context: ContextDep,
    response: Response,
) -> dict[str, Any]:
    require_role(caller, SURVEYOR)
    submitted = await review.submit(
        context.database,
        context.sealer,
        task_id,
        body,
        caller,
        now=now(),
        keep_years=context.settings.signed_form_retention_years,
    )
    if submitted.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return _submitted(submitted)


@router.post(
    "/discoveries",
    status_code=201,
    summary="A person found in the division whom the registry does not know",
)
async def post_discovery(
    body: Discovery, caller: CallerDep, context: ContextDep, response: Response
) -> dict[str, Any]:
    require_role(caller, SURVEYOR)
    submitted = await review.discover(
        context.database,
        context.sealer,
        body,
        caller,
        now=now(),
        keep_years=context.settings.signed_form_retention_years,
    )
    if submitted.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return _submitted(submitted)


@router.post(
    "/changes",
    status_code=201,
    summary="A change registration (变更登记) recorded at the grass-roots platform",
)
async def post_change(
    body: ChangeRegistration, caller: CallerDep, context: ContextDep, response: Response
) -> dict[str, Any]:
    require_role(caller, PLATFORM)
    submitted = await review.record_change(
        context.database, context.sealer, body, caller, now=now()
    )
    if submitted.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return _submitted(submitted)


def _submitted(submitted: review.Submitted) -> dict[str, Any]:
    """The answer to a submission: the task's state, and whom it is about (person_id, the
    division; for the gateway's audit log)."""
    return {
        "task_id": str(submitted.task_id),
        "submission_id": str(submitted.submission_id),
        "state": submitted.state.value,
        "person_id": str(submitted.person_id) if submitted.person_id else None,
        "region_code": submitted.region_code,
    }


def _decided(task_id: UUID, decided: review.Decided) -> dict[str, Any]:
    return {
        "task_id": str(task_id),
        "state": decided.state.value,
        "person_id": str(decided.person_id) if decided.person_id else None,
        "region_code": decided.region_code,
    }


@router.post("/tasks/{task_id}/review", summary="初审 by the grass-roots platform")
async def post_review(
    task_id: UUID, body: DecisionRequest, caller: CallerDep, context: ContextDep
) -> dict[str, Any]:
    require_role(caller, PLATFORM)
    if body.decision == "approve":
        body = DecisionRequest(decision="pass", comment=body.comment)
    decided = await review.decide(
        context.database, context.sealer, task_id, Stage.FIRST_REVIEW, body, caller, now=now()
    )
    return _decided(task_id, decided)


@router.post("/tasks/{task_id}/approve", summary="审定 by the county agency")
async def post_approve(
    task_id: UUID, body: DecisionRequest, caller: CallerDep, context: ContextDep
) -> dict[str, Any]:
    require_role(caller, COUNTY)
    if body.decision == "pass":
        body = DecisionRequest(decision="approve", comment=body.comment)
    decided = await review.decide(
        context.database, context.sealer, task_id, Stage.APPROVAL, body, caller, now=now()
    )
    return _decided(task_id, decided)


@router.get(
    "/tasks/{task_id}/form.pdf",
    summary="The prefilled registration form (全民参保登记表)",
    response_class=Response,
)
async def get_form(task_id: UUID, caller: CallerDep, context: ContextDep) -> Response:
    require_role(caller, SURVEYOR, *REVIEWERS)
    data = await survey_views.form_data(context.database, context.sealer, task_id, caller)
    form = documents.FormData(
        task_id=data["task_id"],
        division=data["region_code"],
        household_number=data["household_number"],
        items=data["items"],
        statuses=data["statuses"],
        survey_reasons=data["survey_reasons"],
        missing=data["missing"],
        inaccurate=data["inaccurate"],
        printed_at=now(),
    )
    # Drawing takes CPU (a ledger of thousands of rows, seconds): off the event loop.
    pdf = await anyio.to_thread.run_sync(
        functools.partial(
            documents.registration_form_pdf, form, font_path=context.settings.cjk_font
        )
    )
    # Whom the form is about, for the gateway's audit log (it does not pass these headers on).
    subject = {SUBJECT_REGION: data["region_code"]}
    if data["person_id"] is not None:
        subject[SUBJECT_PERSON] = data["person_id"]
    return Response(
        pdf,
        media_type=PDF,
        headers={"Content-Disposition": f'attachment; filename="form-{task_id}.pdf"', **subject},
    )


@router.get("/ledger/{division}", summary="The community ledger (全民参保登记个人信息汇总表)")
async def get_ledger(
    division: Annotated[str, Path(pattern=r"^\d{6,12}$")],
    caller: CallerDep,
    context: ContextDep,
    format: Literal["json", "pdf", "xlsx"] = "json",
) -> Response:
    require_role(caller, *REVIEWERS)
    if not review.covers(caller, division):
        raise OutOfScope(division)
    rows = []
    async for row, prefill in survey_views.ledger_rows(context.database, context.sealer, division):
        state = (
            TaskState(row["state"]).label
            if row["state"]
            else ("需调查" if row["needs_survey"] else "无需调查")
        )
        rows.append(
            documents.LedgerRow(
                household_number=prefill.get("household_number"),
                name=prefill.get("name") or row["masked_name"] or "",
                id_number=row["masked_id_number"] or "",
                gender=prefill.get("gender"),
                statuses=dict(row["statuses"] or {}),
                survey_state=state,
                outcome=survey_views.outcome_text(row["outcome"], row["verified_reason"]),
                surveyors="、".join(row["team"]) if row["team"] else None,
                approved_at=row["approved_at"].date() if row["approved_at"] else None,
            )
        )
    ledger = documents.Ledger(
        division_code=division, division_name="", generated_at=now(), rows=tuple(rows)
    )
    filename = f"ledger-{division}"
    if format == "pdf":
        return Response(
            await anyio.to_thread.run_sync(
                functools.partial(documents.ledger_pdf, ledger, font_path=context.settings.cjk_font)
            ),
            media_type=PDF,
            headers={"Content-Disposition": f'attachment; filename="{filename}.pdf"'},
        )
    if format == "xlsx":
        return Response(
            await anyio.to_thread.run_sync(documents.ledger_xlsx, ledger),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{filename}.xlsx"'},
        )
    summary = documents.ledger_summary(ledger)
    return JSONResponse(
        {
            "division": division,
            "generated_at": ledger.generated_at.isoformat(),
            "rows": [_ledger_json(r) for r in rows],
            "summary": {**dataclasses.asdict(summary), "survey_rate": summary.survey_rate},
        }
    )


def _ledger_json(row: documents.LedgerRow) -> dict[str, Any]:
    return {
        "household_number": row.household_number,
        "name": row.name,
        "id_number": row.id_number,
        "gender": row.gender,
        "statuses": row.statuses,
        "survey_state": row.survey_state,
        "outcome": row.outcome,
        "surveyors": row.surveyors,
        "approved_at": row.approved_at.isoformat() if row.approved_at else None,
    }


@router.get("/progress", summary="Survey rate per division and open tasks per team")
async def get_progress(
    caller: CallerDep,
    context: ContextDep,
    region: Annotated[str | None, Query(pattern=r"^\d{2,6}$")] = None,
) -> dict[str, Any]:
    require_role(caller, *REVIEWERS)
    region = region or caller.scope
    if not review.covers(caller, region):
        raise OutOfScope(region)
    return await survey_views.progress(context.database, region)


@router.put("/surveyors/{username}", summary="Add or update a surveyor on the county's roster")
async def put_surveyor(
    username: str, body: roster.Surveyor, caller: CallerDep, context: ContextDep
) -> dict[str, Any]:
    require_role(caller, COUNTY)
    if body.username != username:
        raise UsernameMismatch()
    if not review.covers(caller, body.county_code):
        raise OutOfScope(body.county_code)
    await roster.put(context.database, body, by=caller.username, now=now())
    return body.model_dump()


@router.get("/surveyors", summary="The surveyor roster of a division")
async def get_surveyors(
    caller: CallerDep,
    context: ContextDep,
    region: Annotated[str | None, Query(pattern=r"^\d{2,6}$")] = None,
) -> list[dict[str, Any]]:
    require_role(caller, *REVIEWERS)
    region = region or caller.scope
    if not review.covers(caller, region):
        raise OutOfScope(region)
    return await roster.of_county(context.database, region)


SELF = "self"  # the gateway's self-service session: a citizen on a kiosk or the app


@router.post(
    "/corrections",
    status_code=201,
    summary="A citizen's own correction, pending the agency's review",
)
async def post_correction(
    body: SelfCorrection, caller: CallerDep, context: ContextDep, response: Response
) -> dict[str, Any]:
    require_role(caller, SELF)
    submitted = await review.self_correction(
        context.database, context.sealer, body, caller, now=now()
    )
    if submitted.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return {
        "task_id": str(submitted.task_id),
        "submission_id": str(submitted.submission_id),
        "state": submitted.state.value,
        "state_label": submitted.state.label,
    }


@router.get("/corrections", summary="A person's own corrections and where they stand")
async def get_corrections(
    person_id: UUID, caller: CallerDep, context: ContextDep
) -> list[dict[str, Any]]:
    require_role(caller, SELF)
    return await survey_views.corrections_of(context.database, person_id)
