"""`/api/v1/survey/samples` and `/api/v1/survey/quality` (抽查复核, Chongqing plan 四(二)): the city
agency draws a random sample of the records its counties approved (survey submissions, change
registrations, self-service corrections, counter collections), stratified per county and per
maker, re-checks each record once, and reads the error rates per county and per maker; forwarded
to survey (sampling.py), which draws, keeps and counts.

Audited with the purpose sampling_check: a sample drawn or read shows masked records of the
region (one row naming it); a re-check is about one record (its person and county). The error
rates name staff, not insured people: not audited.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, StringConstraints

from canbao_contracts.codes import RegistrationItem
from canbao_gateway.audit import Outcome, Purpose
from canbao_gateway.auth import AuditDep, require
from canbao_gateway.staff import Role, Staff
from canbao_gateway.survey import SurveyClient, survey_client
from canbao_gateway.survey_models import ClientBody, Comment, ItemValue
from canbao_gateway.survey_routes import audited, errors, record_subject, region_in_scope

router = APIRouter(prefix="/api/v1/survey", tags=["sampling"])
PURPOSE: Final = Purpose.SAMPLING_CHECK
SurveyDep = Annotated[SurveyClient, Depends(survey_client)]
MAX_PER_STRATUM: Final = 100


# -- Requests -------------------------------------------------------------------------------


class SampleRequest(ClientBody):
    region_code: Annotated[str, StringConstraints(pattern=r"^\d{4}(\d{2})?$")]
    """A city (`5201`) or a county (`520102`) in your region."""
    per_county: int = Field(default=5, ge=0, le=MAX_PER_STRATUM)
    """Records drawn from each county."""
    per_surveyor: int = Field(default=2, ge=0, le=MAX_PER_STRATUM)
    """And from each maker (surveyor, platform member, counter clerk) of each county."""
    approved_from: date
    approved_to: date
    """The period the records were approved in (China Standard Time dates), at most a year."""
    seed: int | None = Field(default=None, ge=0, lt=2**62)
    """Absent: a new random draw. Given (an earlier sample's): the same draw again."""


class CheckRequest(ClientBody):
    result: Literal["correct", "error"]
    wrong_items: Annotated[
        list[RegistrationItem], Field(default_factory=list, max_length=len(RegistrationItem))
    ]
    """With an error: the items found wrong (`phone`…); none with a correct record."""
    comment: Comment = ""
    """What is wrong (an error names wrong items or says it here)."""


# -- Answers --------------------------------------------------------------------------------


class Check(BaseModel):
    result: Literal["correct", "error"]
    wrong_items: list[str]
    comment: str
    checked_by: str
    checked_at: datetime


class CheckRecorded(Check):
    record_id: UUID
    county_code: str
    person_id: UUID | None


class SamplePerson(BaseModel):
    person_id: UUID | None
    name: str | None  # masked: 张*
    id_number: str | None  # masked: 5201**********123X


class SampleRecord(BaseModel):
    record_id: UUID
    kind: Literal["submission", "collection"]
    """A survey, self-service or change submission, or a counter collection."""
    channel: str
    channel_label: str
    county_code: str
    maker: str
    """AAE011: the surveyor, platform member, citizen's session or counter clerk."""
    deciders: list[str]
    """Who decided it (初审, 审定, 复核): none of them may re-check it."""
    approved_at: datetime
    person: SamplePerson
    items: list[ItemValue]
    """Masked."""
    check: Check | None


class Rate(BaseModel):
    checked: int
    errors: int
    error_rate: float | None
    """errors ÷ checked; null when nothing was checked."""


class CountyRate(Rate):
    county_code: str


class MakerRate(CountyRate):
    maker: str


class Rates(BaseModel):
    overall: Rate
    by_county: list[CountyRate]
    by_maker: list[MakerRate]


class Sample(BaseModel):
    sample_id: UUID
    region_code: str
    per_county: int
    per_surveyor: int
    approved_from: date
    approved_to: date
    seed: int
    drawn_by: str
    drawn_at: datetime
    population: int
    """Approved records of the region and period the sample was drawn from."""
    records: list[SampleRecord]
    rates: Rates


class Quality(Rates):
    region: str
    from_: date | None = Field(alias="from")
    to: date | None
    samples: int


# -- Routes ---------------------------------------------------------------------------------

SAMPLE_ERRORS: Final = errors(
    "role-not-allowed; out-of-scope (the region is outside yours)",
    body=True,
    unprocessable="invalid-period",
)


@router.post(
    "/samples",
    status_code=201,
    responses=SAMPLE_ERRORS,
    summary="抽查: draw a random sample of approved records per county and maker",
)
async def post_sample(
    body: SampleRequest,
    staff: Annotated[Staff, require(Role.CITY)],
    survey: SurveyDep,
    audit: AuditDep,
) -> Sample:
    await region_in_scope(staff, body.region_code, audit, PURPOSE)
    response = await audited(
        audit,
        PURPOSE,
        survey.call(
            "POST", "/samples", caller=staff, json=body.model_dump(mode="json"), replayable=False
        ),
    )
    sample = Sample.model_validate(response.json())
    await audit.record(purpose=PURPOSE, outcome=Outcome.OK, person_region=sample.region_code)
    return sample


SampleId = Annotated[UUID, Path()]


@router.get(
    "/samples/{sample_id}",
    responses=errors("role-not-allowed; out-of-scope", {404: "sample-not-found"}),
    summary="抽查: a sample's records, their re-checks and its error rates",
)
async def get_sample(
    sample_id: SampleId,
    staff: Annotated[Staff, require(Role.CITY)],
    survey: SurveyDep,
    audit: AuditDep,
) -> Sample:
    response = await audited(
        audit, PURPOSE, survey.call("GET", f"/samples/{sample_id}", caller=staff)
    )
    sample = Sample.model_validate(response.json())
    await audit.record(purpose=PURPOSE, outcome=Outcome.OK, person_region=sample.region_code)
    return sample


@router.post(
    "/samples/{sample_id}/checks/{record_id}",
    status_code=201,
    responses=errors(
        "role-not-allowed; out-of-scope",
        {
            404: "sample-not-found, record-not-in-sample",
            409: "already-checked (`check`: the record's re-check), maker-checker (you made "
            "or decided the record)",
        },
        body=True,
    ),
    summary="复核: the re-check of one record of a sample (once)",
)
async def post_check(
    sample_id: SampleId,
    record_id: Annotated[UUID, Path()],
    body: CheckRequest,
    staff: Annotated[Staff, require(Role.CITY)],
    survey: SurveyDep,
    audit: AuditDep,
) -> CheckRecorded:
    # Not sent twice: a check that reached survey and is asked again is already-checked.
    response = await audited(
        audit,
        PURPOSE,
        survey.call(
            "POST",
            f"/samples/{sample_id}/checks/{record_id}",
            caller=staff,
            json=body.model_dump(mode="json"),
            replayable=False,
        ),
    )
    answer: dict[str, Any] = response.json()
    await record_subject(
        audit, PURPOSE, {"person_id": answer.get("person_id"), "region_code": answer["county_code"]}
    )
    return CheckRecorded.model_validate(answer)


@router.get(
    "/quality",
    responses=errors("role-not-allowed; out-of-scope", unprocessable="invalid-period"),
    summary="抽查: error rates per county and per maker over every re-check",
)
async def get_quality(
    staff: Annotated[Staff, require(Role.CITY)],
    survey: SurveyDep,
    region: Annotated[
        str | None, Query(pattern=r"^\d{2,6}$", description="default: your region")
    ] = None,
    start: Annotated[date | None, Query(alias="from", description="checked on or after")] = None,
    end: Annotated[date | None, Query(alias="to", description="checked on or before")] = None,
) -> Quality:
    await region_in_scope(staff, region or staff.scope)
    asked = {"region": region, "from": start, "to": end}
    params = {k: str(v) for k, v in asked.items() if v is not None}
    response = await survey.call("GET", "/quality", caller=staff, params=params)
    return Quality.model_validate(response.json())
