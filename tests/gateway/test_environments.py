"""What differs between the local stack (development), tests and production: the demo accounts
of api.md exist in development only, and production refuses to start without real keys. Production
is also what an unset CANBAO_ENV means: a service started without being told where it runs fails
closed (no public development key, no demo accounts, no local-stack database)."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import httpx
import pydantic
import pytest
import sqlalchemy as sa

from canbao_gateway.accounts import DEMO_ACCOUNTS
from canbao_gateway.settings import DEV_DATA_KEY, DEVELOPMENT_JWT_KEY, GatewaySettings
from canbao_gateway.staff import Role
from canbao_gateway.tables import staff_accounts
from canbao_identity.settings import IdentitySettings
from canbao_matching.app import MatchingSettings
from canbao_platform.db import Database
from canbao_platform.migrate import migration_settings, service_definition
from canbao_platform.service_tokens import DEVELOPMENT_PRIVATE_KEY
from canbao_platform.settings import ServiceSettings
from canbao_reporting.app import SERVICE as REPORTING
from canbao_survey.settings import SurveySettings
from tests.conftest import SERVICE_PRIVATE_KEY, SERVICE_PUBLIC_KEY
from tests.gateway.conftest import Clock, assert_problem, bearer, build_app, serve, settings_for

PUBLIC_KEY = {"CANBAO_SERVICE_TOKEN_PUBLIC_KEY": SERVICE_PUBLIC_KEY}
# The gateway logs in to Kafka as its own user (its DCI notifications consume registry.statuses).
KAFKA = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "canbao-gateway",
         "KAFKA_SASL_PASSWORD": "scram-secret"}  # fmt: skip
DATA_KEY = {"data_key": base64.b64encode(b"d" * 32).decode(), "data_key_id": "2026-12", **KAFKA}
PRODUCTION_KEYS = {"jwt_signing_key": "k" * 64, "audit_index_key": "a" * 64,
                   "service_token_private_key": SERVICE_PRIVATE_KEY, **DATA_KEY}  # fmt: skip


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
        "demo-counter",
        "demo-surveyor",
        "demo-surveyor2",
        "demo-platform",
        "demo-county",
        "demo-analyst",
        "demo-auditor",
        "demo-reviewer",
        "demo-platform2",
        "demo-city",
    }


@pytest.mark.parametrize("environment", ["test", "production"])
async def test_no_demo_accounts_outside_the_local_stack(
    gateway_url: str, gateway_db: Database, test_clock: Clock, environment: str
) -> None:
    settings = settings_for(gateway_url, environment, **PRODUCTION_KEYS, **PUBLIC_KEY)
    async with serve(build_app(settings, test_clock)) as client:
        await wait_until_ready(client)
        response = await client.post(
            "/api/v1/auth/token", data={"username": "demo-counter", "password": "demo"}
        )
        assert_problem(response, 401, "invalid-credentials")
    assert await accounts(gateway_db) == set()


def test_demo_accounts_are_one_per_role_a_survey_team_and_two_platform_members() -> None:
    assert sorted(role.value for role in DEMO_ACCOUNTS.values()) == sorted(
        [
            "counter",
            "surveyor",
            "surveyor",
            "platform",
            "platform",
            "county",
            "reviewer",
            "city",
            "analyst",
            "auditor",
        ]
    )
    team = [name for name, role in DEMO_ACCOUNTS.items() if role is Role.SURVEYOR]
    assert team == ["demo-surveyor", "demo-surveyor2"]  # api.md "Survey"
    # One records a change at the platform, the other does its 初审 (maker-checker).
    platform = [name for name, role in DEMO_ACCOUNTS.items() if role is Role.PLATFORM]
    assert platform == ["demo-platform", "demo-platform2"]


@pytest.mark.parametrize(
    ("keys", "complaint"),
    [
        (DATA_KEY, "GATEWAY_JWT_SIGNING_KEY must be set"),
        (DATA_KEY | {"audit_index_key": "a" * 64}, "GATEWAY_JWT_SIGNING_KEY must be set"),
        (DATA_KEY | {"jwt_signing_key": "k" * 64}, "GATEWAY_AUDIT_INDEX_KEY must be set"),
        (PRODUCTION_KEYS | {"data_key": DEV_DATA_KEY}, "public development key"),
        (PRODUCTION_KEYS | {"jwt_signing_key": DEVELOPMENT_JWT_KEY}, "must be set"),
        (PRODUCTION_KEYS | {"jwt_signing_key": "short"}, "at least 32 characters"),
        (
            PRODUCTION_KEYS | {"service_token_private_key": DEVELOPMENT_PRIVATE_KEY},
            "GATEWAY_SERVICE_TOKEN_PRIVATE_KEY must be set",
        ),
    ],
)
def test_production_refuses_to_start_without_real_keys(
    keys: dict[str, str], complaint: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=complaint):
        GatewaySettings(
            database_url="postgresql+asyncpg://x@db/gateway",
            CANBAO_ENV="production",
            **PUBLIC_KEY,
            **keys,
        )


def test_production_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANBAO_ENV", "production")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql+asyncpg://gateway_app@db/gateway")
    monkeypatch.setenv("GATEWAY_JWT_SIGNING_KEY", "k" * 64)
    monkeypatch.setenv("GATEWAY_AUDIT_INDEX_KEY", "a" * 64)
    monkeypatch.setenv("GATEWAY_SERVICE_TOKEN_PRIVATE_KEY", SERVICE_PRIVATE_KEY)
    monkeypatch.setenv("CANBAO_SERVICE_TOKEN_PUBLIC_KEY", SERVICE_PUBLIC_KEY)
    monkeypatch.setenv("GATEWAY_DATA_KEY", base64.b64encode(b"d" * 32).decode())
    monkeypatch.setenv("GATEWAY_DATA_KEY_ID", "2026-12")
    for name, value in KAFKA.items():
        monkeypatch.setenv(name, value)
    settings = GatewaySettings()
    assert settings.jwt_key() == "k" * 64 and settings.audit_key() == b"a" * 64
    assert "k" * 64 not in repr(settings)  # secrets stay out of logs


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_tests_need_no_secrets(environment: str) -> None:
    settings = GatewaySettings(database_url="postgresql+asyncpg://x@db/g", CANBAO_ENV=environment)
    assert settings.jwt_key() == DEVELOPMENT_JWT_KEY


# --- CANBAO_ENV unset: production -------------------------------------------------------------

KEY = base64.b64encode(b"k" * 32).decode()  # a well-formed key that is not a development one
# Each service that talks to Kafka logs in as its own KafkaUser (deploy/README.md "Kafka
# authentication and ACLs").
KAFKA_LOGIN = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "canbao-service",
               "KAFKA_SASL_PASSWORD": "scram-secret"}  # fmt: skip
REAL: dict[str, dict[str, str]] = {
    "gateway": {"GATEWAY_DATABASE_URL": "postgresql+asyncpg://gateway_app@db/gateway",
                "GATEWAY_JWT_SIGNING_KEY": "k" * 64, "GATEWAY_AUDIT_INDEX_KEY": "a" * 64,
                "GATEWAY_SERVICE_TOKEN_PRIVATE_KEY": SERVICE_PRIVATE_KEY,
                "GATEWAY_DATA_KEY": KEY, "GATEWAY_DATA_KEY_ID": "2026-12", **PUBLIC_KEY,
                **KAFKA_LOGIN},
    "identity": {"IDENTITY_DATABASE_URL": "postgresql+asyncpg://identity_app@db/identity",
                 "IDENTITY_DATA_KEY": KEY, "IDENTITY_DATA_KEY_ID": "2026-11",
                 "IDENTITY_BLIND_INDEX_KEY": KEY, **PUBLIC_KEY, **KAFKA_LOGIN},
    "survey": {"SURVEY_DATABASE_URL": "postgresql+asyncpg://survey_app@db/survey",
               "SURVEY_DATA_KEY": KEY, "SURVEY_DATA_KEY_ID": "2026-11", **PUBLIC_KEY,
               **KAFKA_LOGIN},
    "matching": {"MATCHING_DATABASE_URL": "postgresql+asyncpg://matching_app@db/matching",
                 **PUBLIC_KEY, **KAFKA_LOGIN},
    "reporting": {"REPORTING_DATABASE_URL": "postgresql+asyncpg://reporting_app@db/reporting",
                  **PUBLIC_KEY, **KAFKA_LOGIN},
}  # fmt: skip
SETTINGS: dict[str, type[ServiceSettings]] = {
    "gateway": GatewaySettings, "identity": IdentitySettings, "survey": SurveySettings,
    "matching": MatchingSettings, "reporting": REPORTING.settings,
}  # fmt: skip


@pytest.fixture
def nothing_configured(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment that says nothing: no CANBAO_ENV, no service variable (the test suite
    itself runs with CANBAO_ENV=test, tests/conftest.py)."""
    for name in list(os.environ):
        if name == "CANBAO_ENV" or name.split("_", 1)[0].lower() in (*SETTINGS, "kafka"):
            monkeypatch.delenv(name)
    return monkeypatch


def without(service: str, *names: str) -> dict[str, str]:
    return {k: v for k, v in REAL[service].items() if k not in names}


@pytest.mark.parametrize(
    ("service", "given", "missing"),
    [
        ("gateway", without("gateway", "GATEWAY_JWT_SIGNING_KEY"), "GATEWAY_JWT_SIGNING_KEY"),
        ("gateway", without("gateway", "GATEWAY_AUDIT_INDEX_KEY"), "GATEWAY_AUDIT_INDEX_KEY"),
        ("gateway", without("gateway", "GATEWAY_DATABASE_URL"), "GATEWAY_DATABASE_URL"),
        ("gateway", without("gateway", "GATEWAY_DATA_KEY"), "GATEWAY_DATA_KEY"),
        ("identity", without("identity", "IDENTITY_DATA_KEY"), "IDENTITY_DATA_KEY"),
        ("identity", without("identity", "IDENTITY_DATA_KEY_ID"), "IDENTITY_DATA_KEY_ID"),
        ("identity", without("identity", "IDENTITY_BLIND_INDEX_KEY"), "IDENTITY_BLIND_INDEX_KEY"),
        ("identity", without("identity", "IDENTITY_DATABASE_URL"), "IDENTITY_DATABASE_URL"),
        ("survey", without("survey", "SURVEY_DATA_KEY"), "SURVEY_DATA_KEY"),
        ("survey", without("survey", "SURVEY_DATA_KEY_ID"), "SURVEY_DATA_KEY_ID"),
        ("survey", without("survey", "SURVEY_DATABASE_URL"), "SURVEY_DATABASE_URL"),
        (
            "gateway",
            without("gateway", "GATEWAY_SERVICE_TOKEN_PRIVATE_KEY"),
            "GATEWAY_SERVICE_TOKEN_PRIVATE_KEY",
        ),
        (
            "matching",
            without("matching", "CANBAO_SERVICE_TOKEN_PUBLIC_KEY"),
            "CANBAO_SERVICE_TOKEN_PUBLIC_KEY",
        ),
        (
            "survey",
            without("survey", "CANBAO_SERVICE_TOKEN_PUBLIC_KEY"),
            "CANBAO_SERVICE_TOKEN_PUBLIC_KEY",
        ),
        *(
            (service, without(service, "KAFKA_SECURITY_PROTOCOL"), "KAFKA_SECURITY_PROTOCOL")
            for service in ("identity", "matching", "survey", "reporting")
        ),
        ("matching", KAFKA_LOGIN, "MATCHING_DATABASE_URL"),
        ("reporting", KAFKA_LOGIN, "REPORTING_DATABASE_URL"),
    ],
)
def test_without_canbao_env_a_service_refuses_to_start_without_its_secrets(
    nothing_configured: pytest.MonkeyPatch, service: str, given: dict[str, str], missing: str
) -> None:
    for name, value in given.items():
        nothing_configured.setenv(name, value)
    with pytest.raises(pydantic.ValidationError, match=f"{missing} must be set in production"):
        SETTINGS[service]()


@pytest.mark.parametrize("service", list(SETTINGS))
def test_without_canbao_env_a_service_given_its_secrets_runs_as_production(
    nothing_configured: pytest.MonkeyPatch, service: str
) -> None:
    for name, value in REAL[service].items():
        nothing_configured.setenv(name, value)
    settings: Any = SETTINGS[service]()
    assert settings.environment == "production"


def test_without_canbao_env_the_gateway_has_no_demo_accounts_and_no_development_key(
    nothing_configured: pytest.MonkeyPatch,
) -> None:
    for name, value in REAL["gateway"].items():
        nothing_configured.setenv(name, value)
    settings = GatewaySettings()
    assert settings.jwt_key() != DEVELOPMENT_JWT_KEY
    assert settings.environment != "development"  # demo accounts: development only (app.py)


@pytest.mark.parametrize("service", list(SETTINGS))
def test_without_canbao_env_the_migration_refuses_to_run_as_the_services_own_login(
    nothing_configured: pytest.MonkeyPatch, service: str
) -> None:
    """The service's login must not own its tables (canbao_platform.migrate): production names
    the owner in <SERVICE>_MIGRATION_DATABASE_URL, a role other than the service's."""
    prefix = service.upper()
    app_url = REAL[service][f"{prefix}_DATABASE_URL"]
    nothing_configured.setenv(f"{prefix}_DATABASE_URL", app_url)
    definition = service_definition(service)
    with pytest.raises(pydantic.ValidationError, match=f"{prefix}_MIGRATION_DATABASE_URL must"):
        migration_settings(definition)
    nothing_configured.setenv(f"{prefix}_MIGRATION_DATABASE_URL", app_url)  # the same role
    with pytest.raises(pydantic.ValidationError, match=f"{prefix}_MIGRATION_DATABASE_URL must"):
        migration_settings(definition)
    owner_url = f"postgresql+asyncpg://{service}:secret@db/{service}"
    nothing_configured.setenv(f"{prefix}_MIGRATION_DATABASE_URL", owner_url)
    settings = migration_settings(definition)
    assert (settings.owner_url, settings.application_role) == (owner_url, f"{service}_app")


@pytest.mark.parametrize("service", ["identity", "matching", "survey", "reporting"])
def test_without_canbao_env_kafka_without_a_login_is_asked_for_explicitly(
    nothing_configured: pytest.MonkeyPatch, service: str
) -> None:
    """An unauthenticated Kafka connection lets its pod write any topic: production takes one
    only when told so, never as the default."""
    for name, value in without(service, *KAFKA_LOGIN).items():
        nothing_configured.setenv(name, value)
    with pytest.raises(pydantic.ValidationError, match="KAFKA_SECURITY_PROTOCOL must be set"):
        SETTINGS[service]()
    nothing_configured.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(pydantic.ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PA"):
        SETTINGS[service]()
    nothing_configured.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert SETTINGS[service]().kafka_client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("service", ["identity", "matching", "survey", "reporting"])
def test_without_canbao_env_a_service_logs_in_to_kafka(
    nothing_configured: pytest.MonkeyPatch, service: str
) -> None:
    for name, value in REAL[service].items():
        nothing_configured.setenv(name, value)
    options = SETTINGS[service]().kafka_client_options()
    assert (options["security_protocol"], options["sasl_mechanism"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert options["sasl_plain_username"] == "canbao-service"
