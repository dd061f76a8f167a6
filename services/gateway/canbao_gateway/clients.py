"""Clients that log in with OAuth2 client credentials (RFC 6749 §4.4): registered devices and
programs, not people. Today the self-service kiosks (自助一体机, api.md "Self-service"): a kiosk
has read the citizen's ID card chip and done its own face check, and the registry trusts the
registered device that did, never the person's word.

Secrets are Argon2id hashes, checked like staff passwords (accounts.py: in a worker thread, a
dummy hash for unknown ids so that timing tells nothing). A client's token version rises in the
database whenever it is disabled or gets a new secret (migration gateway_0003), which stops its
tokens, and a kiosk's citizens' sessions, at the next request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_gateway.accounts import dummy_hash, hash_password, verify
from canbao_gateway.staff import normalise_scope
from canbao_gateway.tables import clients
from canbao_platform.db import Database


class ClientKind(StrEnum):
    """What a client is; the role its tokens carry (the audit log's `role` column)."""

    KIOSK = "kiosk"  # a self-service kiosk: opens citizens' sessions after reading an ID card


# api.md: the local stack (and only it) creates the kiosk `demo-kiosk`, secret `demo`.
DEMO_KIOSK: Final = "demo-kiosk"
DEMO_SECRET: Final = "demo"
DEMO_REGION: Final = "52"


@dataclass(frozen=True, slots=True)
class Client:
    """A client as its token states it. `username`, `role` and `scope` make it an actor of the
    audit log and of internal calls, like a member of staff (staff.Actor)."""

    client_id: str
    kind: ClientKind
    region: str  # normalised GB/T 2260 prefix: where the device stands

    @property
    def username(self) -> str:
        return self.client_id

    @property
    def role(self) -> ClientKind:
        return self.kind

    @property
    def scope(self) -> str:
        return self.region


@dataclass(frozen=True, slots=True)
class Authenticated:
    client: Client
    token_version: int


async def register(
    connection: AsyncConnection, *, client_id: str, secret: str, kind: ClientKind, name: str,
    region: str,
) -> Client:  # fmt: skip
    """Add a client (caller's transaction); an existing client_id is left unchanged."""
    client = Client(client_id=client_id, kind=kind, region=normalise_scope(region))
    row = {"client_id": client_id, "secret_hash": await hash_password(secret), "kind": kind.value,
           "name": name, "region": client.region}  # fmt: skip
    await connection.execute(
        insert(clients).values(row).on_conflict_do_nothing(index_elements=["client_id"])
    )
    return client


async def authenticate(
    connection: AsyncConnection, *, client_id: str, secret: str
) -> Authenticated | None:
    """The active client these credentials are, or None for any kind of wrong credentials."""
    row = (await connection.execute(sa.select(clients).where(
        clients.c.client_id == client_id))).first()  # fmt: skip
    stored = row.secret_hash if row is not None else dummy_hash()
    if not await asyncio.to_thread(verify, stored, secret) or row is None or not row.active:
        return None
    client = Client(client_id=row.client_id, kind=ClientKind(row.kind), region=row.region)
    return Authenticated(client=client, token_version=row.token_version)


async def token_version(database: Database, client_id: str) -> int | None:
    """The client's current token version, None unless it is active (one primary-key lookup)."""
    query = sa.select(clients.c.token_version).where(
        clients.c.client_id == client_id, clients.c.active
    )
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        version: int | None = await connection.scalar(query)
    return version


async def set_active(connection: AsyncConnection, client_id: str, *, active: bool) -> bool:
    """Enable or disable a client (its tokens and sessions stop at once); False if unknown."""
    result = await connection.execute(
        sa.update(clients).where(clients.c.client_id == client_id).values(active=active)
    )
    return bool(result.rowcount)


async def create_demo_clients(connection: AsyncConnection) -> None:
    """The local stack's kiosk (api.md). Only for CANBAO_ENV=development."""
    await register(connection, client_id=DEMO_KIOSK, secret=DEMO_SECRET, kind=ClientKind.KIOSK,
                   name="演示自助一体机", region=DEMO_REGION)  # fmt: skip
