"""DCI notifications (the registry core API's `notify`): the gateway's one consumer, of
registry.statuses. Each StatusesChanged (and StatusesWithdrawn: the person left the registry's
scope) is matched against the active subscriptions — the person's own, and every filter the
verdict satisfies now or satisfied before — and each subscriber gets a signed
NotifyEventRequest with the person's record as its client may see it; a filter's notification
says whether the person is still `in_subscription` (a subscriber learns that a person left its
set too). An exchange's notifications are also entered in its ledger (below).

At least once, in order per person: the notifications are sealed into dci_callbacks in the
consumer's unit of work (with its idempotency record: a redelivered event notifies nobody
twice), under the ordering key client|person, which dci_delivery posts one after the other. An
event older than one already notified about (a replay) is still notified: the verdict carries
its `evaluated_at`, which the subscriber compares. Each notification is audited in the same
transaction: it shows a partner a person's data.

Exchanges — up to the ministry (44号 Art.10 and its flow chart; 41号 §3, §5). The province tells
the national registry the people of other provinces insured here and its own household-registered
people not insured in the province (so that other provinces find their people's cover: code 82
depends on it). The national registry is a partner client of department `national` subscribed
with that filter (canbao_contracts.search: `household_registered_locally`,
`insured_in_province`); its filter subscriptions are exchanges: besides the changes above, it is
owed everyone the filter selects. `ExchangeReconciler` (run beside the consumer) keeps it so: a
pass pages through the selection (matching's keyset search), compares each person's record with
the ledger of what the subscriber acknowledged (a digest per person, set when a notification is
delivered: dci_delivery), and sends, in one notification per page, the people it lacks or holds
stale; then those it holds that the filter no longer selects, as `in_subscription` false. The
first pass is the initial full delivery; later ones, every `dci_exchange_interval_hours`,
repair what a lost or refused delivery left. Each pass is reported (dci_exchange_passes: selected,
held, in flight, missing, stale, removed, redelivered, unidentified: without a citizen ID
number, which the national registry keys people by, so not sent) — the reconciliation of what
the national side holds; `python -m canbao_gateway.manage exchanges` prints it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from canbao_contracts.events import StatusesChanged, StatusesWithdrawn
from canbao_contracts.search import Filter, matches
from canbao_gateway import dci, dci_delivery
from canbao_gateway.audit import Outcome, Purpose, id_number_hash
from canbao_gateway.clients import Client, ClientKind, Field, Permission
from canbao_gateway.service_clients import IdentityClient, MatchingClient
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.tables import (
    audit_log,
    clients,
    dci_exchange_ledger,
    dci_exchange_passes,
    dci_subscriptions,
)
from canbao_platform.background import BackgroundLoop
from canbao_platform.db import Database
from canbao_platform.messaging import Handler, InboundMessage, TransientError, UnitOfWork
from canbao_platform.problems import Problem
from canbao_platform.sealing import Sealer

log = logging.getLogger(__name__)
ENDPOINT = "NOTIFY registry.statuses"  # the audit log's endpoint of a notification


def notify_handler(settings: GatewaySettings, sealer: Sealer, identity: IdentityClient) -> Handler:
    parsed: dict[uuid.UUID, Filter] = {}  # a subscription's filter never changes: parse it once

    def filter_of(row: Any) -> Filter:
        if row.subscription_code not in parsed:
            parsed[row.subscription_code] = Filter.model_validate(row.filter)
        return parsed[row.subscription_code]

    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        envelope, event = message.decode()
        if isinstance(event, StatusesChanged):
            now_verdict: dict[str, Any] | None = event.verdict.model_dump(mode="json")
            before = event.previous.model_dump(mode="json") if event.previous else None
        elif isinstance(event, StatusesWithdrawn):  # out of scope: no longer in any selection
            now_verdict, before = None, event.previous.model_dump(mode="json")
        else:
            return
        connection = await uow.session.connection()
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
            or (row.filter is not None and _concerns(filter_of(row), now_verdict, before))
        ]
        if not wanted:
            return
        subscribers = await subscribing_clients(connection, {row.client_id for row in wanted})
        wanted = [row for row in wanted if row.client_id in subscribers]
        if not wanted:
            return
        try:
            numbers = await identity.numbers(
                [event.person_id], caller=subscribers[wanted[0].client_id]
            )
        except Problem as problem:  # identity away: try the batch again later
            raise TransientError(f"identity: {problem.slug}") from None
        number = numbers.get(event.person_id)
        now = envelope.time
        for row in wanted:
            if row.exchange and number is None:  # the national registry keys people by number
                continue
            client = subscribers[row.client_id]
            selected = None
            if row.filter is not None:
                selected = now_verdict is not None and matches(filter_of(row), now_verdict)
            record = dci.record(
                client,
                now_verdict,
                event.evaluated_at.isoformat(),
                number,
                in_subscription=selected,
            )
            callback_id = await dci_delivery.enqueue(
                connection,
                sealer,
                client_id=client.client_id,
                correlation_id=uuid.uuid5(row.subscription_code, envelope.id),
                action="notify",
                url=row.notify_url,
                envelope=notification(settings, client, row, [record], now),
                now=now,
                ordering_key=f"{client.client_id}|{event.person_id}",
            )
            if row.exchange:
                await note_sent(
                    connection,
                    row.subscription_code,
                    callback_id,
                    [(event.person_id, record, bool(selected))],
                )
            await audit_notifications(
                connection,
                settings,
                client,
                now,
                [(event.person_id, number, (now_verdict or before or {}).get("region_code"))],
            )

    return handle


def notification(
    settings: GatewaySettings,
    client: Client,
    subscription: Any,
    records: list[dict[str, Any]],
    now: Any,
) -> dict[str, Any]:
    """The signed NotifyEventRequest of `records` for one subscription: one notify_event per
    record, since an event's data.reg_records is one RegistryRecord, an object
    (registry_core_api_v1.0.0.yaml, NotifyEventRequest)."""
    body = {
        "transaction_id": subscription.transaction_id,
        "notify_event": [
            {
                "reference_id": subscription.reference_id,
                "timestamp": dci.now_iso(now),
                "data": {
                    "version": dci.VERSION,
                    "reg_event_type": subscription.reg_event_type,
                    "response_entity": "Member",
                    "reg_records": record,
                    "subscription_code": str(subscription.subscription_code),
                },
            }
            for record in records
        ],
    }
    answer = dci.Answer(settings, client, now, "notify")
    return answer.envelope(body, total=len(records), completed=len(records))


async def audit_notifications(
    connection: Any,
    settings: GatewaySettings,
    client: Client,
    now: Any,
    people: list[tuple[uuid.UUID, str | None, str | None]],
) -> None:
    """One audit row per person notified (person_id, number, region): it shows a partner a
    person's data."""
    key = settings.audit_key()
    await connection.execute(
        sa.insert(audit_log),
        [
            {
                "at": now,
                "staff": client.client_id,
                "role": client.role.value,
                "staff_scope": client.scope,
                "person_id": person_id,
                "id_number_hash": id_number_hash(number, key=key) if number else None,
                "person_region": region,
                "endpoint": ENDPOINT,
                "purpose": Purpose.PARTNER_SUBSCRIPTION.value,
                "outcome": Outcome.OK.value,
                "client": None,
            }
            for person_id, number, region in people
        ],
    )


def _concerns(condition: Filter, now: dict[str, Any] | None, before: dict[str, Any] | None) -> bool:
    return any(v is not None and matches(condition, v) for v in (now, before))


async def subscribing_clients(connection: Any, client_ids: set[str]) -> dict[str, Client]:
    """The subscribers still active and still allowed to subscribe, as their tokens would say."""
    rows = (
        await connection.execute(
            sa.select(clients).where(clients.c.client_id.in_(client_ids), clients.c.active)
        )
    ).all()
    found = {}
    for row in rows:
        client = Client(
            client_id=row.client_id,
            kind=ClientKind(row.kind),
            region=row.region,
            department=row.department,
            permissions=frozenset(Permission(p) for p in row.permissions),
            fields=frozenset(Field(f) for f in row.fields),
        )
        if Permission.SUBSCRIBE in client.permissions:
            found[client.client_id] = client
    return found


# -- exchanges: the ledger and the reconciliation --------------------------------------------------

PAGE_SIZE: Final = 500
FIRST: Final = uuid.UUID(int=0)  # the keyset cursor of a pass's first page
REMOVALS: Final = uuid.UUID(int=2**128 - 1)  # the cursor once the selection has been read
# What a pass counts (dci_exchange_passes, the reconciliation report).
PASS_COUNTS: Final = ("selected", "held", "in_flight", "missing", "stale", "removed",
                      "redelivered", "unidentified")  # fmt: skip


def digest(record: dict[str, Any]) -> str:
    """What identifies a record's content: the time it was evaluated is not part of it."""
    content = {k: v for k, v in record.items() if k != "last_updated"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def note_sent(
    connection: Any,
    subscription_code: uuid.UUID,
    callback_id: int,
    sent: list[tuple[uuid.UUID, dict[str, Any], bool]],
    *,
    checked_pass: int | None = None,
) -> None:
    """Enter in the exchange's ledger that `callback_id` carries these people's records
    (person_id, record, whether in the subscription); acknowledged when it is delivered."""
    rows = [
        {
            "subscription_code": subscription_code,
            "person_id": person_id,
            "sent_digest": digest(record),
            "sent_selected": selected,
            "sent_callback_id": callback_id,
            "state": "pending",
        }
        | ({} if checked_pass is None else {"checked_pass": checked_pass})
        for person_id, record, selected in sent
    ]
    statement = insert(dci_exchange_ledger).values(rows)
    updated = ["sent_digest", "sent_selected", "sent_callback_id", "state"]
    if checked_pass is not None:
        updated.append("checked_pass")
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["subscription_code", "person_id"],
            set_={name: statement.excluded[name] for name in updated},
        )
    )


class ExchangeReconciler(BackgroundLoop):
    """The component that runs the exchanges' reconciliation passes, one page per transaction
    (the subscription's row locked: one replica at a time per exchange; a pass interrupted goes
    on from its cursor)."""

    name = "dci-exchanges"

    def __init__(
        self,
        database: Database,
        sealer: Sealer,
        settings: GatewaySettings,
        identity: IdentityClient,
        matching: MatchingClient,
        *,
        poll_interval_s: float = 30.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__()
        self.database, self.sealer, self.settings = database, sealer, settings
        self.identity, self.matching = identity, matching
        self.poll_interval_s, self.page_size = poll_interval_s, page_size
        self.interval = timedelta(hours=settings.dci_exchange_interval_hours)
        self._wake = asyncio.Event()
        self.pages = 0

    def health(self) -> dict[str, Any]:
        # A pass waits for matching and identity; the consumer's readiness says the rest.
        return {"ready": True, "pages": self.pages}

    async def run(self) -> None:
        while not self.stopping:
            try:
                while not self.stopping and await self.reconcile_page(now=datetime.now(UTC)):
                    pass
            except Problem as problem:  # matching or identity away: the next poll goes on
                log.warning("dci exchanges: %s; the pass goes on later", problem.slug)
            except Exception:
                log.exception("dci exchanges: reconciliation page failed")
            await self.sleep(self.poll_interval_s, self._wake)
            self._wake.clear()

    def wake(self) -> None:
        """An exchange was just subscribed (in this process): start its full delivery now."""
        self._wake.set()

    async def reconcile_page(self, *, now: datetime) -> bool:
        """One page of a due exchange's pass; False when no exchange is due."""
        async with self.database.engine.begin() as connection:
            subscription = (
                await connection.execute(
                    sa.select(dci_subscriptions)
                    .where(
                        dci_subscriptions.c.exchange,
                        dci_subscriptions.c.state == "active",
                        sa.or_(
                            dci_subscriptions.c.reconcile_after.is_not(None),
                            dci_subscriptions.c.reconciled_at.is_(None),
                            dci_subscriptions.c.reconciled_at <= now - self.interval,
                        ),
                    )
                    .order_by(dci_subscriptions.c.reconciled_at.nulls_first())
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if subscription is None:
                return False
            code = subscription.subscription_code
            client = (await subscribing_clients(connection, {subscription.client_id})).get(
                subscription.client_id
            )
            if client is None:  # no longer allowed to subscribe: nothing more is owed
                await connection.execute(
                    sa.update(dci_subscriptions)
                    .where(dci_subscriptions.c.subscription_code == code)
                    .values(reconcile_after=None, reconciled_at=now)
                )
                return True
            cursor, number = subscription.reconcile_after, subscription.reconcile_pass
            if cursor is None:  # a new pass
                cursor, number = FIRST, number + 1
                await connection.execute(
                    sa.insert(dci_exchange_passes).values(
                        subscription_code=code, **{"pass": number}, started_at=now
                    )
                )
            pass_ = _Pass(self, connection, subscription, client, number, now)
            if cursor != REMOVALS:
                after = await pass_.selection_page(cursor)
            else:
                after = await pass_.removals_page()
            finished = after is None
            await connection.execute(
                sa.update(dci_subscriptions)
                .where(dci_subscriptions.c.subscription_code == code)
                .values(
                    reconcile_pass=number,
                    reconcile_after=after,
                    **({"reconciled_at": now} if finished else {}),
                )
            )
            columns = dci_exchange_passes.c
            await connection.execute(
                sa.update(dci_exchange_passes)
                .where(columns.subscription_code == code, columns["pass"] == number)
                .values(
                    **{name: columns[name] + value for name, value in pass_.counts.items()},
                    **({"finished_at": now} if finished else {}),
                )
            )
        self.pages += 1
        if finished:
            log.info("dci exchange %s: pass %d finished", code, number)
        return True


class _Pass:
    """One page of a reconciliation pass, in the reconciler's transaction."""

    def __init__(
        self,
        reconciler: ExchangeReconciler,
        connection: Any,
        subscription: Any,
        client: Client,
        number: int,
        now: datetime,
    ) -> None:
        self.reconciler, self.connection, self.subscription = reconciler, connection, subscription
        self.client, self.number, self.now = client, number, now
        self.filter = Filter.model_validate(subscription.filter)
        self.counts: Counter[str] = Counter()

    async def selection_page(self, after: uuid.UUID) -> uuid.UUID | None:
        """Compare one page of the selection; the cursor of the next (REMOVALS after the last)."""
        page = await self.reconciler.matching.search(
            self.subscription.filter,
            page_size=self.reconciler.page_size,
            after=after,
            caller=self.client,
        )
        items = page["items"]
        people = [uuid.UUID(item["person_id"]) for item in items]
        self.counts["selected"] += len(items)
        if people:
            numbers = await self.reconciler.identity.numbers(people, caller=self.client)
            held = await self._ledger(people)
            sent = []
            for person_id, item in zip(people, items, strict=True):
                if person_id not in numbers:  # nothing the national registry could key it by
                    self.counts["unidentified"] += 1
                    continue
                record = dci.record(
                    self.client,
                    item["verdict"],
                    item["as_of"],
                    numbers[person_id],
                    in_subscription=True,
                )
                if self._owed(held.get(person_id), record):
                    sent.append((person_id, record, True, item["verdict"]))
            await self._send(sent, numbers)
            await self.connection.execute(
                sa.update(dci_exchange_ledger)
                .where(
                    dci_exchange_ledger.c.subscription_code == self.subscription.subscription_code,
                    dci_exchange_ledger.c.person_id.in_(people),
                )
                .values(checked_pass=self.number)
            )
        next_after = page.get("next_after")
        return uuid.UUID(next_after) if next_after else REMOVALS

    async def removals_page(self) -> uuid.UUID | None:
        """Tell the subscriber of people it was sent as selected and the filter no longer
        selects (moved, insured, dead, out of scope); None when there are no more."""
        ledger = dci_exchange_ledger.c
        rows = (
            await self.connection.execute(
                sa.select(dci_exchange_ledger)
                .where(
                    ledger.subscription_code == self.subscription.subscription_code,
                    ledger.checked_pass < self.number,
                    sa.or_(ledger.sent_selected, ledger.state == "failed"),
                )
                .order_by(ledger.person_id)
                .limit(self.reconciler.page_size)
            )
        ).all()
        if not rows:
            return None
        people = [row.person_id for row in rows]
        verdicts = await self.reconciler.matching.verdicts(people, caller=self.client)
        numbers = await self.reconciler.identity.numbers(people, caller=self.client)
        sent = []
        for row in rows:
            found = verdicts.get(row.person_id) or {}
            verdict = found.get("verdict") if found.get("in_scope") else None
            selected = verdict is not None and matches(self.filter, verdict)
            as_of = found.get("as_of") or dci.now_iso(self.now)
            record = dci.record(
                self.client, verdict, as_of, numbers.get(row.person_id), in_subscription=selected
            )
            if self._owed(row, record, count=False):
                self.counts["removed" if not selected else "stale"] += 1
                sent.append((row.person_id, record, selected, verdict))
        await self._send(sent, numbers)
        await self.connection.execute(
            sa.update(dci_exchange_ledger)
            .where(
                ledger.subscription_code == self.subscription.subscription_code,
                ledger.person_id.in_(people),
            )
            .values(checked_pass=self.number)
        )
        return REMOVALS

    async def _ledger(self, people: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
        ledger = dci_exchange_ledger.c
        rows = await self.connection.execute(
            sa.select(dci_exchange_ledger).where(
                ledger.subscription_code == self.subscription.subscription_code,
                ledger.person_id.in_(people),
            )
        )
        return {row.person_id: row for row in rows}

    def _owed(self, held: Any, record: dict[str, Any], *, count: bool = True) -> bool:
        """Whether the subscriber lacks `record` (counted by why, when `count`)."""
        current = digest(record)
        if held is not None and held.state == "acknowledged" and held.acked_digest == current:
            self.counts["held"] += count
            return False
        if held is not None and held.state == "pending" and held.sent_digest == current:
            self.counts["in_flight"] += count
            return False
        if count:
            self.counts["missing" if held is None or held.acked_digest is None else "stale"] += 1
        if held is not None and held.state == "failed":
            self.counts["redelivered"] += 1
        return True

    async def _send(
        self,
        sent: list[tuple[uuid.UUID, dict[str, Any], bool, dict[str, Any] | None]],
        numbers: dict[uuid.UUID, str],
    ) -> None:
        """One notification of all `sent` records (one page), entered in the ledger, audited."""
        if not sent:
            return
        code = self.subscription.subscription_code
        envelope = notification(
            self.reconciler.settings,
            self.client,
            self.subscription,
            [record for _, record, _, _ in sent],
            self.now,
        )
        callback_id = await dci_delivery.enqueue(
            self.connection,
            self.reconciler.sealer,
            client_id=self.client.client_id,
            correlation_id=uuid.uuid5(code, f"reconcile|{self.number}|{sent[0][0]}"),
            action="notify",
            url=self.subscription.notify_url,
            envelope=envelope,
            now=self.now,
            ordering_key=f"{self.client.client_id}|exchange|{code}",
        )
        await note_sent(
            self.connection,
            code,
            callback_id,
            [(p, record, selected) for p, record, selected, _ in sent],
            checked_pass=self.number,
        )
        await audit_notifications(
            self.connection,
            self.reconciler.settings,
            self.client,
            self.now,
            [(p, numbers.get(p), (verdict or {}).get("region_code")) for p, _, _, verdict in sent],
        )


async def exchange_report(connection: Any) -> list[dict[str, Any]]:
    """Each active exchange: its subscriber, its last pass's counts (the reconciliation), and
    its ledger now (acknowledged, pending, failed; held = acknowledged as in the subscription)."""
    subscriptions = (
        await connection.execute(
            sa.select(dci_subscriptions)
            .where(dci_subscriptions.c.exchange, dci_subscriptions.c.state == "active")
            .order_by(dci_subscriptions.c.created_at)
        )
    ).all()
    report = []
    for subscription in subscriptions:
        code = subscription.subscription_code
        last = (
            await connection.execute(
                sa.select(dci_exchange_passes)
                .where(dci_exchange_passes.c.subscription_code == code)
                .order_by(dci_exchange_passes.c["pass"].desc())
                .limit(1)
            )
        ).first()
        ledger = dci_exchange_ledger.c
        states = dict(
            (
                await connection.execute(
                    sa.select(ledger.state, sa.func.count())
                    .where(ledger.subscription_code == code)
                    .group_by(ledger.state)
                )
            ).all()
        )
        held = await connection.scalar(
            sa.select(sa.func.count()).where(
                ledger.subscription_code == code, ledger.acked_selected.is_(True)
            )
        )
        report.append(
            {
                "client_id": subscription.client_id,
                "subscription_code": str(code),
                "last_pass": None
                if last is None
                else {
                    "pass": getattr(last, "pass"),
                    "started_at": last.started_at.isoformat(),
                    "finished_at": last.finished_at.isoformat() if last.finished_at else None,
                    **{name: getattr(last, name) for name in PASS_COUNTS},
                },
                "ledger": {
                    "held": held or 0,
                    "acknowledged": states.get("acknowledged", 0),
                    "pending": states.get("pending", 0),
                    "failed": states.get("failed", 0),
                },
            }
        )
    return report
