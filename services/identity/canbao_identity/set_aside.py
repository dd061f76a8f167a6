"""`python -m canbao_identity.set_aside [--retry]`: the persons the golden-record builder set
aside (their rebuild failed for a reason that is not transient, builder.py), with the reason and
since when; `--retry` makes them all pending again once the cause is fixed (a release, a source
corrected), as `replay_dead_letters` does for the consumers' dead letters. Each stays listed
until a rebuild of theirs succeeds. Prints opaque person_ids and value-free reasons only."""

from __future__ import annotations

import argparse
import asyncio

from canbao_identity.app import SERVICE_NAME, protector_from
from canbao_identity.protection import Protector
from canbao_identity.settings import IdentitySettings
from canbao_identity.store import Store
from canbao_platform.db import Database
from canbao_platform.messaging import unit_of_work


async def report(database: Database, protector: Protector, *, retry: bool) -> list[str]:
    """The lines to print: one per set-aside person, then what `retry` did."""
    async with unit_of_work(database, service=SERVICE_NAME) as uow:
        store = Store(uow.session, protector)
        rows = await store.set_aside_persons()
        lines = [f"{row.person_id}  {row.set_aside_at.isoformat()}  {row.reason}" for row in rows]
        lines.append(f"{len(rows)} person(s) set aside")
        if retry:
            lines.append(f"{await store.retry_set_aside()} made pending again")
    return lines


async def _run(settings: IdentitySettings, *, retry: bool) -> list[str]:
    database = Database(settings.database_url, pool_size=1)
    try:
        return await report(database, protector_from(settings), retry=retry)
    finally:
        await database.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m canbao_identity.set_aside", description=__doc__
    )
    parser.add_argument("--retry", action="store_true", help="make every set-aside person pending")
    args = parser.parse_args(argv)
    for line in asyncio.run(_run(IdentitySettings(), retry=args.retry)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
