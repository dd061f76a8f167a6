"""The shell every service runs in: FastAPI app, lifespan, health and readiness.

A service describes itself with a `ServiceDefinition` (its name, settings, migrations, routes
and the background components — consumers, outbox relay — it runs); `create_app` builds the
FastAPI application. Clients are built in the lifespan, never at import time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from canbao_platform.db import Database
from canbao_platform.messaging.consumer import ConsumerRunner
from canbao_platform.messaging.pruning import ProcessedMessagesPruner
from canbao_platform.problems import install_problem_handlers
from canbao_platform.settings import ServiceSettings

log = logging.getLogger(__name__)
READINESS_TIMEOUT_S = 2.0


class Component(Protocol):
    """Something the service runs beside its routes (a consumer runner, the outbox relay)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """At least {"ready": bool}; consumers add lag, dead letters, restarts."""
        ...


@dataclass(frozen=True)
class Resources:
    """What a running service has: its settings and database, for components and routes."""

    settings: ServiceSettings
    database: Database


def keep_message_contents_out_of_logs() -> None:
    """aiokafka logs whole records at DEBUG (a collection's items are personal data): however
    verbose the service's logging is made, its loggers stay at INFO or above."""
    kafka = logging.getLogger("aiokafka")
    if kafka.getEffectiveLevel() < logging.INFO:
        kafka.setLevel(logging.INFO)


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    settings: type[ServiceSettings]
    migrations: Path
    routers: Sequence[APIRouter] = ()
    components: Callable[[Resources], Sequence[Component]] = lambda _: ()
    description: str = ""
    # Tables the service's own login may read and add to but never change (db.py,
    # grant_application_role): UPDATE and DELETE stay with the owner, TRUNCATE with nobody.
    append_only: tuple[str, ...] = ()
    # Its consumer groups and their topics, for tools that act on them without running the
    # service (canbao_platform.recovery rewinds them after a database restore).
    consumer_groups: Mapping[str, Sequence[str]] = field(default_factory=dict)


def create_app(definition: ServiceDefinition, settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or definition.settings()
    keep_message_contents_out_of_logs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.database_url)
        resources = Resources(settings=settings, database=database)
        components = list(definition.components(resources))
        if any(isinstance(component, ConsumerRunner) for component in components):
            # Whoever consumes keeps idempotency records, and forgets the old ones.
            kept = settings.processed_messages_kept
            components.append(ProcessedMessagesPruner(database, kept=kept))
        app.state.resources = resources
        app.state.components = components
        started: list[Component] = []
        try:
            for component in components:
                await component.start()
                started.append(component)
            freeze_startup_objects()
            yield
        finally:
            for component in reversed(started):
                await component.stop()
            await database.dispose()

    app = FastAPI(
        title=f"canbao {definition.name}",
        description=definition.description,
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.service_name = definition.name  # the audience of its service tokens
    install_problem_handlers(app)
    app.include_router(_health_router(definition.name))
    for router in definition.routers:
        app.include_router(router)
    return app


_frozen = False


def freeze_startup_objects() -> None:
    """Once the service has started, what it holds (modules, table metadata, schemas, compiled
    statements: hundreds of thousands of objects, live until it stops) is moved out of the
    cyclic garbage collector's sight (gc.freeze). Otherwise every full collection, which the
    allocations of messages and requests trigger every few seconds under load, traverses all of
    them: tens of milliseconds each, a sixth of a consumer runner's time and most of its slowest
    batches' (bench/messaging.py). Collected first, so no garbage is kept; once per process
    (more apps in one process, as in the tests, add nothing)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _health_router(service: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz", summary="Database reachable, components running, lag reported")
    async def readyz(request: Request) -> JSONResponse:
        resources: Resources = request.app.state.resources
        checks: dict[str, Any] = {"database": await _database_check(resources.database)}
        for component in request.app.state.components:
            checks[component.name] = component.health()
        ready = all(check.get("ready", False) for check in checks.values())
        body = {"status": "ready" if ready else "not-ready", "service": service, "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    return router


async def _database_check(database: Database) -> dict[str, Any]:
    try:
        await asyncio.wait_for(database.ping(), READINESS_TIMEOUT_S)
    except Exception as exc:  # any failure means "not ready"; the class says which
        return {"ready": False, "error": type(exc).__name__}
    return {"ready": True}
