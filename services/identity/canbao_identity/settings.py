"""IdentitySettings: the database and Kafka of every service, plus the keys that protect people's
data at rest (domain.md §2.5). Keys come from the environment as base64; development and test may
use the fixed dev keys below, production refuses them (and refuses to start without keys)."""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Self

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from canbao_platform.sealing import retired_keys
from canbao_platform.settings import LOCAL_POSTGRES, ServiceSettings

# Public, in the repository: only good for data that is not real.
DEV_DATA_KEY = base64.b64encode(b"canbao-dev-data-key-not-secret!!").decode()
DEV_DATA_KEY_ID = "dev-1"
DEV_BLIND_INDEX_KEY = base64.b64encode(b"canbao-dev-blind-index-key-0000!").decode()


class Role(StrEnum):
    """What one identity process does besides its HTTP API (app.py `components`)."""

    CONSUME = "consume"  # the cdc.* and registry.collections consumers: stage each change
    BUILD = "build"  # the golden-record builder: resolve what is staged, rebuild, publish


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")

    database_url: str = f"{LOCAL_POSTGRES}/identity"
    # Unset or empty: the development keys above, outside production only.
    data_key: str = Field("", validation_alias=AliasChoices("IDENTITY_DATA_KEY"))
    data_key_id: str = Field("", validation_alias=AliasChoices("IDENTITY_DATA_KEY_ID"))
    blind_index_key: str = Field("", validation_alias=AliasChoices("IDENTITY_BLIND_INDEX_KEY"))
    # Rotation: the keys that encrypted older rows, still needed to read them ("id:base64,…").
    # New rows are encrypted under data_key; each row names its key id.
    retired_data_keys: str = Field("", validation_alias=AliasChoices("IDENTITY_RETIRED_DATA_KEYS"))
    # One process does both (development, a county); a province runs consumers and builders as
    # separate deployments of the same image ("consume" / "build"), each on its own cores.
    roles: str = "consume,build"
    # A write-back pending longer than this is the disagreement that lasts: listed as overdue
    # for the agency (writeback_routes.py).
    writeback_overdue_days: int = Field(30, ge=1)

    @property
    def role_set(self) -> frozenset[Role]:
        return frozenset(Role(r.strip()) for r in self.roles.split(",") if r.strip())

    @model_validator(mode="after")
    def _known_roles(self) -> Self:
        try:
            if not self.role_set:
                raise ValueError
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise ValueError(f"IDENTITY_ROLES must name some of: {known}") from None
        return self

    @model_validator(mode="after")
    def _real_keys_in_production(self) -> Self:
        defaults = {"data_key": DEV_DATA_KEY, "data_key_id": DEV_DATA_KEY_ID,
                    "blind_index_key": DEV_BLIND_INDEX_KEY}  # fmt: skip
        for field, development in defaults.items():
            if not getattr(self, field):
                if self.environment == "production":
                    raise ValueError(f"IDENTITY_{field.upper()} must be set in production")
                setattr(self, field, development)
        for name, value, dev in (
            ("IDENTITY_DATA_KEY", self.data_key, DEV_DATA_KEY),
            ("IDENTITY_BLIND_INDEX_KEY", self.blind_index_key, DEV_BLIND_INDEX_KEY),
        ):
            if len(_decode(name, value)) != 32:
                raise ValueError(f"{name} must be 32 bytes, base64-encoded")
            if self.environment == "production" and value == dev:
                raise ValueError(f"{name} is the public development key: refused in production")
        if self.environment == "production" and self.data_key_id == DEV_DATA_KEY_ID:
            raise ValueError("IDENTITY_DATA_KEY_ID is the development key id")
        return self

    def retired_data_keys_bytes(self) -> dict[str, bytes]:
        return retired_keys("IDENTITY_RETIRED_DATA_KEYS", self.retired_data_keys)

    def data_key_bytes(self) -> bytes:
        return base64.b64decode(self.data_key)

    def blind_index_key_bytes(self) -> bytes:
        return base64.b64decode(self.blind_index_key)


def _decode(name: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError(f"{name} is not base64") from None
