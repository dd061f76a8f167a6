"""The gateway service: the public HTTP interface of api.md (staff login, roles and region
scopes, the audit log, counter collections forwarded to survey, counter popups and the persons'
records read from identity and matching, the household survey forwarded to survey, citizens'
self-service on kiosks and the app, partner departments' batches and comparisons), and the pages
that clerks, reviewers, analysts and kiosks open in a browser."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from canbao_contracts.topics import STATUSES
from canbao_gateway import body_limit
from canbao_gateway.accounts import HASH_MEMORY_KIB, create_demo_accounts
from canbao_gateway.change_routes import router as change_router
from canbao_gateway.clients import create_demo_clients
from canbao_gateway.collections import router as collections_router
from canbao_gateway.counter_page import router as counter_page_router
from canbao_gateway.dci_delivery import CallbackDelivery
from canbao_gateway.dci_notify import ExchangeReconciler, notify_handler
from canbao_gateway.dci_routes import router as dci_router
from canbao_gateway.history_routes import router as history_router
from canbao_gateway.kiosk_page import router as kiosk_page_router
from canbao_gateway.login_gate import LoginGate
from canbao_gateway.logs import install_log_masking
from canbao_gateway.partner_routes import RecordPeer
from canbao_gateway.partner_routes import router as partner_router
from canbao_gateway.persons import router as persons_router
from canbao_gateway.problems import install_header_handler
from canbao_gateway.report_page import router as report_page_router
from canbao_gateway.report_routes import router as report_router
from canbao_gateway.review_routes import router as review_router
from canbao_gateway.routes import router
from canbao_gateway.sampling_routes import router as sampling_router
from canbao_gateway.self_routes import router as self_router
from canbao_gateway.service_clients import IdentityClient, MatchingClient, ReportingClient
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.survey import SurveyClient
from canbao_gateway.survey_page import router as survey_page_router
from canbao_gateway.survey_routes import router as survey_router
from canbao_gateway.writeback_routes import router as writeback_router
from canbao_platform.background import BackgroundLoop
from canbao_platform.messaging import ConsumerRunner, Producer, RunnerConfig
from canbao_platform.service import Component, Resources, ServiceDefinition, create_app

log = logging.getLogger(__name__)
SERVICE_NAME = "gateway"
NOTIFY_GROUP = f"{SERVICE_NAME}.dci"


class DemoAccounts(BackgroundLoop):
    """Creates the demo staff accounts and the demo kiosk of api.md, in the local stack only
    (CANBAO_ENV=development): never in test or production. In the background, retrying, so that the
    service starts while its database is away (and reports not ready until they exist)."""

    name = "demo-accounts"
    retry_s = 1.0

    def __init__(self, resources: Resources) -> None:
        super().__init__()
        self.resources = resources
        self.created = False

    def health(self) -> dict[str, Any]:
        return {"ready": self.created}

    async def run(self) -> None:
        while not self.created and not self.stopping:
            try:
                async with self.resources.database.engine.begin() as connection:
                    await create_demo_accounts(connection)
                    await create_demo_clients(connection)
                self.created = True
            except (OSError, DBAPIError) as exc:
                log.warning("demo accounts not created yet (%s); retrying", type(exc).__name__)
                await self.sleep(self.retry_s)


def components(
    resources: Resources,
    *,
    survey_transport: httpx.AsyncBaseTransport | None = None,
    identity_transport: httpx.AsyncBaseTransport | None = None,
    matching_transport: httpx.AsyncBaseTransport | None = None,
    reporting_transport: httpx.AsyncBaseTransport | None = None,
) -> Sequence[Component]:
    settings = resources.settings
    assert isinstance(settings, GatewaySettings)
    key = settings.service_token_signing_key()
    identity = IdentityClient(settings.identity_url, signing_key=key, transport=identity_transport)
    matching = MatchingClient(settings.matching_url, signing_key=key, transport=matching_transport)
    parts: list[Component] = [
        SurveyClient(settings.survey_url, signing_key=key, transport=survey_transport),
        identity,
        matching,
        ReportingClient(settings.reporting_url, signing_key=key, transport=reporting_transport),
        CallbackDelivery(resources.database, settings.sealer()),
    ]
    if settings.dci_notifications:
        # The gateway's one consumer: registry.statuses → DCI notifications (dci_notify.py).
        kafka = settings.kafka_client_options()
        producer = Producer(settings.kafka_bootstrap_servers, client_id=SERVICE_NAME, **kafka)
        parts += [
            producer,
            ConsumerRunner(
                name=NOTIFY_GROUP,
                topics=[STATUSES.name],
                handler=notify_handler(settings, settings.sealer(), identity),
                database=resources.database,
                producer=producer,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                service=SERVICE_NAME,
                config=RunnerConfig(),
                client_options=kafka,
            ),
            ExchangeReconciler(resources.database, settings.sealer(), settings, identity, matching),
        ]
    if settings.environment == "development":
        parts.append(DemoAccounts(resources))
    return parts


SERVICE = ServiceDefinition(
    name=SERVICE_NAME,
    settings=GatewaySettings,
    migrations=Path(__file__).parent / "migrations",
    routers=[
        router,
        collections_router,
        persons_router,
        survey_router,
        counter_page_router,
        survey_page_router,
        kiosk_page_router,
        report_page_router,
        review_router,
        writeback_router,
        history_router,
        change_router,
        sampling_router,
        self_router,
        partner_router,
        dci_router,
        report_router,
    ],
    components=components,
    consumer_groups={NOTIFY_GROUP: (STATUSES.name,)},
    description="The public HTTP interface: staff login, roles, audit, counter popups, "
    "self-service, partners.",
    # domain.md §2.5: the audit log is never changed; nor is a certificate once issued.
    append_only=("audit_log", "certificates"),
)


def create(
    settings: GatewaySettings | None = None,
    *,
    survey_transport: httpx.AsyncBaseTransport | None = None,
    identity_transport: httpx.AsyncBaseTransport | None = None,
    matching_transport: httpx.AsyncBaseTransport | None = None,
    reporting_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_gateway.app:create`). The transports
    (tests): reach survey, identity and matching through them, e.g. httpx.ASGITransport of
    their applications."""
    transports = (survey_transport, identity_transport, matching_transport, reporting_transport)
    definition = SERVICE
    if any(transports):
        definition = replace(
            SERVICE,
            components=partial(
                components,
                survey_transport=survey_transport,
                identity_transport=identity_transport,
                matching_transport=matching_transport,
                reporting_transport=reporting_transport,
            ),
        )
    settings = settings or GatewaySettings()
    app = create_app(definition, settings)
    install_header_handler(app)
    install_log_masking()
    app.state.login_gate = LoginGate.for_memory(settings.login_hashing_memory_mib, HASH_MEMORY_KIB)
    # Added last, so outermost: the client's address is settled first, then the body's size,
    # both before any route (or authentication) runs.
    app.add_middleware(
        body_limit.BodyLimit, default=settings.max_body_bytes, routes=body_limit.ROUTE_LIMITS
    )
    if settings.trusted_proxies:
        # Run uvicorn with --no-proxy-headers (deploy/): this is the one place that believes
        # X-Forwarded-For, and only from the proxies configured (settings.py).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    # Outermost: the connection's own peer, before X-Forwarded-For (partner mTLS believes the
    # ingress's certificate headers from trusted proxies only).
    app.add_middleware(RecordPeer)
    return app
