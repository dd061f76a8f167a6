"""Survey's internal API (called by the gateway, never by the public): collections.

Routes only parse, call the store and shape the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel

from canbao_platform.sealing import Sealer
from canbao_platform.service import Resources
from canbao_platform.service_tokens import CallerDep, current_caller, require_role
from canbao_survey.collections import CollectionSubmission, CounterCollection, ReviewState
from canbao_survey.problems import CollectionNotFound
from canbao_survey.settings import SurveySettings
from canbao_survey.store import submit_counter_collection
from canbao_survey.views import CollectionView, read_collection

# Every route answers only the gateway's signed calls (service_tokens.py).
router = APIRouter(prefix="/internal", tags=["collections"], dependencies=[Depends(current_caller)])
MAX_IDEMPOTENCY_KEY = 128
COUNTER_ROLE = "counter"  # the gateway's Role.COUNTER: who collects at the counter


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
    summary="A counter collection, approved at once",
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


@router.get("/collections/{collection_id}", summary="A collection's state, values masked")
async def get_collection(collection_id: UUID, request: Request) -> CollectionView:
    resources, sealer = sealer_of(request)
    view = await read_collection(resources.database, sealer, collection_id)
    if view is None:
        raise CollectionNotFound()
    return view
