"""Reporting's fixtures: its database migrated by the owner and reached as the service's own
login (so the append-only grant holds in the tests too), the handler fed with events on a clock
the test moves, and the internal API as the gateway calls it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from canbao_contracts.envelope import Envelope, encode
from canbao_contracts.events import Event
from canbao_platform.db import Database
from canbao_platform.messaging import InboundMessage, unit_of_work
from canbao_platform.service import ServiceDefinition, create_app
from canbao_reporting.app import SERVICE, ReportingSettings
from canbao_reporting.handlers import handler
from canbao_reporting.routes import clock as route_clock
from tests.conftest import ServiceAuth, ServiceDatabase


@dataclass
class Clock:
    """The only stand-in the tests use: time, moved by the test."""

    now: datetime = datetime(2026, 8, 15, 2, 0, tzinfo=UTC)  # in 2026Q3

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Reporting:
    database: Database
    clock: Clock = field(default_factory=Clock)

    async def apply(self, *events: Event, ids: list[str] | None = None) -> None:
        """Events through the consumer's handler, arriving at the clock's time (`ids`: the same
        ce_id again, as a redelivery carries)."""
        handle = handler(self.clock)
        async with unit_of_work(self.database, service="reporting") as uow:
            for offset, event in enumerate(events):
                record = encode(event, source="/tests", id=None if ids is None else ids[offset])
                message = InboundMessage(
                    topic=record.topic,
                    partition=0,
                    offset=offset,
                    key=record.key,
                    value=record.value,
                    headers=tuple(record.headers),
                    timestamp=0,
                    envelope=Envelope.from_headers(record.headers),
                )
                await handle(message, uow)


@pytest.fixture
async def reporting_database(
    make_service_database: Callable[[ServiceDefinition], Awaitable[ServiceDatabase]],
) -> ServiceDatabase:
    return await make_service_database(SERVICE)


@pytest.fixture
async def reporting(reporting_database: ServiceDatabase) -> AsyncIterator[Reporting]:
    database = Database(reporting_database.url, pool_size=4)
    yield Reporting(database)
    await database.dispose()


@pytest.fixture
async def client(reporting: Reporting) -> AsyncIterator[httpx.AsyncClient]:
    definition = dataclasses.replace(SERVICE, components=lambda _: ())
    app = create_app(definition, ReportingSettings(database_url=reporting.database.url))
    app.dependency_overrides[route_clock] = lambda: reporting.clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://reporting",
            auth=ServiceAuth("reporting", username="test-analyst", role="analyst"),
        ) as c:
            yield c
