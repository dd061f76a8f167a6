"""Staff login (api.md: OAuth2 password grant): admission (login_gate.py), the failed-login
throttle (throttling.py), the password check (accounts.py), and the bookkeeping of the outcome.

Order matters: everything that refuses a login cheaply (too many at once, too many failures)
comes before the Argon2 check, and a failure is counted in the same transaction that holds the
username's lock, as its last statement, so it is committed with nothing after it that could
roll it back (and the values it writes always fit their columns, throttling.client_key)."""

from __future__ import annotations

from datetime import datetime

from canbao_gateway import accounts, problems, throttling
from canbao_gateway.accounts import Account
from canbao_gateway.login_gate import LoginGate
from canbao_platform.db import Database


async def log_in(
    database: Database, gate: LoginGate, *, username: str, password: str, client: str | None,
    now: datetime,
) -> Account:  # fmt: skip
    """The account that `username` and `password` open; raises the problem that says why not
    (401 invalid-credentials, 429 login-throttled or too-many-logins)."""
    if "\x00" in username:  # no account has it, and PostgreSQL text cannot hold it
        raise problems.InvalidCredentials()
    key = username[: throttling.USERNAME_WIDTH]  # a longer name matches no account
    address = throttling.client_key(client)
    async with gate.admit(client=address, username=key), database.engine.begin() as connection:
        await throttling.check(connection, username=key, client=address, now=now)
        account = await accounts.authenticate(connection, username=username, password=password)
        if account is None:
            await throttling.record_failure(connection, username=key, client=address, now=now)
        else:
            await throttling.record_success(connection, username=key)
    if account is None:
        raise problems.InvalidCredentials()
    return account
