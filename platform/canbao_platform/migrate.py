"""Prestart step: `python -m canbao_platform.migrate <service>` brings the service's database to
the newest schema (runtime tables + the service's own) as the owner of the schema, then grants the
service's own login what it needs and nothing more (db.grant_application_role).

Two URLs: `<SERVICE>_MIGRATION_DATABASE_URL`, the owner's, that only this step is given; and
`<SERVICE>_DATABASE_URL`, the service's, of which this step uses the user name only (the role to
grant to, so it is always the role the service logs in as). Without a migration URL the service's
own is used and nothing is granted: one role for everything, good for development only; in
production this step refuses that.

It reads these settings and nothing else: the migration container is given the database, not the
service's keys, and in production the service's full settings refuse to load without them."""

from __future__ import annotations

import argparse
import importlib
from typing import Self

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import make_url

from canbao_platform.db import migrate
from canbao_platform.service import ServiceDefinition
from canbao_platform.settings import ServiceSettings


def service_definition(service: str) -> ServiceDefinition:
    """The `SERVICE` of `canbao_<service>.app` (looked up by name: platform never imports a
    service statically)."""
    module = importlib.import_module(f"canbao_{service}.app")
    definition: ServiceDefinition = module.SERVICE
    return definition


class MigrationSettings(ServiceSettings):
    """What the migration step reads (subclassed per service for the prefix)."""

    serves_internal_api = False
    uses_kafka = False  # the migration step touches only the database
    migration_database_url: str | None = None

    @property
    def owner_url(self) -> str:
        return self.migration_database_url or self.database_url

    @property
    def application_role(self) -> str | None:
        """The service's login, when it is not the owner (None: one role for everything)."""
        application = make_url(self.database_url).username
        owner = make_url(self.owner_url).username
        return application if application != owner else None

    @model_validator(mode="after")
    def _separate_roles_in_production(self) -> Self:
        if self.environment == "production" and self.application_role is None:
            prefix = self.model_config.get("env_prefix", "")
            raise ValueError(
                f"{prefix}MIGRATION_DATABASE_URL must be set in production, as the owner of the "
                f"schema, and {prefix}DATABASE_URL must log in as another role (the service's)"
            )
        return self


def migration_settings(definition: ServiceDefinition) -> MigrationSettings:
    """The service's database settings, read as its settings read them (their prefix and their
    default), plus the owner's URL."""
    service_settings = definition.settings

    class Settings(MigrationSettings):
        model_config = SettingsConfigDict(
            env_prefix=service_settings.model_config.get("env_prefix", ""), extra="ignore"
        )
        database_url: str = service_settings.model_fields["database_url"].default

    return Settings()


def database_url(definition: ServiceDefinition) -> str:
    """The URL the migration runs on: the owner's."""
    return migration_settings(definition).owner_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", help="identity, matching, survey, reporting or gateway")
    args = parser.parse_args(argv)
    definition = service_definition(args.service)
    settings = migration_settings(definition)
    role = settings.application_role
    migrate(
        settings.owner_url,
        definition.migrations,
        application_role=role,
        append_only=definition.append_only,
    )
    granted = f", {role} granted its privileges" if role else ""
    print(f"{args.service}: database migrated{granted}")


if __name__ == "__main__":
    main()
