"""Login throttling: after too many failed logins for one username, or from one client address,
within a window, further attempts are refused with 429 until the oldest failure leaves the window.
And request limits (`Limit`, `take`) for what anyone may try without a password: opening a
citizen's session (per kiosk, per ID number) and verifying a certificate (per client address).

Failures are rows in the gateway's database, so the limits hold across replicas; a transaction-
scoped advisory lock per username serialises concurrent attempts on one account, so parallel
guesses cannot slip past the count. A limit per username also lets anyone lock a clerk out by
guessing wrong on purpose, but for one window at most, which we prefer to unlimited guessing
(our convention)."""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_gateway.problems import LoginThrottled
from canbao_gateway.tables import login_failures, throttle_hits
from canbao_platform.problems import Problem

WINDOW: Final = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME: Final = 5
MAX_FAILURES_PER_CLIENT: Final = 20  # a counter hall shares one address behind its NAT
_LOCK_NAMESPACE: Final = 0x6C6F67  # "log": advisory locks of the login throttle
_LIMIT_NAMESPACE: Final = 0x6C696D  # "lim": advisory locks of `take`
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


@dataclass(frozen=True)
class Limit:
    """At most `most` requests per key within `window`, counted in the database (so across
    replicas); the key is never personal data (a blind hash, an address, a device)."""

    scope: str  # throttle_hits.scope
    most: int
    window: timedelta


# A kiosk serves one citizen every few minutes at most: more sessions than this is a script.
SESSIONS_PER_KIOSK: Final = Limit("self-session-kiosk", 60, timedelta(hours=1))
# Sessions of one ID number, whatever the channel: a guess at the name on a number, or an app
# hammering the backend, is stopped after a few tries (our convention).
SESSIONS_PER_NUMBER: Final = Limit("self-session-number", 10, timedelta(minutes=15))
# Verifications from one address: a bank's desk checks a printout now and then; a crawler of
# codes is refused.
VERIFICATIONS_PER_CLIENT: Final = Limit("verify-client", 30, timedelta(minutes=1))


async def take(
    connection: AsyncConnection,
    limit: Limit,
    key: str,
    *,
    now: datetime,
    refuse: Callable[[int], Problem],
) -> None:
    """Count one request against `limit` for `key` (the caller's transaction), or raise
    `refuse(seconds to wait)` while the limit is reached; a refused request is not counted.
    The key's lock serialises concurrent requests, so parallel ones cannot slip past the count;
    hits that left the window are pruned as new ones come."""
    key = key[:64]  # throttle_hits.key; the keys of this module fit it
    await connection.execute(
        sa.text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:scope || '/' || :key))"),
        {"namespace": _LIMIT_NAMESPACE, "scope": limit.scope, "key": key},
    )
    mine = (throttle_hits.c.scope == limit.scope) & (throttle_hits.c.key == key)
    await connection.execute(
        sa.delete(throttle_hits).where(mine, throttle_hits.c.hit_at <= now - limit.window)
    )
    oldest_counted = await connection.scalar(
        sa.select(throttle_hits.c.hit_at)
        .where(mine)
        .order_by(throttle_hits.c.hit_at.desc())
        .offset(limit.most - 1)
        .limit(1)
    )
    if oldest_counted is not None:
        wait = (oldest_counted + limit.window - now).total_seconds()
        raise refuse(max(1, math.ceil(wait)))
    await connection.execute(
        sa.insert(throttle_hits).values(scope=limit.scope, key=key, hit_at=now)
    )
