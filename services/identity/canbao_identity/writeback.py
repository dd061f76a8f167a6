"""Write-back of approved changes to the business systems that own the items (44号 Art.22: an
insured person's change goes through the business system's own procedure; 41号 §4: the systems
and the registry share the basic information).

An item a business system owns for an insured person is one the person's current record in that
system's table claims (sources.md: si_core.ac01, medical.insured, card.card_holder,
employment.job_registration). When a person's rebuild (golden_records.py) finds such a record
older than the person's newest collection of an item and saying something else (golden.Standing
AWAITS_WRITE_BACK), it asks that system once — one FeedbackRequested per collection and record,
through the outbox, in the rebuild's transaction — and records a `writebacks` row per item:

* pending → applied: the system's record now says what was collected (seen at a rebuild, from its
  change feed: the golden record then shows the source again);
* pending → superseded: the record changed after the collection to another value (the source
  wins), or a newer collection of the item replaced this one, or the record is gone;
* pending → refused: the system answered that it cannot apply it, with its reason (`reply_handler`);
  a refused item still turns applied if the record comes to agree.

A reply `applied` changes nothing by itself: the system's change arrives on its change feed, and
only the record agreeing makes the item applied. The agency lists what is pending too long (the
disagreement that lasts) and what was refused (routes.py `/internal/writebacks`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_contracts.codes import RegistrationItem, SourceSystem
from canbao_contracts.events import (
    CollectionApproved,
    FeedbackChange,
    FeedbackOutcome,
    FeedbackReplied,
    FeedbackRequested,
)
from canbao_contracts.events.base import Event
from canbao_contracts.events.vocabulary import Channel
from canbao_identity import records as r
from canbao_identity.golden import LinkedRecord, Standing, standing
from canbao_identity.resolution import LinkKind
from canbao_identity.tables import writebacks
from canbao_platform.messaging import InboundMessage, PermanentError, UnitOfWork
from canbao_platform.messaging.failures import describe

# The source column of each item a business system owns (sources.md), by source table.
COLUMNS: Final[dict[str, dict[str, str]]] = {
    "si_core.ac01": {
        r.NAME: "aac003", r.GENDER: "aac004", r.BIRTH_DATE: "aac006", r.HOUSEHOLD_TYPE: "aac009",
        r.HOUSEHOLD_PLACE: "aac010", r.RESIDENCE_ADDRESS: "aae006", r.PHONE: "aae005",
        r.PERSONAL_IDENTITY: "aac012",
    },
    "medical.insured": {r.NAME: "psn_name", r.GENDER: "gend", r.BIRTH_DATE: "brdy"},
    "card.card_holder": {r.NAME: "aac003", r.PHONE: "aae005"},
    "employment.job_registration": {r.NAME: "aac003"},
}  # fmt: skip
_FEEDBACK_NAMESPACE: Final = UUID("6f1d3a52-0c7e-4b8a-9d2f-5e4c3b2a1f07")
PENDING, APPLIED, SUPERSEDED, REFUSED = "pending", "applied", "superseded", "refused"


def feedback_id(collection_id: str, source_table: str, record_key: str) -> UUID:
    """One request per collection and record, whatever the rebuild that finds it."""
    return uuid.uuid5(_FEEDBACK_NAMESPACE, f"{collection_id}|{source_table}|{record_key}")


@dataclass(frozen=True)
class Wanted:
    """A request the person's records call for: the collection, the record and what to change."""

    collection: LinkedRecord
    record: LinkedRecord
    items: tuple[str, ...]

    @property
    def feedback_id(self) -> UUID:
        return feedback_id(self.collection.record_key, *self.record_key_pair)

    @property
    def record_key_pair(self) -> tuple[str, str]:
        return self.record.source_table, self.record.record_key


def newest_collections(records: Sequence[LinkedRecord]) -> dict[str, LinkedRecord]:
    """Item → the person's newest collection claiming it (golden._pick's)."""
    newest: dict[str, LinkedRecord] = {}
    for x in records:
        if x.system != SourceSystem.COLLECTION:
            continue
        for name, value in x.claims.items():
            if name in _OWNED and value not in (None, ""):
                held = newest.get(name)
                if held is None or (x.position, x.record_key) > (held.position, held.record_key):
                    newest[name] = x
    return newest


_OWNED: Final = frozenset(name for columns in COLUMNS.values() for name in columns)


def wanted(records: Sequence[LinkedRecord]) -> list[Wanted]:
    """The requests a person's current records call for (pure): per newest collection and record
    of a feedback system, the items it claims older and different (golden rule c)."""
    newest = newest_collections(records)
    found: dict[tuple[str, str, str, str], list[str]] = {}
    by_key = {(x.source_table, x.record_key): x for x in records}
    for x in records:
        columns = COLUMNS.get(x.source_table)
        if columns is None or x.link_kind not in (LinkKind.EXACT, LinkKind.REFERENCE):
            continue
        for name in columns:
            collection = newest.get(name)
            if collection is None:
                continue
            if standing(collection, x, name) is Standing.AWAITS_WRITE_BACK:
                key = (collection.source_table, collection.record_key, x.source_table)
                found.setdefault((*key, x.record_key), []).append(name)
    return [
        Wanted(by_key[(c_table, c_key)], by_key[(table, key)], tuple(sorted(items)))
        for (c_table, c_key, table, key), items in sorted(found.items())
    ]


def request_event(
    person_id: UUID, want: Wanted, items: Iterable[str], now: datetime
) -> FeedbackRequested:
    p = want.collection.provenance
    system, table = want.record.source_table.split(".", 1)
    changes = tuple(
        FeedbackChange(
            item=RegistrationItem(name),
            column=COLUMNS[want.record.source_table][name],
            value=_as_collected(name, want.collection.claims[name]),
        )
        for name in items
    )
    return FeedbackRequested(
        feedback_id=want.feedback_id,
        collection_id=UUID(want.collection.record_key),
        person_id=person_id,
        system=system,
        table=table,
        record_key=want.record.record_key,
        changes=changes,
        channel=Channel(p["channel"]),
        handler=p["handler"],
        handled_at=datetime.fromisoformat(p["handled_at"]),
        first_reviewer=p.get("first_reviewer"),
        reviewer=p["reviewer"],
        reviewed_at=datetime.fromisoformat(p["reviewed_at"]),
        requested_at=now,
    )


def _as_collected(name: str, value: Any) -> str:
    """A claim as the collection gave it (AAC006 YYYYMMDD; identity keeps ISO dates)."""
    return str(value).replace("-", "") if name == r.BIRTH_DATE else str(value)


@dataclass
class WriteBacks:
    session: AsyncSession

    async def settle(
        self,
        records: dict[UUID, list[LinkedRecord]],
        publish: Callable[[Event], Any],
        now: datetime,
    ) -> dict[str, int]:
        """For the rebuilt persons who have a collection: settle their open write-backs against
        their current records, and ask for the new ones (published through `publish`, the
        rebuild's outbox). Counts per what happened."""
        counts: dict[str, int] = {}
        if not records:
            return counts
        connection = await self.session.connection()
        rows = (
            await connection.execute(
                sa.select(writebacks).where(writebacks.c.person_id.in_(sorted(records, key=str)))
            )
        ).all()
        known = {(row.feedback_id, row.item) for row in rows}
        for row in rows:
            state = _next_state(row, records[row.person_id])
            if state is not None:
                await connection.execute(
                    sa.update(writebacks)
                    .where(
                        writebacks.c.feedback_id == row.feedback_id, writebacks.c.item == row.item
                    )
                    .values(state=state, settled_at=now)
                )
                counts[state] = counts.get(state, 0) + 1
        for person_id in sorted(records, key=str):
            for want in wanted(records[person_id]):
                new = [name for name in want.items if (want.feedback_id, name) not in known]
                if not new:
                    continue  # asked already: re-applying a collection asks nothing new
                publish(request_event(person_id, want, new, now))
                system = want.record.source_table.split(".", 1)[0]
                await connection.execute(
                    insert(writebacks).on_conflict_do_nothing(),
                    [
                        {
                            "feedback_id": want.feedback_id,
                            "item": name,
                            "collection_id": UUID(want.collection.record_key),
                            "person_id": person_id,
                            "system": system,
                            "source_table": want.record.source_table,
                            "record_key": want.record.record_key,
                            "column_name": COLUMNS[want.record.source_table][name],
                            "state": PENDING,
                            "requested_at": now,
                        }
                        for name in new
                    ],
                )
                counts["requested"] = counts.get("requested", 0) + 1
        return counts


def _next_state(row: Any, records: Sequence[LinkedRecord]) -> str | None:
    """A write-back's state after the person's rebuild; None when it stays as it is."""
    if row.state not in (PENDING, REFUSED):
        return None
    collection = next(
        (
            x
            for x in records
            if x.system == SourceSystem.COLLECTION and x.record_key == str(row.collection_id)
        ),
        None,
    )
    record = next(
        (
            x
            for x in records
            if (x.source_table, x.record_key) == (row.source_table, row.record_key)
        ),
        None,
    )
    if collection is None:
        return None  # the collection's record is being moved (a merge): wait for the next build
    stands = None if record is None else standing(collection, record, row.item)
    if stands is Standing.AGREES:
        return APPLIED
    if row.state == REFUSED:
        return None
    newest = newest_collections(records).get(row.item)
    if record is None or stands is None or stands is Standing.CHANGED_SINCE:
        return SUPERSEDED  # gone, no longer claims the item, or changed since to another value
    if newest is not None and newest.record_key != collection.record_key:
        return SUPERSEDED  # a newer collection of the item asks for itself
    return None


def reply_handler() -> Callable[[InboundMessage, UnitOfWork], Any]:
    """feedback.<system>.replies → the write-backs it answers. Idempotent: a refusal settles
    pending items only, so a duplicate changes nothing. An unreadable reply, one for a request
    identity never made, or one from another system than the request's: a dead letter with the
    reason (never the reason's text: it may quote a value)."""

    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        try:
            _, event = message.decode()
        except ValueError as error:
            raise PermanentError(f"not a contract event: {describe(error)}") from None
        if isinstance(event, CollectionApproved) or not isinstance(event, FeedbackReplied):
            raise PermanentError(f"not a feedback reply: {type(event).__name__}")
        if not message.topic.endswith(f"{event.system}.replies"):
            raise PermanentError(f"a reply of {event.system} on another system's topic")
        connection = await uow.session.connection()
        systems = set(
            await connection.scalars(
                sa.select(writebacks.c.system).where(writebacks.c.feedback_id == event.feedback_id)
            )
        )
        if not systems:
            raise PermanentError("reply to a feedback request identity did not make")
        if systems != {event.system}:
            raise PermanentError(f"reply of {event.system} to a request for another system")
        if event.outcome is FeedbackOutcome.REFUSED:
            await connection.execute(
                sa.update(writebacks)
                .where(writebacks.c.feedback_id == event.feedback_id, writebacks.c.state == PENDING)
                .values(state=REFUSED, reason=event.reason, settled_at=event.replied_at)
            )

    return handle
