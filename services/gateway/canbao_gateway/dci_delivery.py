"""DCI callbacks (the standard's asynchronous half: `on-search`, `txn-on-status`): the signed
answer is sealed into `dci_callbacks` in the transaction that records the request, and the
`CallbackDelivery` component posts it to the partner's callback address, retrying with
exponential back-off, until the partner answers 2xx or the attempts run out.

Authenticated as the standard asks of a caller of the partner's endpoints: a bearer token of
the partner's own token API, when the agency registered the credentials it gave the registry
(`manage callback-credentials`); a token is kept until shortly before it expires, dropped on a
401.

Only to addresses registered for that client (`clients.callback_urls`, by the agency, never by a
message): the header's `sender_uri` must lie under one of them, else `err.sender_uri.invalid`,
so that nobody can make the registry post people's data to an address of their choosing (SSRF).
No redirect is followed. The sealed body is erased once delivered or given up (the gateway
keeps a partner's answer no longer than needed); the row stays, so that txn status shows how
delivery went (attempts, last error, next attempt).

Several gateway replicas share the work: a callback is leased (`leased_until`) by the one that
claims it, with `FOR UPDATE SKIP LOCKED`, and posted outside any transaction."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_gateway.clients import callback_context
from canbao_gateway.tables import clients, dci_callbacks, dci_exchange_ledger
from canbao_platform.background import BackgroundLoop
from canbao_platform.db import Database
from canbao_platform.sealing import Sealer

log = logging.getLogger(__name__)

MAX_ATTEMPTS: Final = 12  # 30 s doubling, at most an hour apart: ~ half a day in all
FIRST_RETRY: Final = timedelta(seconds=30)
LONGEST_RETRY: Final = timedelta(hours=1)
LEASE: Final = timedelta(seconds=60)
POST_TIMEOUT_S: Final = 10.0


def under_registered(url: str, registered: list[str]) -> bool:
    """Whether `url` is one of the client's registered callback addresses or below one (same
    scheme, host and port; the path under the registered path)."""
    try:
        asked = urlsplit(url)
    except ValueError:
        return False
    if asked.scheme not in ("https", "http") or not asked.hostname or asked.username:
        return False
    for base in registered:
        allowed = urlsplit(base)
        prefix = allowed.path.rstrip("/")
        if (asked.scheme, asked.hostname, asked.port) == (
            allowed.scheme,
            allowed.hostname,
            allowed.port,
        ) and (asked.path == prefix or asked.path.startswith(prefix + "/")):
            return True
    return False


def context(callback_id: int) -> str:
    return f"dci_callbacks|{callback_id}"


async def enqueue(
    connection: AsyncConnection,
    sealer: Sealer,
    *,
    client_id: str,
    correlation_id: UUID,
    action: str,
    url: str,
    envelope: dict[str, Any],
    now: datetime,
    ordering_key: str | None = None,
) -> int:
    """Seal `envelope` for delivery to `url` (the caller's transaction); callbacks of one
    `ordering_key` are delivered in the order they were enqueued, each after the one before."""
    callback_id: int = await connection.scalar(
        sa.insert(dci_callbacks)
        .values(
            client_id=client_id,
            correlation_id=correlation_id,
            action=action,
            url=url,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            ordering_key=ordering_key,
        )
        .returning(dci_callbacks.c.callback_id)
    )
    await connection.execute(
        sa.update(dci_callbacks)
        .where(dci_callbacks.c.callback_id == callback_id)
        .values(
            body_sealed=sealer.seal(envelope, context=context(callback_id)),
            key_id=sealer.key_id,
        )
    )
    return callback_id


# The same table again: a callback waits while an earlier one of its ordering key is pending.
_EARLIER: Final = dci_callbacks.alias("earlier")


def backoff(attempts: int) -> timedelta:
    return min(FIRST_RETRY * 2.0 ** (attempts - 1), LONGEST_RETRY)


class CallbackDelivery(BackgroundLoop):
    """The component that posts due callbacks (one loop per gateway replica)."""

    name = "dci-callbacks"

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        *,
        poll_interval_s: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.database, self.sealer, self.poll_interval_s = database, sealer, poll_interval_s
        self._transport = transport
        self._tokens: dict[str, tuple[str, datetime]] = {}  # client → bearer token, good until
        self._wake = asyncio.Event()
        self.delivered = self.failed_attempts = 0

    def health(self) -> dict[str, Any]:
        # Delivery waits for the partner, not the other way round: never a readiness condition.
        return {"ready": True, "delivered": self.delivered, "failed_attempts": self.failed_attempts}

    def wake(self) -> None:
        """A callback was just enqueued: post it now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient(
            transport=self._transport, timeout=POST_TIMEOUT_S, follow_redirects=False
        ) as http:
            while not self.stopping:
                try:
                    while not self.stopping and await self.deliver_due(http, now=datetime.now(UTC)):
                        pass
                except Exception:  # the database away: the next poll tries again
                    log.exception("dci callbacks: delivery pass failed")
                await self.sleep(self.poll_interval_s, self._wake)
                self._wake.clear()

    async def deliver_due(self, http: httpx.AsyncClient, *, now: datetime, limit: int = 20) -> int:
        """Claim and post up to `limit` due callbacks; how many were tried."""
        due = (
            sa.select(dci_callbacks.c.callback_id)
            .where(
                dci_callbacks.c.state == "pending",
                dci_callbacks.c.next_attempt_at <= now,
                sa.or_(dci_callbacks.c.leased_until.is_(None), dci_callbacks.c.leased_until < now),
                ~sa.exists().where(
                    _EARLIER.c.ordering_key == dci_callbacks.c.ordering_key,
                    _EARLIER.c.state == "pending",
                    _EARLIER.c.callback_id < dci_callbacks.c.callback_id,
                ),
            )
            .order_by(dci_callbacks.c.callback_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.database.engine.begin() as connection:
            claimed = (
                await connection.execute(
                    sa.update(dci_callbacks)
                    .where(dci_callbacks.c.callback_id.in_(due.scalar_subquery()))
                    .values(leased_until=now + LEASE)
                    .returning(
                        dci_callbacks.c.callback_id,
                        dci_callbacks.c.client_id,
                        dci_callbacks.c.url,
                        dci_callbacks.c.body_sealed,
                        dci_callbacks.c.key_id,
                        dci_callbacks.c.attempts,
                    )
                )
            ).all()
        for row in sorted(claimed, key=lambda r: r.callback_id):
            await self._post(http, row, now)
        return len(claimed)

    async def _authorisation(
        self, http: httpx.AsyncClient, client_id: str, now: datetime
    ) -> dict[str, str]:
        """The Authorization header of a callback to this partner: a bearer token of its own
        token API (the registry core API secures the callback endpoints so), fetched with the
        credentials it gave the agency (clients.set_callback_credentials) and kept until shortly
        before it expires; none when the partner registered none."""
        held = self._tokens.get(client_id)
        if held is not None and held[1] > now:
            return {"Authorization": f"Bearer {held[0]}"}
        async with self.database.engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(
                        clients.c.callback_token_url,
                        clients.c.callback_client_id,
                        clients.c.callback_secret_sealed,
                        clients.c.callback_key_id,
                    ).where(clients.c.client_id == client_id)
                )
            ).first()
        if row is None or row.callback_token_url is None:
            return {}
        secret = self.sealer.open(
            row.callback_secret_sealed,
            key_id=row.callback_key_id,
            context=callback_context(client_id),
        )["secret"]
        answer = await http.post(
            row.callback_token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": row.callback_client_id,
                "client_secret": secret,
            },
        )
        if answer.status_code != 200:
            raise TokenRefused(f"token: HTTP {answer.status_code}")
        try:
            token = answer.json()
            value, lifetime = str(token["access_token"]), int(token.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            raise TokenRefused("token: unreadable answer") from None
        self._tokens[client_id] = (value, now + timedelta(seconds=max(lifetime - 30, 0)))
        return {"Authorization": f"Bearer {value}"}

    async def _post(self, http: httpx.AsyncClient, row: Any, now: datetime) -> None:
        body = self.sealer.open(
            row.body_sealed, key_id=row.key_id, context=context(row.callback_id)
        )
        error: str | None = None
        try:
            headers = await self._authorisation(http, row.client_id, now)
            response = await http.post(row.url, json=body, headers=headers)
            if response.status_code == 401:  # the token expired early or was revoked
                self._tokens.pop(row.client_id, None)
            if not 200 <= response.status_code < 300:
                error = f"HTTP {response.status_code}"
            elif _refused(response):
                error = "ack_status ERR"
        except TokenRefused as refused:
            error = str(refused)
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        attempts = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "leased_until": None, "last_error": error}
        if error is None:
            values |= {"state": "delivered", "delivered_at": now, "body_sealed": None}
            self.delivered += 1
        elif attempts >= MAX_ATTEMPTS:
            values |= {"state": "failed", "body_sealed": None}
            self.failed_attempts += 1
        else:
            values |= {"next_attempt_at": now + backoff(attempts)}
            self.failed_attempts += 1
        if error is not None:  # the address is the partner's, registered: fine in a log
            log.warning(
                "dci callback %d to %s: %s (attempt %d)", row.callback_id, row.url, error, attempts
            )
        async with self.database.engine.begin() as connection:
            await connection.execute(
                sa.update(dci_callbacks)
                .where(dci_callbacks.c.callback_id == row.callback_id)
                .values(**values)
            )
            if values.get("state") in ("delivered", "failed"):
                await _settle(connection, row.callback_id, values["state"], now)


class TokenRefused(Exception):
    """The partner's token API gave the registry no token."""


def _refused(response: httpx.Response) -> bool:
    """A 2xx whose body is the standard's Ack with `ack_status` ERR: the partner could not
    take the message (the registry core API's Ack: ACK, NACK or ERR)."""
    if "json" not in response.headers.get("content-type", ""):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    message = body.get("message") if isinstance(body, dict) else None
    return isinstance(message, dict) and message.get("ack_status") == "ERR"


async def _settle(connection: AsyncConnection, callback_id: int, state: str, now: datetime) -> None:
    """What an exchange's subscriber holds (dci_notify.py's ledger) follows the callback that
    carried it: acknowledged when delivered, failed when given up."""
    ledger = dci_exchange_ledger.c
    acknowledged = {
        "state": "acknowledged",
        "acked_digest": ledger.sent_digest,
        "acked_selected": ledger.sent_selected,
        "acknowledged_at": now,
    }
    await connection.execute(
        sa.update(dci_exchange_ledger)
        .where(ledger.sent_callback_id == callback_id, ledger.state == "pending")
        .values(**(acknowledged if state == "delivered" else {"state": "failed"}))
    )


async def callback_states(
    database: Database, client_id: str, correlation_ids: list[UUID]
) -> list[dict[str, Any]]:
    """How the callbacks of these correlations went, for txn status."""
    if not correlation_ids:
        return []
    query = (
        sa.select(
            dci_callbacks.c.correlation_id,
            dci_callbacks.c.action,
            dci_callbacks.c.state,
            dci_callbacks.c.attempts,
            dci_callbacks.c.last_error,
            dci_callbacks.c.next_attempt_at,
            dci_callbacks.c.delivered_at,
        )
        .where(
            dci_callbacks.c.client_id == client_id,
            dci_callbacks.c.correlation_id.in_(correlation_ids),
        )
        .order_by(dci_callbacks.c.callback_id)
    )
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        {
            "correlation_id": str(r.correlation_id),
            "action": r.action,
            "state": r.state,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "next_attempt_at": r.next_attempt_at.isoformat() if r.state == "pending" else None,
            "delivered_at": r.delivered_at.isoformat() if r.delivered_at else None,
        }
        for r in rows
    ]
