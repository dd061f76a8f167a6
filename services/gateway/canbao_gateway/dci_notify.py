"""DCI notifications (the registry core API's `notify`): the gateway's one consumer, of
registry.statuses. Each StatusesChanged is matched against the active subscriptions — the
person's own, and every filter the verdict satisfies now or satisfied before (a subscriber
learns that a person left its set too) — and each subscriber gets a signed NotifyEventRequest
with the person's record as its client may see it.

At least once, in order per person: the notifications are sealed into dci_callbacks in the
consumer's unit of work (with its idempotency record: a redelivered event notifies nobody
twice), under the ordering key client|person, which dci_delivery posts one after the other. An
event older than one already notified about (a replay) is still notified: the verdict carries
its `evaluated_at`, which the subscriber compares. Each notification is audited in the same
transaction: it shows a partner a person's data."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa

from canbao_contracts.events import StatusesChanged
from canbao_contracts.search import Filter, matches
from canbao_gateway import dci, dci_delivery
from canbao_gateway.audit import Outcome, Purpose, id_number_hash
from canbao_gateway.clients import Client, ClientKind, Field, Permission
from canbao_gateway.registry import IdentityClient
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.tables import audit_log, clients, dci_subscriptions
from canbao_platform.messaging import Handler, InboundMessage, TransientError, UnitOfWork
from canbao_platform.problems import Problem
from canbao_platform.sealing import Sealer

log = logging.getLogger(__name__)
ENDPOINT = "NOTIFY registry.statuses"  # the audit log's endpoint of a notification


def notify_handler(settings: GatewaySettings, sealer: Sealer, identity: IdentityClient) -> Handler:
    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        envelope, event = message.decode()
        if not isinstance(event, StatusesChanged):
            return
        connection = await uow.session.connection()
        now_verdict = event.verdict.model_dump(mode="json")
        before = event.previous.model_dump(mode="json") if event.previous else None
        rows = (
            await connection.execute(
                sa.select(dci_subscriptions).where(
                    dci_subscriptions.c.state == "active",
                    sa.or_(
                        dci_subscriptions.c.person_id == event.person_id,
                        dci_subscriptions.c.filter.is_not(None),
                    ),
                )
            )
        ).all()
        wanted = [
            row
            for row in rows
            if row.person_id == event.person_id
            or (row.filter is not None and _concerns(Filter.model_validate(row.filter),
                                                     now_verdict, before))
        ]  # fmt: skip
        if not wanted:
            return
        subscribers = await _clients(connection, {row.client_id for row in wanted})
        wanted = [row for row in wanted if row.client_id in subscribers]
        if not wanted:
            return
        try:
            numbers = await identity.numbers([event.person_id],
                                              caller=subscribers[wanted[0].client_id])  # fmt: skip
        except Problem as problem:  # identity away: try the batch again later
            raise TransientError(f"identity: {problem.slug}") from None
        number = numbers.get(event.person_id)
        now = envelope.time
        for row in wanted:
            client = subscribers[row.client_id]
            record = dci.record(client, now_verdict, event.evaluated_at.isoformat(), number)
            body = {
                "transaction_id": row.transaction_id,
                "notify_event": [{
                    "reference_id": row.reference_id, "timestamp": dci.now_iso(now),
                    "data": {"version": dci.VERSION, "reg_event_type": row.reg_event_type,
                             "response_entity": "Member", "reg_records": [record],
                             "subscription_code": str(row.subscription_code)},
                }],
            }  # fmt: skip
            signed = dci.Answer(settings, client, now, "notify").envelope(body, total=1,
                                                                          completed=1)  # fmt: skip
            await dci_delivery.enqueue(
                connection, sealer, client_id=client.client_id,
                correlation_id=uuid.uuid5(row.subscription_code, envelope.id),
                action="notify", url=row.notify_url, envelope=signed, now=now,
                ordering_key=f"{client.client_id}|{event.person_id}",
            )  # fmt: skip
            await connection.execute(sa.insert(audit_log).values(
                at=now, staff=client.client_id, role=client.role.value,
                staff_scope=client.scope, person_id=event.person_id,
                id_number_hash=id_number_hash(number, key=settings.audit_key()) if number else None,
                person_region=now_verdict.get("region_code"), endpoint=ENDPOINT,
                purpose=Purpose.PARTNER_SUBSCRIPTION.value, outcome=Outcome.OK.value,
                client=None,
            ))  # fmt: skip

    return handle


def _concerns(condition: Filter, now: dict[str, Any], before: dict[str, Any] | None) -> bool:
    return matches(condition, now) or (before is not None and matches(condition, before))


async def _clients(connection: Any, client_ids: set[str]) -> dict[str, Client]:
    """The subscribers still active and still allowed to subscribe, as their tokens would say."""
    rows = (
        await connection.execute(
            sa.select(clients).where(clients.c.client_id.in_(client_ids), clients.c.active)
        )
    ).all()
    found = {}
    for row in rows:
        client = Client(
            client_id=row.client_id, kind=ClientKind(row.kind), region=row.region,
            department=row.department,
            permissions=frozenset(Permission(p) for p in row.permissions),
            fields=frozenset(Field(f) for f in row.fields),
        )  # fmt: skip
        if Permission.SUBSCRIBE in client.permissions:
            found[client.client_id] = client
    return found
