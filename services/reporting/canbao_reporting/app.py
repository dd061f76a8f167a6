"""The reporting service: the quarterly basic-data table, coverage, and the people behind every
number (not built yet: health and readiness only)."""

from pathlib import Path

from fastapi import FastAPI

from canbao_platform.service import ServiceDefinition, create_app
from canbao_platform.settings import service_settings

SERVICE = ServiceDefinition(
    name="reporting",
    settings=service_settings("reporting"),
    migrations=Path(__file__).parent / "migrations",
    description="The quarterly basic-data table, coverage, and the people behind every number.",
)


def create() -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_reporting.app:create`)."""
    return create_app(SERVICE)
