"""Internal APIs answer only the gateway's signed calls (canbao_platform.service_tokens): every
route of identity, matching and survey under /internal refuses a call without a service token,
with a token for another service, signed with another key, or expired — 401 problem+json
`service-token-invalid`, before anything is read. Health probes stay open."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from canbao_identity.app import create as create_identity
from canbao_matching.app import create as create_matching
from canbao_platform import service_tokens
from canbao_platform.db import Database
from canbao_platform.service import Resources
from canbao_platform.settings import service_settings
from canbao_survey.app import create as create_survey
from canbao_survey.settings import SurveySettings
from tests.conftest import caller_headers

DEVELOPMENT_KEY = service_tokens.private_key(service_tokens.DEVELOPMENT_PRIVATE_KEY)
CLERK = service_tokens.Caller("clerk-7", "counter", "52")
UNREACHABLE = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # a refused call reads nothing


def app_of(service: str) -> FastAPI:
    """The service's application with resources but no lifespan: no database is reached."""
    if service == "identity":
        from canbao_identity.settings import IdentitySettings

        settings: Any = IdentitySettings(CANBAO_ENV="test", database_url=UNREACHABLE)
        app = create_identity(settings)
    elif service == "matching":
        settings = service_settings("matching")(CANBAO_ENV="test", database_url=UNREACHABLE)
        app = create_matching(settings)
    else:
        settings = SurveySettings(CANBAO_ENV="test", database_url=UNREACHABLE)
        app = create_survey(settings)
    app.state.resources = Resources(settings=settings, database=Database(UNREACHABLE))
    return app


def internal_calls(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every internal route in the app's OpenAPI document, path parameters
    filled in."""
    calls = []
    for template, operations in app.openapi()["paths"].items():
        if template.startswith("/internal"):
            path = re.sub(r"\{[^}]*id\}", "0b9a4c3e-6a55-4f0e-9a43-1f4c5d1e2a01", template)
            path = re.sub(r"\{[^}]*\}", "1", path)
            calls += [(method.upper(), path) for method in operations]
    return calls


def no_token(service: str) -> dict[str, str]:
    return {}


def another_service(service: str) -> dict[str, str]:
    return caller_headers("reporting" if service != "reporting" else "identity", CLERK)


def another_key(service: str) -> dict[str, str]:
    token = service_tokens.issue(CLERK, audience=service, key=Ed25519PrivateKey.generate())
    return {"Authorization": f"Bearer {token}"}


def expired(service: str) -> dict[str, str]:
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    token = service_tokens.issue(CLERK, audience=service, key=DEVELOPMENT_KEY, now=long_ago)
    return {"Authorization": f"Bearer {token}"}


def not_a_jwt(service: str) -> dict[str, str]:
    return {"Authorization": "Bearer clerk-7"}


@pytest.mark.parametrize("service", ["identity", "matching", "survey"])
@pytest.mark.parametrize(
    "credentials", [no_token, another_service, another_key, expired, not_a_jwt]
)
async def test_every_internal_route_refuses_a_call_the_gateway_did_not_sign(
    service: str, credentials: Callable[[str], dict[str, str]]
) -> None:
    app = app_of(service)
    calls = internal_calls(app)
    assert len(calls) >= 2, calls  # the table is the app's own routes, not a list kept by hand
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as client:
        for method, path in calls:
            response = await client.request(
                method, path, headers=credentials(service), json={"id_number": "1"}
            )
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "/problems/service-token-invalid"
        assert (await client.get("/healthz")).status_code == 200  # probes need no token


def test_a_token_names_its_caller_for_one_service_only() -> None:
    token = service_tokens.issue(CLERK, audience="identity", key=DEVELOPMENT_KEY)
    public = service_tokens.public_key(service_tokens.DEVELOPMENT_PUBLIC_KEY)
    assert service_tokens.verify(token, audience="identity", key=public) == CLERK
    with pytest.raises(service_tokens.CallerRejected):
        service_tokens.verify(token, audience="survey", key=public)


def test_production_refuses_the_development_key_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANBAO_ENV", "production")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")  # production asks for a choice
    with pytest.raises(ValueError, match="CANBAO_SERVICE_TOKEN_PUBLIC_KEY must be set"):
        service_settings("matching")(database_url=UNREACHABLE)
