"""The identity service: one person per social security number, from every source: resolution,
golden record, gaps; the only holder of names and numbers in clear."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from canbao_contracts.topics import CDC_TOPICS, COLLECTIONS, FEEDBACK_REPLIES
from canbao_identity.builder import GoldenRecordBuilder
from canbao_identity.handlers import change_handler, collection_handler
from canbao_identity.partner_routes import router as partner_router
from canbao_identity.protection import Protector
from canbao_identity.routes import router
from canbao_identity.settings import IdentitySettings, Role
from canbao_identity.store import Settling
from canbao_identity.writeback import reply_handler
from canbao_identity.writeback_routes import router as writeback_router
from canbao_platform.messaging import ConsumerRunner, OutboxRelay, Producer, RunnerConfig
from canbao_platform.service import Component, Resources, ServiceDefinition, create_app

SERVICE_NAME = "identity"


def protector_from(settings: IdentitySettings) -> Protector:
    return Protector(settings.sealer(), settings.blind_index_key_bytes())


DEFAULT_CONFIG = RunnerConfig()
# The consumer group of the cdc.* topics: the local CDC bridge's backpressure watches its lag
# (canbao_stack.local), so it is the service's name and nothing else.
CDC_GROUP = SERVICE_NAME
COLLECTIONS_GROUP = f"{SERVICE_NAME}.collections"
FEEDBACK_GROUP = f"{SERVICE_NAME}.feedback"  # the business systems' replies (writeback.py)
REPLIES_TOPICS = tuple(topic.name for topic in FEEDBACK_REPLIES.values())


def components(
    resources: Resources,
    *,
    config: RunnerConfig = DEFAULT_CONFIG,
    cdc_topics: Sequence[str] | None = None,
    collections_topic: str = COLLECTIONS.name,
    replies_topics: Sequence[str] = REPLIES_TOPICS,
    builder_idle_s: float = 0.2,
) -> list[Component]:
    """For the role "consume": the producer (first, so stopped last), the consumers that stage
    changes and the relay that sends the outbox (one relays at a time, whichever process holds
    its lock); for "build": the builder that turns staged changes into golden records and
    events; for "rebuild": a builder that only rebuilds pending persons. The relay never runs in
    a builder-only process: once a snapshot has streamed in, a first load's time is the
    builder's CPU (relaying took 17 % of it at 10^6 people), while the consumers have little
    left to do."""
    settings = resources.settings
    assert isinstance(settings, IdentitySettings)
    protector = protector_from(settings)
    parts: list[Component] = []
    if Role.CONSUME in settings.role_set:
        kafka = settings.kafka_client_options()
        producer = Producer(settings.kafka_bootstrap_servers, client_id=SERVICE_NAME, **kafka)
        common: dict[str, Any] = {
            "database": resources.database,
            "producer": producer,
            "service": SERVICE_NAME,
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "client_options": kafka,
            "config": config,
        }
        parts += [
            producer,  # a component itself: started first, stopped last
            ConsumerRunner(
                name=CDC_GROUP,
                handler=change_handler(protector),
                topics=list(cdc_topics or [t.name for t in CDC_TOPICS]),
                **common,
            ),
            ConsumerRunner(
                name=COLLECTIONS_GROUP,
                handler=collection_handler(protector),
                topics=[collections_topic],
                **common,
            ),
            ConsumerRunner(
                name=FEEDBACK_GROUP, handler=reply_handler(), topics=list(replies_topics), **common
            ),
            OutboxRelay(resources.database, producer, name=f"{SERVICE_NAME}.outbox"),
        ]
    if Role.BUILD in settings.role_set or Role.REBUILD in settings.role_set:
        resolves = Role.BUILD in settings.role_set
        parts.append(
            GoldenRecordBuilder(
                resources.database,
                protector,
                service=SERVICE_NAME,
                name="identity.builder" if resolves else "identity.rebuilder",
                resolves=resolves,
                idle_interval_s=builder_idle_s,
                settling=Settling(settings.snapshot_quiet_s, settings.snapshot_max_wait_s),
            )
        )
    return parts


SERVICE = ServiceDefinition(
    name=SERVICE_NAME,
    settings=IdentitySettings,
    migrations=Path(__file__).parent / "migrations",
    routers=(router, writeback_router, partner_router),
    components=components,
    consumer_groups={
        CDC_GROUP: tuple(topic.name for topic in CDC_TOPICS),
        COLLECTIONS_GROUP: (COLLECTIONS.name,),
        FEEDBACK_GROUP: REPLIES_TOPICS,
    },
    description=__doc__ or "",
)


def create(settings: IdentitySettings | None = None) -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_identity.app:create`)."""
    settings = settings or IdentitySettings()
    app = create_app(SERVICE, settings)
    app.state.protector = protector_from(settings)
    return app
