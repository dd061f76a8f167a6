"""The matching service: each person's status in the five insurances (domain.md §5), the flags,
and who needs a survey. Consumes registry.persons, registry.facts and registry.collections;
evaluates the people they concern (and, daily, those whose verdict changes with age), publishing
registry.statuses through the outbox; serves the verdicts to the gateway (routes.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from canbao_contracts.topics import COLLECTIONS, FACTS, PERSONS, STATUSES
from canbao_matching.evaluation import Clock, Evaluator, system_clock
from canbao_matching.handlers import HANDLER
from canbao_matching.routes import router
from canbao_platform.messaging import ConsumerRunner, OutboxRelay, Producer, RunnerConfig
from canbao_platform.service import Component, Resources, ServiceDefinition, create_app
from canbao_platform.settings import ServiceSettings, service_settings

SERVICE_NAME = "matching"
MatchingSettings = service_settings(SERVICE_NAME)
DEFAULT_CONFIG = RunnerConfig()


def components(
    resources: Resources,
    *,
    config: RunnerConfig = DEFAULT_CONFIG,
    clock: Clock = system_clock,
    topics: tuple[str, ...] = (PERSONS.name, FACTS.name, COLLECTIONS.name),
    statuses_topic: str = STATUSES.name,
    poll_interval_s: float = 0.2,
) -> list[Component]:
    settings = resources.settings
    kafka = settings.kafka_client_options()
    producer = Producer(settings.kafka_bootstrap_servers, client_id=SERVICE_NAME, **kafka)
    consumer = ConsumerRunner(
        name=SERVICE_NAME,
        topics=list(topics),
        handler=HANDLER,
        database=resources.database,
        producer=producer,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        service=SERVICE_NAME,
        config=config,
        client_options=kafka,
    )
    return [
        producer,  # a component itself: started first, stopped last
        consumer,
        Evaluator(
            resources.database,
            clock=clock,
            poll_interval_s=poll_interval_s,
            consumed_through=consumer.consumed_through,
            statuses_topic=statuses_topic,
        ),
        OutboxRelay(resources.database, producer, name="matching.outbox"),
    ]


SERVICE = ServiceDefinition(
    name=SERVICE_NAME,
    settings=MatchingSettings,
    migrations=Path(__file__).parent / "migrations",
    routers=(router,),
    components=components,
    consumer_groups={SERVICE_NAME: (PERSONS.name, FACTS.name, COLLECTIONS.name)},
    description=__doc__ or "",
)


def create(settings: ServiceSettings | None = None) -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_matching.app:create`)."""
    return create_app(SERVICE, settings)
