"""复核 of counter collections (41号 表4: the reviewer AAE014 and review time AAE015 are required on
every record a clerk handles; 44号 Art.13: the registry is updated "录入校核后"), on the public
interface, forwarded to survey's internal API on behalf of the member of staff.

A counter collection is saved `submitted` (collections.py) and waits here: a reviewer (复核人,
`Role.REVIEWER`) of the person's region reads the queue of their region, masked, and passes or
returns each collection; survey refuses the clerk who collected it (409 `maker-checker`), a
collection already decided (409 `collection-changed`, with where it stands) and a person outside
the reviewer's region (403 `out-of-scope`), and publishes a passed one on registry.collections.

A day's batch (our convention, grounded in 41号 表4 and 44号 Art.13; survey's collections.py):
the reviewer sends the ids they saw in the queue; only collections that bring a registered
person's contact details up to date (phone, residence address, employment status, employer's
name) are passed so, each on its own ledger row; every other collection (an identity item —
name, number, gender, birth date —, a household-register item, the personal identity, a new
registration, a move, a verified status) is refused from the batch with why
(`needs-individual-review`) and waits for a 复核 of its own. The batch never fails as a whole:
the answer says, per collection, passed or refused.

The audit log (audit.py), purpose `review` (the clerk reading their own: `counter_service`): a
page of the queue has one row naming the division; a collection read or decided, its row naming
the person (identity's person_id) and region, written when survey has answered and before the
client is; a batch, one row per collection; survey's refusals too.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi import Response as HttpResponse
from pydantic import BaseModel, Field

from canbao_gateway.audit import AuditTrail, Outcome, Purpose
from canbao_gateway.auth import AuditDep, require
from canbao_gateway.staff import Role, Staff
from canbao_gateway.survey_models import ClientBody, Comment, ItemValue
from canbao_gateway.survey_routes import (
    REPLAYED,
    Responses,
    SurveyDep,
    audited,
    errors,
    record_subject,
    region_in_scope,
)

router = APIRouter(prefix="/api/v1/counter", tags=["counter"])
COLLECTIONS: Final = "/collections"
INTERNAL: Final = "/internal"  # survey's collections API (not under /internal/survey)
MAX_BATCH: Final = 200  # survey's too
CollectionState = Literal["submitted", "approved", "rejected"]


# -- Bodies and answers ---------------------------------------------------------------------------


class RecheckRequest(ClientBody):
    decision: Literal["pass", "reject"]
    comment: Comment = ""
    """Required with `reject`: what the clerk is to put right."""


class BatchRequest(ClientBody):
    collection_ids: Annotated[list[UUID], Field(min_length=1, max_length=MAX_BATCH)]
    """The collections the reviewer saw in the queue (a day's batch); each passed on its own."""
    comment: Comment = ""


class CollectionView(BaseModel):
    """A counter collection as a reviewer reads it: values masked."""

    collection_id: UUID
    channel: str
    person_id: UUID | None
    """Identity's person; null for a new registration."""
    document_type: str
    items: list[ItemValue]
    """The collected values, masked (`138****5678`, `王*`)."""
    resolved_reasons: list[str]
    verified_statuses: list[dict[str, Any]]
    state: CollectionState
    handler: str
    """AAE011: the clerk who collected."""
    handled_at: datetime
    """AAE036."""
    reviewer: str | None
    """AAE014: who passed or returned it."""
    reviewed_at: datetime | None
    """AAE015."""
    region_code: str | None
    """The person's region: whose reviewers see it."""
    masked_name: str | None
    risk: Literal["contact", "identity"]
    """`contact`: may be passed in a day's batch; `identity`: needs a 复核 of its own."""
    needs_individual_review: list[str]
    """Why not in a batch: the items beyond contact details, `new_registration`,
    `region_code` (a move), `verified_statuses`, `resolved_reasons`."""
    comment: str | None
    """The reviewer's comment (why it was returned)."""


class CollectionPage(BaseModel):
    items: list[CollectionView]
    next: str | None
    """The cursor of the next page (null: the last)."""


class Rechecked(BaseModel):
    collection_id: UUID
    state: CollectionState
    state_label: str
    person_id: UUID | None
    region_code: str | None
    replayed: bool
    """The same decision by the same reviewer, recorded before (also the header
    Idempotent-Replayed: true): nothing was done twice."""


class BatchResult(BaseModel):
    collection_id: UUID
    result: Literal["passed", "refused"]
    state: CollectionState | None = None
    replayed: bool = False
    problem: dict[str, Any] | None = None
    """Why refused: the problem+json a 复核 of this collection alone would have had
    (needs-individual-review with `items`, maker-checker, collection-changed, out-of-scope,
    collection-not-found)."""


class BatchAnswer(BaseModel):
    results: list[BatchResult]
    passed: int
    refused: int


# -- Routes ---------------------------------------------------------------------------------------

LIST_ERRORS: Final = errors(
    "role-not-allowed; out-of-scope (the region is outside yours)", unprocessable="invalid-cursor"
)


@router.get(
    COLLECTIONS,
    responses=LIST_ERRORS,
    summary="Counter collections waiting for 复核 (a region's queue, masked)",
)
async def get_collections(
    staff: Annotated[Staff, require(Role.REVIEWER)],
    survey: SurveyDep,
    audit: AuditDep,
    state: CollectionState = "submitted",
    handler: Annotated[str | None, Query(max_length=64, description="the clerk (AAE011)")] = None,
    date: Annotated[date | None, Query(description="handled on this day (China time)")] = None,
    region: Annotated[
        str | None, Query(pattern=r"^\d{2,12}$", description="default: your region")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CollectionPage:
    division = region or staff.scope
    await region_in_scope(staff, division, audit, Purpose.REVIEW)
    asked = {
        "state": state,
        "handler": handler,
        "date": date.isoformat() if date else None,
        "region": division,
        "cursor": cursor,
        "limit": limit,
    }
    params = {name: value for name, value in asked.items() if value is not None}
    response = await audited(
        audit,
        Purpose.REVIEW,
        survey.call("GET", COLLECTIONS, caller=staff, params=params, prefix=INTERNAL),
    )
    page = CollectionPage.model_validate(response.json())
    # One row per page, naming the division: the page shows masked names and values.
    await audit.record(purpose=Purpose.REVIEW, outcome=Outcome.OK, person_region=division)
    return page


ONE_ERRORS: Final = errors(
    "role-not-allowed (a clerk reads only their own); out-of-scope",
    {404: "collection-not-found"},
)


@router.get(
    COLLECTIONS + "/{collection_id}",
    responses=ONE_ERRORS,
    summary="One counter collection (a reviewer of its region, or the clerk who made it)",
)
async def get_collection(
    collection_id: UUID,
    staff: Annotated[Staff, require(Role.REVIEWER, Role.COUNTER)],
    survey: SurveyDep,
    audit: AuditDep,
) -> CollectionView:
    purpose = Purpose.REVIEW if staff.role is Role.REVIEWER else Purpose.COUNTER_SERVICE
    response = await audited(
        audit,
        purpose,
        survey.call("GET", f"{COLLECTIONS}/{collection_id}", caller=staff, prefix=INTERNAL),
    )
    answer = response.json()
    await record_subject(audit, purpose, answer)
    return CollectionView.model_validate(answer)


DECISION_ERRORS: Final = errors(
    "role-not-allowed; out-of-scope (the person is outside your region)",
    {
        404: "collection-not-found",
        409: "maker-checker (you collected it), collection-changed (`collection`: where it "
        "stands now, e.g. already decided)",
    },
    body=True,
)
REPLAYED_ANSWER: Final[Responses] = {
    200: {
        "description": "decided; the same decision again answers as recorded "
        "(header Idempotent-Replayed: true)",
        "headers": {REPLAYED: {"schema": {"type": "string"}}},
    }
}


@router.post(
    COLLECTIONS + "/{collection_id}/review",
    responses=REPLAYED_ANSWER | DECISION_ERRORS,
    summary="复核: pass (published) or return (rejected, with a comment) a counter collection",
)
async def post_review(
    collection_id: UUID,
    body: RecheckRequest,
    staff: Annotated[Staff, require(Role.REVIEWER)],
    survey: SurveyDep,
    audit: AuditDep,
    http: HttpResponse,
) -> Rechecked:
    response = await audited(
        audit,
        Purpose.REVIEW,
        survey.call(
            "POST",
            f"{COLLECTIONS}/{collection_id}/review",
            caller=staff,
            prefix=INTERNAL,
            json=body.model_dump(mode="json"),
        ),
    )
    answer = response.json()
    await record_subject(audit, Purpose.REVIEW, answer)
    if response.headers.get(REPLAYED) == "true":
        http.headers[REPLAYED] = "true"
    return Rechecked.model_validate(answer)


BATCH_ERRORS: Final = errors("role-not-allowed", body=True)


@router.post(
    COLLECTIONS + "/review-batch",
    responses=BATCH_ERRORS,
    summary="A day's batch of 复核: contact details passed, each on its own; the rest refused",
)
async def post_review_batch(
    body: BatchRequest,
    staff: Annotated[Staff, require(Role.REVIEWER)],
    survey: SurveyDep,
    audit: AuditDep,
) -> BatchAnswer:
    response = await survey.call(
        "POST",
        COLLECTIONS + "/review-batch",
        caller=staff,
        prefix=INTERNAL,
        json=body.model_dump(mode="json"),
    )
    answer = response.json()
    for result in answer["results"]:
        await _record_result(audit, result)
    return BatchAnswer.model_validate(answer)


async def _record_result(audit: AuditTrail, result: dict[str, Any]) -> None:
    """A batch's row per collection: a pass names the person; a refusal its outcome."""
    if result["result"] == "passed":
        await record_subject(audit, Purpose.REVIEW, result)
        return
    slug = str(result["problem"]["type"]).removeprefix("/problems/")
    outcome = {"out-of-scope": Outcome.OUT_OF_SCOPE, "collection-not-found": Outcome.NOT_FOUND}
    region = result.get("region_code")
    known = isinstance(region, str) and region.isdigit() and len(region) <= 12
    await audit.record(
        purpose=Purpose.REVIEW,
        outcome=outcome.get(slug, Outcome.REJECTED),
        person_region=region if known else None,
    )
