"""Survey's internal API (called by the gateway, never by the public): counter collections and
their 复核 (recheck.py), the reviewers' queue, and a person's values waiting for 复核 (the popup).

Routes only parse, call the store and shape the answer. Roles: a counter clerk submits and reads
back their own collections; a reviewer (复核人) reads and decides those of their region."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel

from canbao_platform.sealing import Sealer
from canbao_platform.service import Resources
from canbao_platform.service_tokens import CallerDep, CallerNotAllowed, current_caller, require_role
from canbao_survey import recheck as rechecks
from canbao_survey.collections import (
    BatchRequest,
    CollectionSubmission,
    CounterCollection,
    RecheckRequest,
    ReviewState,
)
from canbao_survey.problems import CollectionNotFound, InvalidCursor, OutOfScope
from canbao_survey.review import covers
from canbao_survey.settings import SurveySettings
from canbao_survey.store import submit_counter_collection
from canbao_survey.views import PAGE, CollectionView, list_collections, pending_of, read_collection

# Every route answers only the gateway's signed calls (service_tokens.py).
router = APIRouter(prefix="/internal", tags=["collections"], dependencies=[Depends(current_caller)])
MAX_IDEMPOTENCY_KEY = 128
COUNTER_ROLE = "counter"  # the gateway's Role.COUNTER: who collects at the counter
REVIEWER_ROLE = "reviewer"  # the gateway's Role.REVIEWER: 复核人 (AAE014)
# Who reads a person's waiting values: the popup's clerk, and the staff of one person's record.
PENDING_ROLES: Final = (COUNTER_ROLE, REVIEWER_ROLE, "platform", "county")


class CollectionCreated(BaseModel):
    collection_id: UUID
    state: ReviewState


def sealer_of(request: Request) -> tuple[Resources, Sealer]:
    resources: Resources = request.app.state.resources
    settings = resources.settings
    assert isinstance(settings, SurveySettings)
    return resources, settings.sealer()


@router.post(
    "/collections",
    status_code=201,
    summary="A counter collection, kept submitted for its 复核",
    responses={
        401: {"description": "service-token-invalid: not a call signed by the gateway"},
        403: {"description": "caller-not-allowed: only a counter clerk submits"},
        409: {"description": "Idempotency-Key reused with other data"},
        422: {"description": "invalid-items: each bad field named"},
    },
)
async def post_collection(
    submission: CollectionSubmission,
    caller: CallerDep,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_IDEMPOTENCY_KEY)] = None,
) -> CollectionCreated:
    require_role(caller, COUNTER_ROLE)
    collection = CounterCollection(**dict(submission), handler=caller.username)
    resources, sealer = sealer_of(request)
    submitted = await submit_counter_collection(
        resources.database,
        sealer,
        collection,
        idempotency_key=idempotency_key,
        now=datetime.now(UTC),
    )
    if submitted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return CollectionCreated(collection_id=submitted.collection_id, state=submitted.state)


def now() -> datetime:
    return datetime.now(UTC)


@router.get("/collections", summary="Counter collections of a region (the 复核 queue), masked")
async def get_collections(
    caller: CallerDep,
    request: Request,
    state: ReviewState | None = ReviewState.SUBMITTED,
    handler: Annotated[str | None, Query(max_length=64)] = None,
    date: date | None = None,
    region: Annotated[str | None, Query(pattern=r"^\d{2,12}$")] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = PAGE,
) -> dict[str, Any]:
    require_role(caller, REVIEWER_ROLE)
    region = region or caller.scope
    if not covers(caller, region):
        raise OutOfScope(region)
    resources, sealer = sealer_of(request)
    try:
        return await list_collections(
            resources.database,
            sealer,
            region=region,
            state=state,
            handler=handler,
            day=date,
            cursor=cursor,
            limit=limit,
        )
    except ValueError:
        raise InvalidCursor() from None


@router.get("/collections/{collection_id}", summary="A collection's state, values masked")
async def get_collection(
    collection_id: UUID, caller: CallerDep, request: Request
) -> CollectionView:
    """For a reviewer of its region, and for the clerk who made it."""
    require_role(caller, REVIEWER_ROLE, COUNTER_ROLE)
    resources, sealer = sealer_of(request)
    view = await read_collection(resources.database, sealer, collection_id)
    if view is None:
        raise CollectionNotFound()
    if caller.role == COUNTER_ROLE and view.handler != caller.username:
        raise CallerNotAllowed(caller.role)
    if caller.role == REVIEWER_ROLE:
        rechecks.in_scope(caller, view.region_code)
    return view


@router.post(
    "/collections/review-batch",
    summary="A day's batch of 复核: each collection passed on its own, or refused with why",
)
async def post_review_batch(
    body: BatchRequest, caller: CallerDep, request: Request
) -> dict[str, Any]:
    require_role(caller, REVIEWER_ROLE)
    resources, sealer = sealer_of(request)
    results = await rechecks.recheck_batch(resources.database, sealer, body, caller, now=now())
    return {
        "results": results,
        "passed": sum(r["result"] == "passed" for r in results),
        "refused": sum(r["result"] == "refused" for r in results),
    }


@router.post("/collections/{collection_id}/review", summary="复核 of one counter collection")
async def post_review(
    collection_id: UUID,
    body: RecheckRequest,
    caller: CallerDep,
    request: Request,
    response: Response,
) -> dict[str, Any]:
    require_role(caller, REVIEWER_ROLE)
    resources, sealer = sealer_of(request)
    done = await rechecks.recheck(
        resources.database, sealer, collection_id, body, caller, now=now()
    )
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return done.as_json()


@router.get(
    "/persons/{person_id}/collections", summary="A person's values waiting for 复核, masked"
)
async def get_pending(person_id: UUID, caller: CallerDep, request: Request) -> dict[str, Any]:
    """The gateway checked the caller's scope against identity's region for the person; survey
    checks it again when it knows the person's region (serving one person, a township scope
    stands for its county: the gateway's auth.person_in_scope)."""
    require_role(caller, *PENDING_ROLES)
    resources, sealer = sealer_of(request)
    pending = await pending_of(resources.database, sealer, person_id)
    region, county = pending["region_code"], caller.scope[:6]
    if region is not None and not (len(region) >= len(county) and region.startswith(county)):
        raise OutOfScope(region)
    return pending
