"""The reporting service: the quarterly basic-data table (domain.md §6), frozen per quarter, from
its own projection of registry.statuses (handlers.py, store.py); served to the gateway
(routes.py). Coverage and the people behind every number come next."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from canbao_contracts.topics import STATUSES, UNITS
from canbao_platform.messaging import ConsumerRunner, Producer, RunnerConfig
from canbao_platform.service import Component, Resources, ServiceDefinition, create_app
from canbao_platform.settings import ServiceSettings
from canbao_reporting.handlers import Clock, handler, system_clock
from canbao_reporting.routes import router
from canbao_reporting.settings import ReportingSettings

SERVICE_NAME = "reporting"
# registry.persons (declared in the contracts' RECEIVES) brings the masked names of the detail
# lists; not consumed until those lists are built. registry.units names the employers.
TOPICS = (STATUSES.name, UNITS.name)
DEFAULT_CONFIG = RunnerConfig()


def components(
    resources: Resources,
    *,
    topics: tuple[str, ...] = TOPICS,
    config: RunnerConfig = DEFAULT_CONFIG,
    clock: Clock = system_clock,
) -> list[Component]:
    settings = resources.settings
    kafka = settings.kafka_client_options()
    producer = Producer(settings.kafka_bootstrap_servers, client_id=SERVICE_NAME, **kafka)
    return [
        producer,  # for the dead letters; started first, stopped last
        ConsumerRunner(
            name=SERVICE_NAME,
            topics=list(topics),
            handler=handler(clock),
            database=resources.database,
            producer=producer,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            service=SERVICE_NAME,
            config=config,
            client_options=kafka,
        ),
    ]


SERVICE = ServiceDefinition(
    name=SERVICE_NAME,
    settings=ReportingSettings,
    migrations=Path(__file__).parent / "migrations",
    routers=(router,),
    components=components,
    consumer_groups={SERVICE_NAME: TOPICS},
    # Every state a person has had (history freezes a past quarter), the past quarters' counts
    # as first kept, and every filed table.
    append_only=(
        "person_states",
        "quarter_snapshots",
        "quarter_cells",
        "quarter_coverage",
        "filings",
    ),
    description=__doc__ or "",
)


def create(settings: ServiceSettings | None = None) -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_reporting.app:create`)."""
    return create_app(SERVICE, settings)
