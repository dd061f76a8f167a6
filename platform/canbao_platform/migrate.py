"""Prestart step: `python -m canbao_platform.migrate <service>` brings the service's database to
the newest schema (runtime tables + the service's own), using the service's settings."""

from __future__ import annotations

import argparse
import importlib

from canbao_platform.db import migrate
from canbao_platform.service import ServiceDefinition


def service_definition(service: str) -> ServiceDefinition:
    """The `SERVICE` of `canbao_<service>.app` (looked up by name: platform never imports a
    service statically)."""
    module = importlib.import_module(f"canbao_{service}.app")
    definition: ServiceDefinition = module.SERVICE
    return definition


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", help="identity, matching, survey, reporting or gateway")
    args = parser.parse_args(argv)
    definition = service_definition(args.service)
    migrate(definition.settings().database_url, definition.migrations)
    print(f"{args.service}: database migrated")


if __name__ == "__main__":
    main()
