"""Survey's internal API for the city's sampling checks (抽查复核, Chongqing plan 四(二):
sampling.py), called by the gateway on behalf of a member of the city agency (role `city`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from canbao_platform.service_tokens import CallerDep, current_caller, require_role
from canbao_survey import sampling
from canbao_survey.problems import InvalidPeriod
from canbao_survey.survey_routes import ContextDep, now

router = APIRouter(
    prefix="/internal/survey", tags=["sampling"], dependencies=[Depends(current_caller)]
)
CITY = "city"


@router.post("/samples", status_code=201, summary="Draw a sample of approved records")
async def post_sample(
    body: sampling.SampleRequest, caller: CallerDep, context: ContextDep
) -> dict[str, Any]:
    require_role(caller, CITY)
    drawn = await sampling.draw(context.database, body, caller, now=now())
    return await sampling.sample_view(context.database, context.sealer, drawn.sample_id, caller)


@router.get("/samples/{sample_id}", summary="A sample, its re-checks and error rates")
async def get_sample(sample_id: UUID, caller: CallerDep, context: ContextDep) -> dict[str, Any]:
    require_role(caller, CITY)
    return await sampling.sample_view(context.database, context.sealer, sample_id, caller)


@router.post(
    "/samples/{sample_id}/checks/{record_id}",
    status_code=201,
    summary="The re-check of one record of a sample (once)",
)
async def post_check(
    sample_id: UUID,
    record_id: UUID,
    body: sampling.CheckRequest,
    caller: CallerDep,
    context: ContextDep,
) -> dict[str, Any]:
    require_role(caller, CITY)
    return await sampling.check(context.database, sample_id, record_id, body, caller, now=now())


@router.get("/quality", summary="Error rates per county and per maker over every re-check")
async def get_quality(
    caller: CallerDep,
    context: ContextDep,
    region: Annotated[str | None, Query(pattern=r"^\d{2,6}$")] = None,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    require_role(caller, CITY)
    if start is not None and end is not None and start > end:
        raise InvalidPeriod()
    return await sampling.quality(context.database, caller, region=region, start=start, end=end)
