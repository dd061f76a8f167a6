"""Survey's internal API (called by the gateway, never by the public): collections.

Routes only parse, call the store and shape the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel

from canbao_platform.sealing import Sealer
from canbao_platform.service import Resources
from canbao_survey.collections import CounterCollection, ReviewState
from canbao_survey.problems import CollectionNotFound
from canbao_survey.settings import SurveySettings
from canbao_survey.store import submit_counter_collection
from canbao_survey.views import CollectionView, read_collection

router = APIRouter(prefix="/internal", tags=["collections"])
MAX_IDEMPOTENCY_KEY = 128


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
        409: {"description": "Idempotency-Key reused with other data"},
        422: {"description": "invalid-items: each bad field named"},
    },
)
async def post_collection(
    collection: CounterCollection,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_IDEMPOTENCY_KEY)] = None,
) -> CollectionCreated:
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
