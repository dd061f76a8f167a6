"""The survey service: every collection (counter, kiosk, mobile, household survey) and its review;
survey lists, forms and community ledgers. So far: counter collections, approved on submission and
published on registry.collections through the outbox (routes.py, store.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from canbao_platform.messaging import OutboxRelay, Producer
from canbao_platform.service import Component, Resources, ServiceDefinition, create_app
from canbao_platform.settings import ServiceSettings
from canbao_survey.routes import router
from canbao_survey.settings import SurveySettings

SERVICE_NAME = "survey"


def components(resources: Resources) -> list[Component]:
    settings = resources.settings
    producer = Producer(
        settings.kafka_bootstrap_servers, client_id=SERVICE_NAME, **settings.kafka_client_options()
    )
    return [
        producer,  # a component itself: started first, stopped last
        OutboxRelay(resources.database, producer, name="survey.outbox", poll_interval_s=0.5),
    ]


SERVICE = ServiceDefinition(
    name=SERVICE_NAME,
    settings=SurveySettings,
    migrations=Path(__file__).parent / "migrations",
    routers=(router,),
    components=components,
    description=__doc__ or "",
)


def create(settings: ServiceSettings | None = None) -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_survey.app:create`)."""
    return create_app(SERVICE, settings)
