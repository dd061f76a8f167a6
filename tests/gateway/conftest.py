"""The gateway's fixtures: a migrated gateway database per test, the real application on it
(through ASGI, lifespan included) with a clock the test moves, accounts and tokens of each role,
and one stand-in personal-data endpoint that uses `require(..., person=...)` and the audit trail
exactly as the popup will."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI

from canbao_gateway import tokens
from canbao_gateway.accounts import create_account
from canbao_gateway.app import SERVICE, create
from canbao_gateway.audit import Outcome, Purpose
from canbao_gateway.auth import AuditDep, PersonInQuestion, person_by_id_number, require
from canbao_gateway.clock import clock
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.staff import Role, Staff
from canbao_platform.db import Database
from canbao_platform.service import ServiceDefinition
from tests.conftest import ServiceDatabase, SessionCluster

PROBLEM_JSON = "application/problem+json"
AddAccount = Callable[..., Awaitable[Staff]]
# Roles that read personal data in api.md (the auditor reads only the log).
PERSONAL_DATA_ROLES = (Role.COUNTER, Role.SURVEYOR, Role.PLATFORM, Role.COUNTY, Role.ANALYST)


@dataclass
class Clock:
    """The only stand-in the tests use: time, moved by the test."""

    now: datetime = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in China

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# A stand-in for the popup: a personal-data read behind the same dependencies.
stand_in = APIRouter(prefix="/test")


@stand_in.get("/persons/{id_number}")
async def read_person(
    staff: Annotated[
        Staff,
        require(*PERSONAL_DATA_ROLES, person=person_by_id_number, purpose=Purpose.COUNTER_SERVICE),
    ],
    person: Annotated[PersonInQuestion, Depends(person_by_id_number)],
    audit: AuditDep,
) -> dict[str, Any]:
    await audit.record(
        purpose=Purpose.COUNTER_SERVICE,
        outcome=Outcome.OK,
        id_number=person.id_number,
        person_region=person.region,
    )
    return {"region": person.region, "read_by": staff.username}


@pytest.fixture
async def gateway_database(
    make_service_database: Callable[[ServiceDefinition], Awaitable[ServiceDatabase]],
) -> ServiceDatabase:
    return await make_service_database(SERVICE)


@pytest.fixture
def gateway_url(gateway_database: ServiceDatabase) -> str:
    """What the gateway connects with: its application role (SELECT and INSERT only on the audit
    log, owner of nothing), as in production."""
    return gateway_database.url


@pytest.fixture
async def gateway_db(gateway_database: ServiceDatabase) -> AsyncIterator[Database]:
    """The test's gateway database as its owner, for arranging accounts and reading rows
    directly (and for breaking it on purpose)."""
    database = Database(gateway_database.owner_url, pool_size=2)
    yield database
    await database.dispose()


@pytest.fixture
def test_clock() -> Clock:
    return Clock()


def settings_for(url: str, environment: str = "test", **values: Any) -> GatewaySettings:
    """The gateway's settings for a test: without its Kafka consumer (DCI notifications) unless
    `dci_notifications=True` and a broker are given."""
    values = {"dci_notifications": False} | values
    return GatewaySettings(database_url=url, CANBAO_ENV=environment, **values)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def build_app(settings: GatewaySettings, now: Clock) -> FastAPI:
    app = create(settings)
    app.include_router(stand_in)
    app.dependency_overrides[clock] = lambda: now
    return app


@pytest.fixture
async def client(gateway_url: str, test_clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway (CANBAO_ENV=test) on the test's database, with the test's clock."""
    async with serve(build_app(settings_for(gateway_url), test_clock)) as client:
        yield client


@pytest.fixture
def token_for(test_clock: Clock, postgres: SessionCluster, gateway_url: str) -> Callable[..., str]:
    """A token as the gateway issues at login, without the cost of a login (Argon2): for an
    active account of that username in the test's database (added, without a usable password,
    unless there), at its current token version (the gateway checks it on each request)."""
    database = sa.make_url(gateway_url).database
    assert database is not None

    def make(role: Role, scope: str = "52", username: str | None = None) -> str:
        staff = Staff(username=username or f"test-{role.value}", role=role, scope=scope)
        name = staff.username.replace("'", "''")
        # The cluster's own connection, not the asyncpg engine: this is called inside the
        # test's running event loop.
        postgres.execute(
            database,
            (
                "INSERT INTO staff_accounts (username, password_hash, role, scope) "
                f"VALUES ('{name}', '!', '{role.value}', '{scope}') ON CONFLICT DO NOTHING"
            ),
        )
        ((version,),) = postgres.fetch(
            database, "SELECT token_version FROM staff_accounts WHERE username = $1", name
        )
        key = settings_for("unused").jwt_key()
        return tokens.issue(
            staff, version=int(version), key=key, now=test_clock(), lifetime=timedelta(minutes=15)
        )

    return make


@pytest.fixture
def add_account(gateway_db: Database) -> Callable[..., Awaitable[Staff]]:
    async def add(username: str, password: str, role: Role = Role.COUNTER, scope: str = "52"):
        async with gateway_db.engine.begin() as connection:
            staff = await create_account(
                connection, username=username, password=password, role=role, scope=scope
            )
        return staff

    return add


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """An RFC 9457 problem of the stable type `/problems/<slug>`, with no stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    assert "Traceback" not in response.text
    return body


async def break_the_audit_log(database: Database) -> None:
    """Every INSERT into the audit log fails from now on (a full disk, a lost tablespace)."""
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.text(
                "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
        )
        await connection.execute(
            sa.text(
                "CREATE TRIGGER broken BEFORE INSERT ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
            )
        )
