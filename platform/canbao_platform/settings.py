"""The one place settings are read: environment variables, through pydantic-settings.

Each service subclasses `ServiceSettings` with its own prefix, so its database is e.g.
`IDENTITY_DATABASE_URL`; what every service shares (`KAFKA_BOOTSTRAP_SERVERS`, `CANBAO_ENV`) is
unprefixed. Defaults point at the local stack (`make run`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from canbao_contracts.topics import ALL_TOPICS, CleanupPolicy

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
    # CANBAO_PROCESSED_MESSAGES_KEPT_DAYS: how long a consumer remembers what it applied
    # (messaging/pruning.py). Longer than any non-compacted topic keeps a message, or a
    # redelivery could find its record gone and apply twice: Kafka deletes a whole segment only
    # once its newest message is past the retention, so a message may outlive it by a segment's
    # age (segment.ms, 7 days by default); 90 days are three times the longest (registry.facts).
    processed_messages_kept_days: int = Field(
        90, validation_alias=AliasChoices("CANBAO_PROCESSED_MESSAGES_KEPT_DAYS")
    )

    @property
    def processed_messages_kept(self) -> timedelta:
        return timedelta(days=self.processed_messages_kept_days)

    @model_validator(mode="after")
    def _kept_longer_than_any_retention(self) -> ServiceSettings:
        if self.processed_messages_kept <= longest_retention():
            raise ValueError(
                "CANBAO_PROCESSED_MESSAGES_KEPT_DAYS must exceed the longest topic retention "
                f"({longest_retention().days} days)"
            )
        return self


def longest_retention() -> timedelta:
    """The longest time a non-compacted contract topic keeps a message (those kept for ever
    are dead letters, replayed as new messages)."""
    return max(
        topic.retention
        for topic in ALL_TOPICS
        if topic.retention is not None and topic.cleanup_policy is CleanupPolicy.DELETE
    )


def service_settings(service: str) -> type[ServiceSettings]:
    """Settings class of `service`: `<SERVICE>_DATABASE_URL`, default its local database."""

    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix=f"{service.upper()}_", extra="ignore")
        database_url: str = f"{LOCAL_POSTGRES}/{service}"

    Settings.__name__ = f"{service.capitalize()}Settings"
    return Settings
