"""Clients that log in with OAuth2 client credentials (RFC 6749 §4.4): registered devices and
programs, not people. The self-service kiosks (自助一体机, api.md "Self-service"): a kiosk has
read the citizen's ID card chip and done its own face check, and the registry trusts the
registered device that did, never the person's word. And the partner departments' programs
(api.md "Partner departments", role `partner:<dept>`): each bound to one department, with the
list of what it may do (`Permission`) and of what it may see of a person (`Field`), explicit,
nothing by default.

Secrets are Argon2id hashes, checked like staff passwords (accounts.py: in a worker thread, a
dummy hash for unknown ids so that timing tells nothing). A client's token version rises in the
database whenever it is disabled or gets a new secret (migration gateway_0003), which stops its
tokens, and a kiosk's citizens' sessions, at the next request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_gateway.accounts import dummy_hash, hash_password, verify
from canbao_gateway.staff import normalise_scope
from canbao_gateway.tables import clients
from canbao_platform.db import Database
from canbao_platform.sealing import Sealer
from canbao_platform.service_tokens import public_key


class ClientKind(StrEnum):
    """What a client is; the role its tokens carry (the audit log's `role` column)."""

    KIOSK = "kiosk"  # a self-service kiosk: opens citizens' sessions after reading an ID card
    PARTNER = "partner"  # a partner department's program (api.md "Partner departments")


class Permission(StrEnum):
    """What a partner client may do (api.md "Partner departments")."""

    BATCHES = "batches"  # send batches of its department's own data
    COMPARISONS = "comparisons"  # ask the insurance status of a list of numbers
    SEARCH = "search"  # DCI registry search
    SUBSCRIBE = "subscribe"  # DCI subscriptions and notifications


class Field(StrEnum):
    """What a partner client may see of a person it asks about; a comparison answers only these."""

    REGISTRATION = "registration"  # confirmed | needs_survey | verified
    DECEASED = "deceased"
    PENSION = "pension"  # the status code of each insurance (domain.md §4)
    MEDICAL = "medical"
    INJURY = "injury"
    UNEMPLOYMENT = "unemployment"
    MATERNITY = "maternity"
    ID_NUMBER = "id_number"  # numbers in clear in a search's results (masked otherwise)
    GENDER = "gender"
    BIRTH_YEAR = "birth_year"
    REGION = "region"  # the person's division (GB/T 2260)
    HOUSEHOLD = "household"  # whether the household is registered in the province (§6 col. 1)


# api.md: the local stack (and only it) creates the kiosk `demo-kiosk`, secret `demo`.
DEMO_KIOSK: Final = "demo-kiosk"
DEMO_SECRET: Final = "demo"
DEMO_REGION: Final = "52"
# api.md: `demo-civil`, secret `demo`, for `partner:civil`. Civil affairs checks allowance
# recipients' pension and medical cover (its residents' schemes are subsidised for them).
DEMO_CIVIL: Final = "demo-civil"
DEMO_CIVIL_PERMISSIONS: Final = frozenset(
    {Permission.BATCHES, Permission.COMPARISONS, Permission.SEARCH}
)
DEMO_CIVIL_FIELDS: Final = frozenset(
    {Field.REGISTRATION, Field.DECEASED, Field.PENSION, Field.MEDICAL, Field.REGION}
)


@dataclass(frozen=True, slots=True)
class Client:
    """A client as its token states it. `username`, `role` and `scope` make it an actor of the
    audit log and of internal calls, like a member of staff (staff.Actor)."""

    client_id: str
    kind: ClientKind
    region: str  # normalised GB/T 2260 prefix: where the device stands, the partner's province
    department: str | None = None  # a partner's (canbao_contracts.partners.Department)
    permissions: frozenset[Permission] = frozenset()
    fields: frozenset[Field] = frozenset()

    @property
    def username(self) -> str:
        return self.client_id

    @property
    def role(self) -> ClientKind:
        return self.kind

    @property
    def role_name(self) -> str:
        """api.md's name of the role: `kiosk`, `partner:civil`."""
        return f"{self.kind.value}:{self.department}" if self.department else self.kind.value

    @property
    def scope(self) -> str:
        return self.region


@dataclass(frozen=True, slots=True)
class Authenticated:
    client: Client
    token_version: int


async def register(
    connection: AsyncConnection,
    *,
    client_id: str,
    secret: str,
    kind: ClientKind,
    name: str,
    region: str,
    department: str | None = None,
    permissions: frozenset[Permission] = frozenset(),
    fields: frozenset[Field] = frozenset(),
    callback_urls: tuple[str, ...] = (),
    signing_public_key: str | None = None,
) -> Client:
    """Add a client (caller's transaction); an existing client_id is left unchanged. A partner
    names its department; only a partner has permissions and fields."""
    if (kind is ClientKind.PARTNER) != (department is not None):
        raise ValueError("a partner client, and only one, belongs to a department")
    if kind is not ClientKind.PARTNER and (permissions or fields or callback_urls):
        raise ValueError("only a partner client has permissions, fields and callbacks")
    for url in callback_urls:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
            raise ValueError(f"a callback address is http(s)://host[:port]/path: {url!r}")
    if signing_public_key is not None:
        public_key(signing_public_key)  # an Ed25519 public key, or ValueError
    client = Client(
        client_id=client_id,
        kind=kind,
        region=normalise_scope(region),
        department=department,
        permissions=permissions,
        fields=fields,
    )
    row = {
        "client_id": client_id,
        "secret_hash": await hash_password(secret),
        "kind": kind.value,
        "name": name,
        "region": client.region,
        "department": department,
        "permissions": sorted(permissions),
        "fields": sorted(fields),
        "callback_urls": list(callback_urls),
        "signing_public_key": signing_public_key,
    }
    await connection.execute(
        insert(clients).values(row).on_conflict_do_nothing(index_elements=["client_id"])
    )
    return client


async def set_signing_key(connection: AsyncConnection, client_id: str, key: str | None) -> bool:
    """Replace the Ed25519 public key a partner signs its DCI messages with (None: it no longer
    signs); False if there is no such partner client."""
    if key is not None:
        public_key(key)  # an Ed25519 public key, or ValueError
    result = await connection.execute(
        sa.update(clients)
        .where(clients.c.client_id == client_id, clients.c.kind == ClientKind.PARTNER.value)
        .values(signing_public_key=key)
    )
    return bool(result.rowcount)


def callback_context(client_id: str) -> str:
    """The sealing context of a partner's callback secret (tables.clients)."""
    return f"clients|{client_id}|callback"


async def set_callback_credentials(
    connection: AsyncConnection,
    sealer: Sealer,
    client_id: str,
    *,
    token_url: str,
    as_client: str,
    secret: str,
) -> bool:
    """How the registry gets a token from the partner's own token API for its callbacks
    (OAuth2 client credentials: `as_client` and `secret`, which the partner gave the agency);
    False if there is no such partner client."""
    parts = urlsplit(token_url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
        raise ValueError(f"a token address is http(s)://host[:port]/path: {token_url!r}")
    result = await connection.execute(
        sa.update(clients)
        .where(clients.c.client_id == client_id, clients.c.kind == ClientKind.PARTNER.value)
        .values(
            callback_token_url=token_url,
            callback_client_id=as_client,
            callback_secret_sealed=sealer.seal(
                {"secret": secret}, context=callback_context(client_id)
            ),
            callback_key_id=sealer.key_id,
        )
    )
    return bool(result.rowcount)


async def authenticate(
    connection: AsyncConnection, *, client_id: str, secret: str, now: datetime
) -> Authenticated | None:
    """The active client these credentials are (its secret, or the one it had before a rotation
    within its grace), or None for any kind of wrong credentials."""
    row = (
        await connection.execute(sa.select(clients).where(clients.c.client_id == client_id))
    ).first()
    stored = row.secret_hash if row is not None else dummy_hash()
    valid = await asyncio.to_thread(verify, stored, secret)
    if (
        not valid
        and row is not None
        and row.previous_secret_hash is not None
        and row.previous_secret_expires_at > now
    ):
        valid = await asyncio.to_thread(verify, row.previous_secret_hash, secret)
    if not valid or row is None or not row.active:
        return None
    client = Client(
        client_id=row.client_id,
        kind=ClientKind(row.kind),
        region=row.region,
        department=row.department,
        permissions=frozenset(Permission(p) for p in row.permissions),
        fields=frozenset(Field(f) for f in row.fields),
    )
    return Authenticated(client=client, token_version=row.token_version)


async def rotate_secret(
    connection: AsyncConnection, client_id: str, *, secret: str, grace: timedelta, now: datetime
) -> bool:
    """Give the client a new secret (False if unknown). For `grace` the old one still opens a
    token, so that a partner's program can switch without an outage; its tokens stay valid.
    A zero grace (a leaked secret) ends the old one now and stops every token issued with it."""
    row = (
        await connection.execute(
            sa.select(clients.c.secret_hash)
            .where(clients.c.client_id == client_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        return False
    values: dict[str, object] = {"secret_hash": await hash_password(secret)}
    if grace > timedelta(0):
        values |= {
            "previous_secret_hash": row.secret_hash,
            "previous_secret_expires_at": now + grace,
        }
    else:
        values |= {"previous_secret_hash": None, "previous_secret_expires_at": None}
    await connection.execute(
        sa.update(clients).where(clients.c.client_id == client_id).values(**values)
    )
    return True


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
    """The local stack's kiosk and civil affairs client (api.md). Only for
    CANBAO_ENV=development."""
    await register(
        connection,
        client_id=DEMO_KIOSK,
        secret=DEMO_SECRET,
        kind=ClientKind.KIOSK,
        name="演示自助一体机",
        region=DEMO_REGION,
    )
    await register(
        connection,
        client_id=DEMO_CIVIL,
        secret=DEMO_SECRET,
        kind=ClientKind.PARTNER,
        name="演示民政部门",
        region=DEMO_REGION,
        department="civil",
        permissions=DEMO_CIVIL_PERMISSIONS,
        fields=DEMO_CIVIL_FIELDS,
    )
