"""The one place settings are read: environment variables, through pydantic-settings.

Each service subclasses `ServiceSettings` with its own prefix, so its database is e.g.
`IDENTITY_DATABASE_URL`; what every service shares (`KAFKA_BOOTSTRAP_SERVERS`, `CANBAO_ENV`) is
unprefixed. Defaults point at the local stack (`make run`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_POSTGRES = "postgresql+asyncpg://canbao@127.0.0.1:54320"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    environment: Literal["development", "test", "production"] = Field(
        "development", validation_alias=AliasChoices("CANBAO_ENV")
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    database_url: str


def service_settings(service: str) -> type[ServiceSettings]:
    """Settings class of `service`: `<SERVICE>_DATABASE_URL`, default its local database."""

    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix=f"{service.upper()}_", extra="ignore")
        database_url: str = f"{LOCAL_POSTGRES}/{service}"

    Settings.__name__ = f"{service.capitalize()}Settings"
    return Settings
