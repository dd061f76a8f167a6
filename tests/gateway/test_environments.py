"""What differs between the local stack (development), tests and production: the demo accounts
of api.md exist in development only, and production refuses to start without real keys."""

from __future__ import annotations

import asyncio

import httpx
import pydantic
import pytest
import sqlalchemy as sa

from canbao_gateway.accounts import DEMO_ACCOUNTS
from canbao_gateway.settings import DEVELOPMENT_JWT_KEY, GatewaySettings
from canbao_gateway.tables import staff_accounts
from canbao_platform.db import Database
from tests.gateway.conftest import Clock, assert_problem, bearer, build_app, serve, settings_for

PRODUCTION_KEYS = {"jwt_signing_key": "k" * 64, "audit_index_key": "a" * 64}


async def accounts(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return set((await connection.scalars(sa.select(staff_accounts.c.username))).all())


async def wait_until_ready(client: httpx.AsyncClient) -> None:
    for _ in range(100):
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway did not become ready")


async def test_local_stack_has_the_demo_accounts_of_api_md(
    gateway_url: str, gateway_db: Database, test_clock: Clock
) -> None:
    app = build_app(settings_for(gateway_url, "development"), test_clock)
    async with serve(app) as client:
        await wait_until_ready(client)
        for username, role in DEMO_ACCOUNTS.items():
            response = await client.post(
                "/api/v1/auth/token", data={"username": username, "password": "demo"}
            )
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            me = await client.get("/api/v1/auth/me", headers=bearer(token))
            assert me.json() == {"username": username, "role": role.value, "scope": "52"}
    assert await accounts(gateway_db) == {
        "demo-counter", "demo-surveyor", "demo-platform", "demo-county", "demo-analyst",
        "demo-auditor",
    }  # fmt: skip


@pytest.mark.parametrize("environment", ["test", "production"])
async def test_no_demo_accounts_outside_the_local_stack(
    gateway_url: str, gateway_db: Database, test_clock: Clock, environment: str
) -> None:
    settings = settings_for(gateway_url, environment, **PRODUCTION_KEYS)
    async with serve(build_app(settings, test_clock)) as client:
        await wait_until_ready(client)
        response = await client.post(
            "/api/v1/auth/token", data={"username": "demo-counter", "password": "demo"}
        )
        assert_problem(response, 401, "invalid-credentials")
    assert await accounts(gateway_db) == set()


def test_demo_accounts_are_one_per_role() -> None:
    assert sorted(role.value for role in DEMO_ACCOUNTS.values()) == sorted(
        ["counter", "surveyor", "platform", "county", "analyst", "auditor"]
    )


@pytest.mark.parametrize(
    ("keys", "complaint"),
    [
        ({}, "GATEWAY_JWT_SIGNING_KEY must be set"),
        ({"audit_index_key": "a" * 64}, "GATEWAY_JWT_SIGNING_KEY must be set"),
        ({"jwt_signing_key": "k" * 64}, "GATEWAY_AUDIT_INDEX_KEY must be set"),
        (PRODUCTION_KEYS | {"jwt_signing_key": DEVELOPMENT_JWT_KEY}, "must be set"),
        (PRODUCTION_KEYS | {"jwt_signing_key": "short"}, "at least 32 characters"),
    ],
)
def test_production_refuses_to_start_without_real_keys(
    keys: dict[str, str], complaint: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=complaint):
        GatewaySettings(database_url="postgresql+asyncpg://x@db/gateway", CANBAO_ENV="production",
                        **keys)  # fmt: skip


def test_production_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANBAO_ENV", "production")
    monkeypatch.setenv("GATEWAY_JWT_SIGNING_KEY", "k" * 64)
    monkeypatch.setenv("GATEWAY_AUDIT_INDEX_KEY", "a" * 64)
    settings = GatewaySettings()
    assert settings.jwt_key() == "k" * 64 and settings.audit_key() == b"a" * 64
    assert "k" * 64 not in repr(settings)  # secrets stay out of logs


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_tests_need_no_secrets(environment: str) -> None:
    settings = GatewaySettings(database_url="postgresql+asyncpg://x@db/g", CANBAO_ENV=environment)
    assert settings.jwt_key() == DEVELOPMENT_JWT_KEY
