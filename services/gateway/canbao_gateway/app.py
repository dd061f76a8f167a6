"""The gateway service: The public HTTP interface: staff login, roles, audit, counter popups, self-service, partners."""

from pathlib import Path

from fastapi import FastAPI

from canbao_platform.service import ServiceDefinition, create_app
from canbao_platform.settings import service_settings

SERVICE = ServiceDefinition(
    name="gateway",
    settings=service_settings("gateway"),
    migrations=Path(__file__).parent / "migrations",
    description="The public HTTP interface: staff login, roles, audit, counter popups, self-service, partners.",
)


def create() -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_gateway.app:create`)."""
    return create_app(SERVICE)
