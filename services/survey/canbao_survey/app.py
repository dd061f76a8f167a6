"""The survey service: every collection (counter, kiosk, mobile, household survey) and its review;
survey lists, forms and community ledgers (domain.md §2.2-2.4, api.md "Survey").

Counter collections are kept submitted until a reviewer (复核人, never the clerk) passes them, and
only then published on registry.collections through the outbox (routes.py, store.py, recheck.py).
The household survey (survey_routes.py) keeps its own copy of who needs a survey from
registry.persons and registry.statuses (subjects.py), makes lists from it (lists.py), and reviews
what teams submit, 初审 then 审定 (review.py), publishing the approved."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from canbao_contracts.topics import PERSONS, STATUSES
from canbao_platform.messaging import ConsumerRunner, OutboxRelay, Producer, RunnerConfig
from canbao_platform.service import Component, Resources, ServiceDefinition, create_app
from canbao_platform.settings import ServiceSettings
from canbao_survey.metrics import ProgressMetrics
from canbao_survey.person_steps import router as steps_router
from canbao_survey.routes import router
from canbao_survey.sampling_routes import router as sampling_router
from canbao_survey.settings import SurveySettings
from canbao_survey.subjects import HANDLER
from canbao_survey.survey_routes import router as survey_router

SERVICE_NAME = "survey"


TOPICS = (PERSONS.name, STATUSES.name)
DEFAULT_CONFIG = RunnerConfig()


def components(
    resources: Resources,
    *,
    topics: tuple[str, ...] = TOPICS,
    config: RunnerConfig = DEFAULT_CONFIG,
    progress_interval_s: float = 60.0,
) -> list[Component]:
    settings = resources.settings
    kafka = settings.kafka_client_options()
    producer = Producer(settings.kafka_bootstrap_servers, client_id=SERVICE_NAME, **kafka)
    return [
        producer,  # a component itself: started first, stopped last
        ConsumerRunner(
            name=SERVICE_NAME,
            topics=list(topics),
            handler=HANDLER,
            database=resources.database,
            producer=producer,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            service=SERVICE_NAME,
            config=config,
            client_options=kafka,
        ),
        OutboxRelay(resources.database, producer, name="survey.outbox", poll_interval_s=0.5),
        ProgressMetrics(resources.database, interval_s=progress_interval_s),
    ]


SERVICE = ServiceDefinition(
    name=SERVICE_NAME,
    settings=SurveySettings,
    migrations=Path(__file__).parent / "migrations",
    routers=(router, survey_router, steps_router, sampling_router),
    components=components,
    consumer_groups={SERVICE_NAME: TOPICS},
    # The 初审/审定/复核 ledger (survey_0003, survey_0004); the sampling checks (survey_0005).
    append_only=("decisions", "samples", "sample_records", "sample_checks"),
    description=__doc__ or "",
)


def create(settings: ServiceSettings | None = None) -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_survey.app:create`)."""
    return create_app(SERVICE, settings)
