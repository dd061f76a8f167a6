"""Each person's change history (44号 Art.20, 参保信息变更情况): every change of a value of their
golden record, with the source it came from (the business system's table and record, or the
collection: channel, handler AAE011, reviewer AAE014), and the person's own events (registered,
merged, deceased).

Written by the rebuild (golden_records.py), which has the previous golden record at hand: the new
values are compared with the sealed document the last rebuild stored, and each item whose value
differs becomes one row, all rows of a rebuild in one statement, none when nothing changed. A
change of source alone (the same value now also in another system) is not a change of the
value. Old and new values are sealed per row (protection.py), the row's identity bound as
associated data; the rest of a row names no one (record keys of numbers are blind indexes).

The table is insert-only: a trigger (migration identity_0007) refuses DELETE and TRUNCATE, and an
UPDATE of anything but the sealed values and their key id (what a key rotation rewrites)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Final
from uuid import UUID, uuid4

from canbao_contracts.codes import SourceSystem
from canbao_identity import records as r
from canbao_identity.golden import GoldenDocument
from canbao_identity.protection import Protector, change_context
from canbao_identity.tables import person_changes
from canbao_platform import bulk


class ChangeKind(StrEnum):
    VALUE = "value"  # an item of the golden record changed (`item` says which)
    REGISTERED = "registered"  # the person's first golden record
    DECEASED = "deceased"  # death learnt
    MERGED = "merged"  # this person_id retired into `other_person_id` (one person, two numbers)
    ABSORBED = "absorbed"  # `other_person_id` was merged into this person


# The columns a row is written with (canbao_platform.bulk: one array per column, one statement).
COLUMNS: Final = bulk.columns(person_changes, without=("changed_at",))  # the statement's time
INSERT: Final = bulk.insert("person_changes", COLUMNS)


def value_changes(
    protector: Protector,
    person_id: UUID,
    previous: GoldenDocument | None,
    document: GoldenDocument,
) -> list[dict[str, Any]]:
    """The rows of one rebuild: `previous` is the golden document the last rebuild sealed (None:
    the first), `document` the new one (GoldenRecords._rebuild_one)."""
    values = document.values
    if previous is None:
        entry = values.get(r.ID_NUMBER) or next(iter(values.values()), None)
        rows = [_row(protector, person_id, ChangeKind.REGISTERED, None, entry)]
        if document.deceased:
            rows.append(
                _row(protector, person_id, ChangeKind.DECEASED, None, values.get(r.DEATH_DATE))
            )
        return rows
    rows = []
    before = previous.values
    for item in sorted(values.keys() | before.keys()):
        old, new = before.get(item), values.get(item)
        old_value = None if old is None else old["value"]
        new_value = None if new is None else new["value"]
        if old_value != new_value:
            rows.append(
                _row(
                    protector,
                    person_id,
                    ChangeKind.VALUE,
                    item,
                    new,
                    {"old": old_value, "new": new_value},
                )
            )
    if document.deceased and not previous.deceased:
        rows.append(_row(protector, person_id, ChangeKind.DECEASED, None, values.get(r.DEATH_DATE)))
    return rows


def merge_changes(protector: Protector, merged: UUID, survivor: UUID) -> list[dict[str, Any]]:
    """A merge, on both persons' histories."""
    return [
        _row(protector, merged, ChangeKind.MERGED, None, None, other=survivor),
        _row(protector, survivor, ChangeKind.ABSORBED, None, None, other=merged),
    ]


def _row(
    protector: Protector,
    person_id: UUID,
    kind: ChangeKind,
    item: str | None,
    entry: Mapping[str, Any] | None,
    sealed: Mapping[str, Any] | None = None,
    *,
    other: UUID | None = None,
) -> dict[str, Any]:
    """One row; `entry` is the golden value it is about ({value, source, record_key,
    observed_at, collection?}): its source, not its value, goes in clear."""
    change_id = uuid4()
    entry = entry or {}
    collection = entry.get("collection") or {}
    source = entry.get("source")
    return {
        "change_id": change_id,
        "person_id": person_id,
        "kind": kind.value,
        "item": item,
        "source_table": source,
        "record_key": entry.get("record_key"),
        "observed_at": entry.get("observed_at"),
        "channel": collection.get("channel")
        or (
            source.split(".", 1)[1]
            if source and source.startswith(f"{SourceSystem.COLLECTION.value}.")
            else None
        ),
        "collection_id": _uuid(collection.get("collection_id")),
        "handler": collection.get("handler"),
        "reviewer": collection.get("reviewer"),
        "reviewed_at": collection.get("reviewed_at"),
        "other_person_id": other,
        "values_sealed": None
        if sealed is None
        else protector.encrypt(sealed, context=change_context(person_id, change_id)),
        "key_id": None if sealed is None else protector.key_id,
    }


def _uuid(value: Any) -> UUID | None:
    return None if value is None else UUID(str(value))


def opened(protector: Protector, row: Any) -> dict[str, Any]:
    """A stored row as identity's API answers it: the sealed values opened (clear: the gateway
    masks them)."""
    values: dict[str, Any] = {}
    if row.values_sealed is not None:
        values = protector.decrypt(
            row.values_sealed,
            key_id=row.key_id,
            context=change_context(row.person_id, row.change_id),
        )
    return {
        "change_id": row.change_id,
        "person_id": row.person_id,
        "changed_at": row.changed_at,
        "kind": row.kind,
        "item": row.item,
        "old": values.get("old"),
        "new": values.get("new"),
        "source": row.source_table,
        "record_key": row.record_key,
        "observed_at": row.observed_at,
        "channel": row.channel,
        "collection_id": row.collection_id,
        "handler": row.handler,
        "reviewer": row.reviewer,
        "reviewed_at": row.reviewed_at,
        "other_person_id": row.other_person_id,
    }


def cursor_of(changed_at: datetime, change_id: UUID) -> str:
    return f"{changed_at.isoformat()}~{change_id}"


def parse_cursor(cursor: str) -> tuple[datetime, UUID]:
    """ValueError when it is not one of ours."""
    at, _, change_id = cursor.partition("~")
    parsed = datetime.fromisoformat(at)
    if parsed.tzinfo is None:
        raise ValueError("cursor without a time zone")
    return parsed, UUID(change_id)
