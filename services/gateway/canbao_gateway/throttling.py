"""Login throttling: after too many failed logins for one username, or from one client address,
within a window, further attempts are refused with 429 until the oldest failure leaves the window.

Failures are rows in the gateway's database, so the limits hold across replicas; a transaction-
scoped advisory lock per username serialises concurrent attempts on one account, so parallel
guesses cannot slip past the count. A limit per username also lets anyone lock a clerk out by
guessing wrong on purpose, but for one window at most, which we prefer to unlimited guessing
(our convention)."""

from __future__ import annotations

import hashlib
import ipaddress
import math
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_gateway.problems import LoginThrottled
from canbao_gateway.tables import login_failures

WINDOW: Final = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME: Final = 5
MAX_FAILURES_PER_CLIENT: Final = 20  # a counter hall shares one address behind its NAT
_LOCK_NAMESPACE: Final = 0x6C6F67  # "log": advisory locks of this module
CLIENT_WIDTH: Final = 64  # login_failures.client
USERNAME_WIDTH: Final = 64  # login_failures.username, staff_accounts.username


def client_key(host: str | None) -> str:
    """What a failure is counted against for the client `host` (the connection's peer, or what
    a trusted proxy forwarded): an IP address in its canonical form, anything else (a name, a
    malformed value) as a digest that always fits the column, so that recording a failure can
    never fail on what the client sent."""
    if not host:
        return "unknown"
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        address = ""
    if address and len(address) <= CLIENT_WIDTH:
        return address
    return "h:" + hashlib.sha256(host.encode(errors="replace")).hexdigest()[: CLIENT_WIDTH - 2]


async def check(connection: AsyncConnection, *, username: str, client: str, now: datetime) -> None:
    """Raise LoginThrottled while either limit is reached. Takes the username's lock for the rest
    of the caller's transaction."""
    await connection.execute(
        sa.text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:username))"),
        {"namespace": _LOCK_NAMESPACE, "username": username},
    )
    since = now - WINDOW
    for column, value, limit in (
        (login_failures.c.username, username, MAX_FAILURES_PER_USERNAME),
        (login_failures.c.client, client, MAX_FAILURES_PER_CLIENT),
    ):
        # The `limit`-th newest failure in the window: while it is there, the limit is reached.
        oldest_counted = await connection.scalar(
            sa.select(login_failures.c.failed_at)
            .where(column == value, login_failures.c.failed_at > since)
            .order_by(login_failures.c.failed_at.desc())
            .offset(limit - 1)
            .limit(1)
        )
        if oldest_counted is not None:
            wait = (oldest_counted + WINDOW - now).total_seconds()
            raise LoginThrottled(max(1, math.ceil(wait)))


async def record_failure(
    connection: AsyncConnection, *, username: str, client: str, now: datetime
) -> None:
    """Count a failed login (caller's transaction); failures that left the window are pruned."""
    await connection.execute(
        sa.delete(login_failures).where(
            login_failures.c.username == username, login_failures.c.failed_at <= now - WINDOW
        )
    )
    await connection.execute(
        sa.insert(login_failures).values(username=username, client=client, failed_at=now)
    )


async def record_success(connection: AsyncConnection, *, username: str) -> None:
    """A successful login clears the username's failures (not the address's)."""
    await connection.execute(sa.delete(login_failures).where(login_failures.c.username == username))
