"""The one place settings are read: environment variables, through pydantic-settings.

Each service subclasses `ServiceSettings` with its own prefix, so its database is e.g.
`IDENTITY_DATABASE_URL`; what every service shares (`KAFKA_BOOTSTRAP_SERVERS`, `CANBAO_ENV`) is
unprefixed. Defaults point at the local stack (`make run`).

Fail closed: `CANBAO_ENV` unset means production, where the services refuse to start on the local
stack's database, on the public development keys, or on a Kafka connection nobody chose (an
unauthenticated one must be asked for: `KAFKA_SECURITY_PROTOCOL=PLAINTEXT`). Only the local
stack (`CANBAO_ENV=development`: demo accounts) and the tests (`CANBAO_ENV=test`) say otherwise,
explicitly.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any, ClassVar, Final, Literal, Self

from aiokafka.helpers import create_ssl_context
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from canbao_contracts.topics import ALL_TOPICS, CleanupPolicy
from canbao_platform.sealing import Sealer, retired_keys
from canbao_platform.service_tokens import DEVELOPMENT_PUBLIC_KEY, public_key

LOCAL_POSTGRES = "postgresql+asyncpg://canbao@127.0.0.1:54320"
DATA_KEY_BYTES: Final = 32  # AES-256-GCM


class KafkaSettings(BaseSettings):
    """Where Kafka is and how a client proves who it is: what every service shares, and all an
    operator's Kafka tool (canbao_platform.recovery) reads.

    SASL_SSL with SCRAM is what a Strimzi listener with `authentication: scram-sha-512` speaks
    (deploy/README.md "Kafka authentication and ACLs"): each service logs in as its own
    KafkaUser, whose ACLs say which topics it may write and read."""

    model_config = SettingsConfigDict(extra="ignore")
    # Whether this process talks to Kafka at all (not the gateway, not the migration step): only
    # then must production say how.
    uses_kafka: ClassVar[bool] = True

    environment: Literal["development", "test", "production"] = Field(
        "production", validation_alias=AliasChoices("CANBAO_ENV")
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=AliasChoices("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        "SCRAM-SHA-512", validation_alias=AliasChoices("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(
        None, validation_alias=AliasChoices("KAFKA_SASL_USERNAME")
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("KAFKA_SASL_PASSWORD")
    )
    kafka_ssl_cafile: str | None = Field(None, validation_alias=AliasChoices("KAFKA_SSL_CAFILE"))
    """The CA that signed the brokers' certificates (Strimzi's cluster CA, `ca.crt`); unset:
    the system's CAs."""

    @model_validator(mode="after")
    def _kafka_security(self) -> Self:
        """SASL needs a login; production says how it connects, so that an unauthenticated
        connection (any pod could then write any topic) is a choice, never a default."""
        if not self.talks_to_kafka:
            return self
        if self.kafka_security_protocol == "SASL_SSL" and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set with "
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        if self.environment == "production" and (
            "kafka_security_protocol" not in self.model_fields_set
        ):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL must be set in production: SASL_SSL (each service its "
                "own login), or PLAINTEXT knowingly, on a private network only"
            )
        return self

    @property
    def talks_to_kafka(self) -> bool:
        """Whether this process connects to Kafka (its login is then required in production):
        the service's `uses_kafka`, unless its settings say more."""
        return self.uses_kafka

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (producer, consumer, admin). They hold
        the password in clear: pass them on, never log them."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_security_protocol == "SASL_SSL":
            assert self.kafka_sasl_password is not None  # the validator saw to it
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password.get_secret_value(),
            }
        return options


class ServiceSettings(KafkaSettings):
    model_config = SettingsConfigDict(extra="ignore")
    # Whether this process answers internal API calls (and so needs the gateway's public key);
    # not the migration step, which serves nothing.
    serves_internal_api: ClassVar[bool] = True

    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    service_token_public_key: str = Field(
        DEVELOPMENT_PUBLIC_KEY, validation_alias=AliasChoices("CANBAO_SERVICE_TOKEN_PUBLIC_KEY")
    )
    """The gateway's Ed25519 public key (PEM): internal APIs accept only calls it signed
    (service_tokens.py)."""
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
    def _kept_longer_than_any_retention(self) -> Self:
        if self.processed_messages_kept <= longest_retention():
            raise ValueError(
                "CANBAO_PROCESSED_MESSAGES_KEPT_DAYS must exceed the longest topic retention "
                f"({longest_retention().days} days)"
            )
        return self

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


class DataKeySettings(BaseSettings):
    """The data key of a service that keeps personal data sealed (canbao_platform.sealing;
    architecture.md: "encrypted the same way as identity"): `<SERVICE>_DATA_KEY`, 32 bytes in
    base64 (AES-256-GCM), `<SERVICE>_DATA_KEY_ID` naming it (stored beside every ciphertext),
    and `<SERVICE>_RETIRED_DATA_KEYS` (`id:base64,id:base64`) still to be read after a rotation.
    Without them the subclass's public development key serves development and test only;
    production refuses to start without a key, or with that one.

    A mixin of the service's settings: `class SurveySettings(DataKeySettings, ServiceSettings)`,
    with `development_data_key` set."""

    development_data_key: ClassVar[str]
    development_data_key_id: ClassVar[str] = "dev-1"

    data_key: SecretStr | None = None
    data_key_id: str | None = None
    retired_data_keys: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _data_keys_for_the_environment(self) -> Self:
        prefix = str(self.model_config.get("env_prefix", "")).upper()
        production = getattr(self, "environment", "production") == "production"
        if self.data_key is None or self.data_key_id is None:
            if production:
                missing = [
                    f"{prefix}{name}"
                    for name, value in (
                        ("DATA_KEY", self.data_key),
                        ("DATA_KEY_ID", self.data_key_id),
                    )
                    if value is None
                ]
                raise ValueError(f"{' and '.join(missing)} must be set in production")
            self.data_key = SecretStr(self.development_data_key)
            self.data_key_id = self.development_data_key_id
        if production and self.data_key.get_secret_value() == self.development_data_key:
            raise ValueError(
                f"{prefix}DATA_KEY is the public development key: refused in production"
            )
        if production and self.data_key_id == self.development_data_key_id:
            # Each row names its key: a real key under the development id would collide.
            raise ValueError(
                f"{prefix}DATA_KEY_ID is the development key's id: refused in production"
            )
        for key_id, key in self.data_keys().items():
            if len(key) != DATA_KEY_BYTES:
                raise ValueError(f"the data key {key_id!r} must be 32 bytes, base64-encoded")
        return self

    def sealer(self) -> Sealer:
        """What seals new documents (the current key) and opens old ones (any of the keys)."""
        assert self.data_key_id is not None  # set by the validator
        return Sealer(self.data_key_id, self.data_keys())

    def data_keys(self) -> dict[str, bytes]:
        """Key id → AES key: the retired ones (for reading old rows) and the current one."""
        prefix = str(self.model_config.get("env_prefix", "")).upper()
        keys = retired_keys(f"{prefix}RETIRED_DATA_KEYS", self.retired_data_keys.get_secret_value())
        assert self.data_key is not None and self.data_key_id is not None
        try:
            keys[self.data_key_id] = base64.b64decode(
                self.data_key.get_secret_value(), validate=True
            )
        except ValueError:
            raise ValueError(f"{prefix}DATA_KEY is not valid base64") from None
        return keys
