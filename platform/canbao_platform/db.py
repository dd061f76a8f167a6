"""Each service's own PostgreSQL database: engine, sessions, migrations.

Migrations are Alembic with two version locations: the runtime's tables (idempotency records,
outbox, dead letters; branch `runtime`, in this package) and the service's own (branch = service
name, in `canbao_<service>/migrations`). `alembic upgrade heads` applies both.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    """An async engine and its session factory. Sessions never commit by themselves: the unit
    of work (a consumed batch, a request) commits once, so effects and records land together."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


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


def migrate(url: str, service_migrations: Path | None) -> None:
    """Bring the database to the newest schema (blocking; run before the service starts)."""
    command.upgrade(alembic_config(url, service_migrations), "heads")


async def migrate_async(url: str, service_migrations: Path | None) -> None:
    # Alembic's env.py runs its own event loop, so it must not run on ours.
    await asyncio.to_thread(migrate, url, service_migrations)
