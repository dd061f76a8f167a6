"""Prestart step: `python -m canbao_platform.migrate <service>` brings the service's database to
the newest schema (runtime tables + the service's own), at `<SERVICE>_DATABASE_URL`.

It reads that setting and nothing else: the migration container is given the database, not the
service's keys, and in production the service's full settings refuse to load without them."""

from __future__ import annotations

import argparse
import importlib

from pydantic_settings import SettingsConfigDict

from canbao_platform.db import migrate
from canbao_platform.service import ServiceDefinition
from canbao_platform.settings import ServiceSettings


def service_definition(service: str) -> ServiceDefinition:
    """The `SERVICE` of `canbao_<service>.app` (looked up by name: platform never imports a
    service statically)."""
    module = importlib.import_module(f"canbao_{service}.app")
    definition: ServiceDefinition = module.SERVICE
    return definition


def database_url(definition: ServiceDefinition) -> str:
    """The service's database URL, read as its settings read it (their prefix, their default)."""
    service_settings = definition.settings

    class DatabaseOnly(ServiceSettings):
        model_config = SettingsConfigDict(
            env_prefix=service_settings.model_config.get("env_prefix", ""), extra="ignore"
        )
        database_url: str = service_settings.model_fields["database_url"].default

    return DatabaseOnly().database_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", help="identity, matching, survey, reporting or gateway")
    args = parser.parse_args(argv)
    definition = service_definition(args.service)
    migrate(database_url(definition), definition.migrations)
    print(f"{args.service}: database migrated")


if __name__ == "__main__":
    main()
