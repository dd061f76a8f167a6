"""The services behind the gateway, for tests that cross them all: identity and matching
in-process on their real databases (only their routes run: no consumers), survey with its
lifespan (outbox relay and producer on a broker of its own), and the gateway reaching the three
through httpx.ASGITransport. Import the fixtures by name into the test module, as
test_popup.py does with identity's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from canbao_contracts.topics import COLLECTIONS
from canbao_gateway.app import create
from canbao_gateway.clock import clock
from canbao_identity.app import create as create_identity
from canbao_identity.settings import IdentitySettings
from canbao_matching.app import MatchingSettings
from canbao_matching.app import create as create_matching
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.service import Resources
from tests.gateway.conftest import Clock, serve, settings_for
from tests.identity.conftest import Harness, change


def hukou(number: str, region: str, name: str = "王伟", born: date = date(1980, 1, 1)) -> Any:
    """A household-register row placing `number` in `region` (AAC010's county)."""
    row = {
        "sfzh": number,
        "xm": name,
        "xb": "1",
        "csrq": born,
        "hjdz_xzqh": region,
        "hjdz": "贵州省贵阳市某区某街道12号",
        "ryzt": "0",
    }
    return change("hukou.person", row)


def identity_app(harness: Harness) -> FastAPI:
    settings = IdentitySettings(CANBAO_ENV="test", database_url=harness.db.url)
    app = create_identity(settings)
    app.state.resources = Resources(settings=settings, database=harness.db)
    return app


def matching_app(matching_db: Database) -> FastAPI:
    settings = MatchingSettings(CANBAO_ENV="test", database_url=matching_db.url)
    app = create_matching(settings)
    app.state.resources = Resources(settings=settings, database=matching_db)
    return app


@pytest.fixture(scope="module")
def collections_kafka() -> Iterator[MockKafkaCluster]:
    """Survey's broker (its fixtures' name), one per module."""
    with MockKafkaCluster(brokers=3) as cluster:
        cluster.create_topics([COLLECTIONS])
        yield cluster


async def gateway_over(
    gateway_url: str, test_clock: Clock, settings: dict[str, Any] | None = None, **apps: FastAPI
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway (with `settings` beyond the test defaults) reaching each of `apps`
    (identity=, matching=, survey=) through ASGI; survey runs its lifespan (its outbox relay
    publishes what it commits)."""
    transports = {f"{name}_transport": httpx.ASGITransport(app=app) for name, app in apps.items()}
    app = create(settings_for(gateway_url, **(settings or {})), **transports)
    app.dependency_overrides[clock] = lambda: test_clock
    if "survey" in apps:
        async with serve(apps["survey"]), serve(app) as client:
            yield client
    else:
        async with serve(app) as client:
            yield client
