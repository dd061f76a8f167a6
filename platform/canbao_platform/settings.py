"""The one place settings are read: environment variables, through pydantic-settings.

Each service subclasses `ServiceSettings` with its own prefix, so its database is e.g.
`IDENTITY_DATABASE_URL`; what every service shares (`KAFKA_BOOTSTRAP_SERVERS`, `CANBAO_ENV`) is
unprefixed. Defaults point at the local stack (`make run`).

Fail closed: `CANBAO_ENV` unset means production, where the services refuse to start on the local
stack's database or on the public development keys. Only the local stack (`CANBAO_ENV=
development`: demo accounts) and the tests (`CANBAO_ENV=test`) say otherwise, explicitly.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from canbao_platform.service_tokens import DEVELOPMENT_PUBLIC_KEY, public_key

LOCAL_POSTGRES = "postgresql+asyncpg://canbao@127.0.0.1:54320"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")
    # Whether this process answers internal API calls (and so needs the gateway's public key);
    # not the migration step, which serves nothing.
    serves_internal_api: ClassVar[bool] = True

    environment: Literal["development", "test", "production"] = Field(
        "production", validation_alias=AliasChoices("CANBAO_ENV")
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    service_token_public_key: str = Field(
        DEVELOPMENT_PUBLIC_KEY, validation_alias=AliasChoices("CANBAO_SERVICE_TOKEN_PUBLIC_KEY")
    )
    """The gateway's Ed25519 public key (PEM): internal APIs accept only calls it signed
    (service_tokens.py)."""
    database_url: str

    @model_validator(mode="after")
    def _database_named_in_production(self) -> Self:
        """The default database is the local stack's: production must name its own."""
        if self.environment == "production" and "database_url" not in self.model_fields_set:
            prefix = self.model_config.get("env_prefix", "")
            raise ValueError(f"{prefix}DATABASE_URL must be set in production")
        return self

    @model_validator(mode="after")
    def _service_token_key(self) -> Self:
        """The development key pair is public (in the code): production names its own."""
        if not self.serves_internal_api:
            return self
        if self.environment == "production" and (
            self.service_token_public_key == DEVELOPMENT_PUBLIC_KEY
        ):
            raise ValueError("CANBAO_SERVICE_TOKEN_PUBLIC_KEY must be set in production")
        public_key(self.service_token_public_key)  # a readable Ed25519 key, or refuse to start
        return self

    def service_token_key(self) -> Ed25519PublicKey:
        return public_key(self.service_token_public_key)


def service_settings(service: str) -> type[ServiceSettings]:
    """Settings class of `service`: `<SERVICE>_DATABASE_URL`, default its local database."""

    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix=f"{service.upper()}_", extra="ignore")
        database_url: str = f"{LOCAL_POSTGRES}/{service}"

    Settings.__name__ = f"{service.capitalize()}Settings"
    return Settings
