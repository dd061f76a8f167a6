"""Staff accounts: Argon2id password hashes, checking a login, and the demo accounts of the
local stack.

Hashing costs tens of milliseconds of CPU on purpose, so it runs in a worker thread and never
blocks the event loop that serves the popups."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_gateway.staff import Role, Staff, normalise_scope
from canbao_gateway.tables import staff_accounts
from canbao_platform.db import Database

# argon2-cffi's defaults: Argon2id with RFC 9106's second recommended parameter set.
_hasher: Final = PasswordHasher()
# What one hash or check allocates (KiB): login_gate.py sizes its slots by it.
HASH_MEMORY_KIB: Final = _hasher.memory_cost

# api.md: the local stack (and only it) has these, password `demo`, for the whole demo province
# (Guizhou, 52): one per role, a second surveyor, for a survey team of two (api.md "Survey";
# 44号 §16: teams of 2-3), and a second platform reviewer, for the 初审 of a change another
# platform member recorded (maker-checker). `demo-reviewer`, `demo-city` and `demo-auditor` are
# ours (staff.Role).
DEMO_PASSWORD: Final = "demo"
DEMO_SCOPE: Final = "52"
DEMO_ACCOUNTS: Final = {f"demo-{role.value}": role for role in Role} | {
    "demo-surveyor2": Role.SURVEYOR,
    "demo-platform2": Role.PLATFORM,
}


@dataclass(frozen=True, slots=True)
class Account:
    """A member of staff who logged in, and their account's token version: a token carries it,
    and a change to the account (disabled, new password, role or scope) raises it in the
    database (migration gateway_0002), which makes every token issued before unusable."""

    staff: Staff
    token_version: int


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def create_account(
    connection: AsyncConnection, *, username: str, password: str, role: Role, scope: str
) -> Staff:
    """Add an account (in the caller's transaction); an existing username is left unchanged."""
    staff = Staff(username=username, role=role, scope=normalise_scope(scope))
    row = {
        "username": username,
        "password_hash": await hash_password(password),
        "role": role.value,
        "scope": staff.scope,
    }
    await connection.execute(
        insert(staff_accounts).values(row).on_conflict_do_nothing(index_elements=["username"])
    )
    return staff


async def authenticate(
    connection: AsyncConnection, *, username: str, password: str
) -> Account | None:
    """The active account this is, or None for any kind of wrong login. Upgrades the stored
    hash when the hasher's parameters have grown (caller's transaction; that counts as a new
    password: the account's older tokens stop working)."""
    query = sa.select(staff_accounts).where(staff_accounts.c.username == username)
    row = (await connection.execute(query)).first()
    stored = row.password_hash if row is not None else dummy_hash()
    if not await asyncio.to_thread(verify, stored, password) or row is None or not row.active:
        return None
    version: int = row.token_version
    if _hasher.check_needs_rehash(stored):
        version = await connection.scalar(
            sa.update(staff_accounts)
            .where(staff_accounts.c.username == username)
            .values(password_hash=await hash_password(password))
            .returning(staff_accounts.c.token_version)
        )
    staff = Staff(username=row.username, role=Role(row.role), scope=row.scope)
    return Account(staff=staff, token_version=version)


async def token_version(database: Database, username: str) -> int | None:
    """The current token version of `username`'s account, None unless it is active: one lookup
    by primary key, in its own implicit transaction (one round trip), on every request."""
    query = sa.select(staff_accounts.c.token_version).where(
        staff_accounts.c.username == username, staff_accounts.c.active
    )
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        version: int | None = await connection.scalar(query)
    return version


async def create_demo_accounts(connection: AsyncConnection) -> None:
    """The demo accounts of api.md (caller's transaction). Only for CANBAO_ENV=development."""
    for username, role in DEMO_ACCOUNTS.items():
        await create_account(
            connection, username=username, password=DEMO_PASSWORD, role=role, scope=DEMO_SCOPE
        )


@functools.cache
def dummy_hash() -> str:
    """Checked when the username is unknown, so that a wrong username costs as long as a wrong
    password and response times do not tell which accounts exist."""
    return _hasher.hash("no such account")


def verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
