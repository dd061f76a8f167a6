"""Each service's own PostgreSQL database: engine, sessions, migrations.

Migrations are Alembic with two version locations: the runtime's tables (idempotency records,
outbox, dead letters; branch `runtime`, in this package) and the service's own (branch = service
name, in `canbao_<service>/migrations`). `alembic upgrade heads` applies both.

Two roles per database: the owner runs the migrations and owns every table, trigger and function;
the service connects as an application role that may only read and write rows. The owner's
privileges (DROP, ALTER, DISABLE TRIGGER, TRUNCATE, CREATE) are what would undo an append-only
table such as the gateway's audit log (domain.md §2.5), so the process that writes the log must
not hold them. `grant_application_role` gives the application role what it needs, after every
migration and for the tables later migrations create (default privileges).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import pydantic_core
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from canbao_platform import bulk

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
# Several replicas of a service start at once (Kubernetes init containers): the first to take
# this lock migrates and grants, the others wait and then find nothing left to do.
MIGRATION_LOCK = 0x63616E62  # "canb"
# Rows only: no TRUNCATE, REFERENCES or TRIGGER, and no ownership, so no DDL.
APPLICATION_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


# SQLSTATEs of a transaction that lost a race, not of its statements: serialization failure and
# deadlock detected. The same transaction, run again, succeeds.
CONFLICT_SQLSTATES = ("40001", "40P01")
CONFLICT_ATTEMPTS = 5

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """An async engine and its session factory. Sessions never commit by themselves: the unit
    of work (a consumed batch, a request) commits once, so effects and records land together."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            # jsonb values read and written by pydantic's JSON parser and encoder, paid per row of
            # every batch: 2.5 µs instead of 3.2 to read a fact, 1 instead of 11 to write a row.
            json_deserializer=pydantic_core.from_json,
            json_serializer=bulk.to_json,
        )
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def error_chain(error: BaseException) -> list[BaseException]:
    """The error and what it wraps, outermost first: SQLAlchemy wraps the driver's error
    (`.orig`), which wraps asyncpg's, which may wrap the socket's."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return chain


def sqlstate(error: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE for `error`, found anywhere in its chain; None when it is not a
    server's answer (a refused connection, a timeout)."""
    for cause in error_chain(error):
        if isinstance(code := getattr(cause, "sqlstate", None), str):
            return code
    return None


def lost_a_race(error: BaseException) -> bool:
    """Whether `error` is a conflict between transactions rather than a fault of the
    statement."""
    return sqlstate(error) in CONFLICT_SQLSTATES


def retried_on_conflict(
    transaction: Callable[P, Awaitable[T]],
) -> Callable[P, Awaitable[T]]:
    """Run `transaction` (a function that opens, writes and commits one transaction of its own)
    again when PostgreSQL aborts it for a deadlock or a serialization failure, up to
    `CONFLICT_ATTEMPTS` times with a short jittered pause. A request that writes rows a consumer
    writes too (a survey task and the verdicts that update it) can deadlock with the consumer's
    batch; the consumer retries its batch, and the request, its rollback complete, retries too,
    so the user never sees the race. Only for functions whose whole effect is that one
    transaction: nothing outside it may have happened before the conflict."""

    @functools.wraps(transaction)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        attempt = 1
        while True:
            try:
                return await transaction(*args, **kwargs)
            except DBAPIError as error:
                if attempt == CONFLICT_ATTEMPTS or not lost_a_race(error):
                    raise
            await asyncio.sleep(random.uniform(0.01, 0.05 * 2**attempt))
            attempt += 1

    return run


def alembic_config(url: str, service_migrations: Path | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(RUNTIME_MIGRATIONS))
    locations = [str(RUNTIME_MIGRATIONS / "versions")]
    if service_migrations is not None and (service_migrations / "versions").is_dir():
        locations.append(str(service_migrations / "versions"))
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    config.attributes["database_url"] = url
    return config


def migrate(
    url: str,
    service_migrations: Path | None,
    *,
    application_role: str | None = None,
    append_only: Sequence[str] = (),
) -> None:
    """Bring the database to the newest schema (blocking; run before the service starts), as its
    owner (`url`); then, if named, grant `application_role` what the service needs."""
    command.upgrade(alembic_config(url, service_migrations), "heads")
    if application_role is not None:
        asyncio.run(grant_application_role(url, application_role, append_only=append_only))


async def migrate_async(
    url: str,
    service_migrations: Path | None,
    *,
    application_role: str | None = None,
    append_only: Sequence[str] = (),
) -> None:
    # Alembic's env.py runs its own event loop, so it must not run on ours.
    await asyncio.to_thread(
        migrate,
        url,
        service_migrations,
        application_role=application_role,
        append_only=append_only,
    )


async def grant_application_role(
    owner_url: str, role: str, *, append_only: Sequence[str] = ()
) -> None:
    """Least privilege for the service's own login, granted by the owner of the schema: rows of
    every table (append-only tables: read and add only), the sequences behind serial columns,
    and the same for every table the owner creates later. Whatever was granted before is taken
    back first, so the grants are exactly these after every migration."""
    engine = create_async_engine(owner_url)
    try:
        async with engine.begin() as connection:
            quote = connection.dialect.identifier_preparer.quote
            grantee = quote(role)
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
            statements = [
                f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {grantee}",
                f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {grantee}",
                f"REVOKE CREATE ON SCHEMA public FROM {grantee}",
                f"GRANT USAGE ON SCHEMA public TO {grantee}",
                f"GRANT {APPLICATION_TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA public TO {grantee}",
                f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {grantee}",
                *(f"REVOKE UPDATE, DELETE ON {quote(t)} FROM {grantee}" for t in append_only),
                # For the tables and sequences this owner creates in later migrations.
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                f"GRANT {APPLICATION_TABLE_PRIVILEGES} ON TABLES TO {grantee}",
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {grantee}",
            ]
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()
