"""The consumers' handlers: a change event of a source table (cdc.*) or an approved collection
(registry.collections) → staged for the golden records (golden_records.py), in the runner's
unit of work; a change of a unit (si_core.ab01) → registry.units (units.py).

Logs name topic, partition, offset and counts only: never a key (hukou's key is a number), a
value or a person's data (domain.md §2.5)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from canbao_contracts.debezium import (
    ChangeEvent,
    MalformedChangeEvent,
    decode_timestamp,
    parse_change_event,
)
from canbao_contracts.events import CollectionApproved
from canbao_identity.adapters import Adapter, adapter_for, collection
from canbao_identity.protection import Protector
from canbao_identity.staging import StagedChange, add_staged, stage
from canbao_identity.store import Store
from canbao_identity.units import apply_unit_change, is_unit_feed
from canbao_platform.messaging import InboundMessage, PermanentError, UnitOfWork
from canbao_platform.messaging.failures import describe

Handler = Callable[[InboundMessage, UnitOfWork], Awaitable[None]]


def change_handler(protector: Protector) -> Handler:
    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        if is_unit_feed(message.topic):  # no person's: published as it is (units.py)
            await apply_unit_change(uow, _parsed(message))
            return
        adapter = adapter_for(message.topic)
        if adapter is None:
            raise PermanentError(f"no adapter for topic {message.topic}")
        if (change := staged_change(protector, adapter, _parsed(message))) is not None:
            add_staged(uow, change)

    return handle


def _parsed(message: InboundMessage) -> ChangeEvent:
    try:
        return parse_change_event(message.key, message.value, topic=message.topic)
    except MalformedChangeEvent as error:
        raise PermanentError(f"malformed change event: {error.reason}") from None


def staged_change(
    protector: Protector, adapter: Adapter, event: ChangeEvent
) -> StagedChange | None:
    """The change event as a staged change; None for a tombstone (the delete before it did the
    work)."""
    position = event.position
    if position is None:
        if event.op == "tombstone":
            return None
        raise PermanentError("change event without an LSN: cannot be ordered")
    # A snapshot read and a streamed change at one LSN: the streamed one is newer.
    revision = position.lsn * 2 + int(position.streamed)
    key = record_key(adapter, event.key, protector)
    observed = event.source_ts_ms if event.source_ts_ms is not None else event.ts_ms
    observed_at = (
        None if observed is None else datetime.fromtimestamp(observed / 1000, UTC).isoformat()
    )
    record = None
    if not event.is_delete:
        assert event.row is not None
        try:
            record = adapter.to_record(event.row)
        except MalformedChangeEvent as error:
            raise PermanentError(f"malformed change event: {error.reason}") from None
    return stage(
        protector,
        f"{adapter.system}.{adapter.table}",
        key,
        revision,
        observed_at,
        record,
        changed_at=changed_at(event, streamed=position.streamed),
        snapshot_read=not position.streamed,
    )


def changed_at(event: ChangeEvent, *, streamed: bool) -> datetime | None:
    """When the source changed the row, as far as the event tells, for precedence against a
    collection (golden.py). A streamed change: its commit time in the source (source.ts_ms). A
    snapshot read is no change: its time is when Debezium read it, which would make a value
    years old look newer than yesterday's approved collection; so the row's own `updated_at`
    (sources.md: every table has one) dates it, else nothing (older than any collection).
    The store keeps the later of this and what it knew (store._SAVE_RECORDS), so a re-snapshot
    never moves a streamed change's time back either."""
    if event.is_delete:
        return None
    if streamed:
        ms = event.source_ts_ms if event.source_ts_ms is not None else event.ts_ms
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)
    try:
        updated = decode_timestamp((event.row or {}).get("updated_at"), column="updated_at")
    except MalformedChangeEvent:
        return None  # an unreadable date dates nothing: the row's values are still read
    if updated is None or updated.tzinfo is None or updated.year < 1971:
        return None  # 1970-01-01: the type's default where the column was not captured
    return updated


def record_key(adapter: Adapter, key: dict[str, Any], protector: Protector) -> str:
    """`column=value` pairs in key order (FactSource.record_key); a citizen number as its blind
    index."""
    if adapter.key_is_id_number:
        return ",".join(f"{k}=#{protector.number_index('01', str(v))}" for k, v in key.items())
    return ",".join(f"{k}={v}" for k, v in key.items())


def collection_handler(protector: Protector) -> Handler:
    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        try:
            _, event = message.decode()
        except ValueError as error:  # the reason names the field and rule, never the value
            raise PermanentError(f"not a contract event: {describe(error)}") from None
        if not isinstance(event, CollectionApproved):
            return  # another event type on the topic: not ours to apply
        if (
            event.person_id is not None
            and await Store(uow.session, protector).person(event.person_id) is None
        ):
            raise PermanentError("collection names a person_id identity does not know")
        add_staged(uow, collection_change(protector, event))

    return handle


def collection_change(protector: Protector, event: CollectionApproved) -> StagedChange:
    """An approved collection staged as the source record it is (adapters/collection.py)."""
    record = collection.approved(event)
    return stage(
        protector,
        record.source_table,
        str(event.collection_id),
        int(event.reviewed_at.timestamp() * 1000),
        event.reviewed_at.isoformat(),
        record,
        forced_person_id=event.person_id,
        provenance=collection.provenance(event),
        changed_at=event.reviewed_at,
    )
