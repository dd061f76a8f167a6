"""The matching service: Each person's status in the five insurances (domain.md §5), the flags, and who needs a survey."""

from pathlib import Path

from fastapi import FastAPI

from canbao_platform.service import ServiceDefinition, create_app
from canbao_platform.settings import service_settings

SERVICE = ServiceDefinition(
    name="matching",
    settings=service_settings("matching"),
    migrations=Path(__file__).parent / "migrations",
    description="Each person's status in the five insurances (domain.md §5), the flags, and who needs a survey.",
)


def create() -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_matching.app:create`)."""
    return create_app(SERVICE)
