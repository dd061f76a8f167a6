"""Every service is a FastAPI application with health, readiness, OpenAPI and problem+json."""

from __future__ import annotations

import ast
import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from canbao_contracts.topics import ALL_TOPICS
from canbao_platform.db import migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.migrate import service_definition
from canbao_platform.service import create_app

SERVICES = ["identity", "matching", "survey", "reporting", "gateway"]
ROOT = Path(__file__).resolve().parents[2]


definition = service_definition


async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture(scope="module")
def contract_kafka() -> Iterator[MockKafkaCluster]:
    """A broker of its own with every contract topic, as a deployment has them (the session's
    broker holds only the topics tests make)."""
    with MockKafkaCluster(brokers=3) as cluster:
        cluster.create_topics(ALL_TOPICS)
        yield cluster


@pytest.fixture(params=SERVICES)
async def service_client(
    request: pytest.FixtureRequest,
    make_database: Callable[[], str],
    contract_kafka: MockKafkaCluster,
) -> AsyncIterator[httpx.AsyncClient]:
    service = definition(request.param)
    url = make_database()
    await migrate_async(url, service.migrations)
    settings = service.settings(
        database_url=url, KAFKA_BOOTSTRAP_SERVERS=contract_kafka.bootstrap_servers
    )
    app = create_app(service, settings)
    async for client in serve(app):
        yield client


async def test_healthz_answers_ok(service_client: httpx.AsyncClient) -> None:
    response = await service_client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_reports_database_reachable(service_client: httpx.AsyncClient) -> None:
    """Ready once its consumers have joined their groups (a few seconds on the test broker)."""
    deadline = time.monotonic() + 60
    response = await service_client.get("/readyz")
    while response.status_code != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        response = await service_client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == {"ready": True}


async def test_a_started_service_keeps_what_it_holds_out_of_the_collectors_sight(
    service_client: httpx.AsyncClient,
) -> None:
    """What a started service holds lives as long as it: frozen (service.freeze_startup_objects),
    so no full collection traverses it again."""
    assert gc.get_freeze_count() > 10_000


async def test_openapi_document_lists_health_endpoints(service_client: httpx.AsyncClient) -> None:
    document = (await service_client.get("/openapi.json")).json()
    assert {"/healthz", "/readyz"} <= set(document["paths"])


async def test_unknown_path_is_problem_json(service_client: httpx.AsyncClient) -> None:
    response = await service_client.get("/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/not-found"


@pytest.mark.parametrize("service_name", SERVICES)
async def test_readyz_is_503_when_database_unreachable(
    service_name: str, kafka: MockKafkaCluster
) -> None:
    """The service starts anyway (its components wait for the database) and says why not."""
    service = definition(service_name)
    unreachable = f"postgresql+asyncpg://canbao@127.0.0.1:1/{service_name}"
    settings = service.settings(
        database_url=unreachable, KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers
    )
    app = create_app(service, settings)
    async for client in serve(app):
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"]["ready"] is False


def test_settings_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHING_DATABASE_URL", "postgresql+asyncpg://x@db:5432/matching")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    settings = definition("matching").settings()
    assert settings.database_url == "postgresql+asyncpg://x@db:5432/matching"
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"


@pytest.mark.parametrize("service", SERVICES)
def test_service_imports_no_other_service(service: str) -> None:
    others = {f"canbao_{other}" for other in SERVICES if other != service}
    for path in (ROOT / "services" / service).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in others, f"{path} imports {name}"


def test_kafka_client_logs_never_carry_message_contents() -> None:
    """aiokafka logs whole records at DEBUG; a service keeps its loggers at INFO at least."""
    logging.getLogger("aiokafka").setLevel(logging.DEBUG)
    try:
        service = definition("survey")
        create_app(service, service.settings(database_url="postgresql+asyncpg://x@127.0.0.1:1/x"))
        assert logging.getLogger("aiokafka.consumer.fetcher").getEffectiveLevel() == logging.INFO
    finally:
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)
