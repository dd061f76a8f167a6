"""Logins (api.md: OAuth2 password grant for staff, client credentials for registered clients):
admission (login_gate.py), the failed-login throttle (throttling.py), the password or secret
check (accounts.py, clients.py), and the bookkeeping of the outcome.

Order matters: everything that refuses a login cheaply (too many at once, too many failures)
comes before the Argon2 check, and a failure is counted in the same transaction that holds the
name's lock, as its last statement, so it is committed with nothing after it that could roll it
back (and the values it writes always fit their columns, throttling.client_key)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_gateway import accounts, clients, problems, throttling
from canbao_gateway.accounts import Account
from canbao_gateway.login_gate import LoginGate
from canbao_platform.db import Database

T = TypeVar("T")
# A client's failures are counted apart from a staff member of the same name.
CLIENT_PREFIX: Final = "client:"


async def log_in(
    database: Database,
    gate: LoginGate,
    *,
    username: str,
    password: str,
    client: str | None,
    now: datetime,
) -> Account:
    """The account that `username` and `password` open; raises the problem that says why not
    (401 invalid-credentials, 429 login-throttled or too-many-logins)."""

    async def check(connection: AsyncConnection) -> Account | None:
        return await accounts.authenticate(connection, username=username, password=password)

    return await _throttled(
        database,
        gate,
        name=username,
        client=client,
        now=now,
        check=check,
        refused=problems.InvalidCredentials,
    )


async def log_in_client(
    database: Database,
    gate: LoginGate,
    *,
    client_id: str,
    secret: str,
    client: str | None,
    now: datetime,
    basic: bool = False,
) -> clients.Authenticated:
    """The registered client these credentials open (401 invalid-client, with the Basic challenge
    if `basic`: they came in an HTTP Basic header; 429 as `log_in`)."""

    async def check(connection: AsyncConnection) -> clients.Authenticated | None:
        return await clients.authenticate(connection, client_id=client_id, secret=secret, now=now)

    return await _throttled(
        database,
        gate,
        name=CLIENT_PREFIX + client_id,
        client=client,
        now=now,
        check=check,
        refused=lambda: problems.InvalidClient(basic=basic),
    )


async def _throttled(
    database: Database,
    gate: LoginGate,
    *,
    name: str,
    client: str | None,
    now: datetime,
    check: Callable[[AsyncConnection], Awaitable[T | None]],
    refused: Callable[[], problems.ProblemWithHeaders],
) -> T:
    if "\x00" in name:  # no account has it, and PostgreSQL text cannot hold it
        raise refused()
    key = name[: throttling.USERNAME_WIDTH]  # a longer name matches no account
    address = throttling.client_key(client)
    async with gate.admit(client=address, username=key), database.engine.begin() as connection:
        await throttling.check(connection, username=key, client=address, now=now)
        found = await check(connection)
        if found is None:
            await throttling.record_failure(connection, username=key, client=address, now=now)
        else:
            await throttling.record_success(connection, username=key)
    if found is None:
        raise refused()
    return found
