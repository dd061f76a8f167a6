"""The survey service: Every collection (counter, kiosk, mobile, household survey) and its review; survey lists, forms and community ledgers."""

from pathlib import Path

from fastapi import FastAPI

from canbao_platform.service import ServiceDefinition, create_app
from canbao_platform.settings import service_settings

SERVICE = ServiceDefinition(
    name="survey",
    settings=service_settings("survey"),
    migrations=Path(__file__).parent / "migrations",
    description="Every collection (counter, kiosk, mobile, household survey) and its review; survey lists, forms and community ledgers.",
)


def create() -> FastAPI:
    """The ASGI application (`uvicorn --factory canbao_survey.app:create`)."""
    return create_app(SERVICE)
