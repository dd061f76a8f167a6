"""IdentitySettings: the database and Kafka of every service, plus the keys that protect people's
data at rest (domain.md §2.5): the data key of every sealing service
(canbao_platform.settings.DataKeySettings: `IDENTITY_DATA_KEY`, `IDENTITY_DATA_KEY_ID`,
`IDENTITY_RETIRED_DATA_KEYS`) and the blind-index key, `IDENTITY_BLIND_INDEX_KEY`. Development
and test may use the fixed dev keys below; production refuses them, and starts only with keys."""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import ClassVar, Final, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from canbao_identity.store import Settling
from canbao_platform.settings import LOCAL_POSTGRES, DataKeySettings, ServiceSettings

# Public, in the repository: only good for data that is not real.
DEV_DATA_KEY: Final = base64.b64encode(b"canbao-dev-data-key-not-secret!!").decode()
DEV_DATA_KEY_ID: Final = "dev-1"
DEV_BLIND_INDEX_KEY: Final = base64.b64encode(b"canbao-dev-blind-index-key-0000!").decode()
BLIND_INDEX_KEY_BYTES: Final = 32  # HMAC-SHA256


class Role(StrEnum):
    """What one identity process does besides its HTTP API (app.py `components`)."""

    CONSUME = "consume"  # the cdc.* and registry.collections consumers: stage each change
    BUILD = "build"  # the golden-record builder: resolve what is staged, rebuild, publish
    # The builder's rebuilds alone (never resolving): more cores for a first load's rebuilds
    # without more resolvers contending for the staged changes' shares (builder.py).
    REBUILD = "rebuild"


class IdentitySettings(DataKeySettings, ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")
    development_data_key: ClassVar[str] = DEV_DATA_KEY
    development_data_key_id: ClassVar[str] = DEV_DATA_KEY_ID

    database_url: str = f"{LOCAL_POSTGRES}/identity"
    # Unset: the development key above, outside production only.
    blind_index_key: SecretStr | None = None
    # One process does both (development, a county); a province runs consumers and builders as
    # separate deployments of the same image ("consume" / "build"), each on its own cores.
    roles: str = "consume,build"
    # Persons reached only by a snapshot's reads are rebuilt once it has been quiet this long, or
    # after waiting the most (builder.py, store.Settling): a province's first load may set the
    # latter to its expected duration, so each person is rebuilt about once.
    snapshot_quiet_s: float = Field(Settling.quiet_s, ge=0)
    snapshot_max_wait_s: float = Field(Settling.max_wait_s, ge=0)
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
    def _blind_index_key_for_the_environment(self) -> Self:
        production = self.environment == "production"
        if self.blind_index_key is None:
            if production:
                raise ValueError("IDENTITY_BLIND_INDEX_KEY must be set in production")
            self.blind_index_key = SecretStr(DEV_BLIND_INDEX_KEY)
        key = self.blind_index_key.get_secret_value()
        if production and key == DEV_BLIND_INDEX_KEY:
            raise ValueError(
                "IDENTITY_BLIND_INDEX_KEY is the public development key: refused in production"
            )
        if len(self.blind_index_key_bytes()) != BLIND_INDEX_KEY_BYTES:
            raise ValueError("IDENTITY_BLIND_INDEX_KEY must be 32 bytes, base64-encoded")
        return self

    def blind_index_key_bytes(self) -> bytes:
        assert self.blind_index_key is not None  # set by the validator
        try:
            return base64.b64decode(self.blind_index_key.get_secret_value(), validate=True)
        except ValueError:
            raise ValueError("IDENTITY_BLIND_INDEX_KEY is not valid base64") from None
