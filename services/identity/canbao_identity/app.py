"""The identity service: One person per social security number, from every source: resolution, golden record, gaps; the only holder of names and numbers in clear."""

from pathlib import Path

from fastapi import FastAPI

from canbao_platform.service import ServiceDefinition, create_app
from canbao_platform.settings import service_settings

SERVICE = ServiceDefinition(
    name="identity",
    settings=service_settings("identity"),
    migrations=Path(__file__).parent / "migrations",
    description="One person per social security number, from every source: resolution, golden record, gaps; the only holder of names and numbers in clear.",
)


def create() -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_identity.app:create`)."""
    return create_app(SERVICE)
