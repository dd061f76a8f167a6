"""Step 0 of the registry: a consumed change, staged for resolution.

The consumers' handlers run once per message inside the runner's batch transaction; staging
(`add_staged`) buffers the row in the unit of work (`UnitOfWork.buffer`: no round trip of its
own, written with every other staged row by one INSERT when the transaction, or a replayed
message's savepoint, commits), so consuming costs what parsing and encrypting cost. Plain rows,
not ORM objects: the ORM's instrumentation of ~50k objects was a third of the consumer's time.
PostgreSQL gives each row its share (tables.staged_changes). Resolution then works on thousands
of staged changes per query (golden_records.py), which is what makes the feed of a province keep up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.orm import Session

from canbao_identity.protection import Protector, record_context
from canbao_identity.records import SourceRecord
from canbao_identity.resolution import identify
from canbao_identity.tables import staged_changes
from canbao_platform import bulk
from canbao_platform.messaging import UnitOfWork


@dataclass
class StagedChange:
    """A source record's change as resolution needs it (the row of `staged_changes`)."""

    source_table: str
    record_key: str
    position: int
    observed_at: str | None
    deleted: bool
    claims_ciphertext: bytes | None = None
    key_id: str | None = None
    # JSON text: not read on the way to source_records, so never decoded on it.
    facts: str = "[]"
    provenance: str = "{}"
    link_ref: str | None = None
    forced_person_id: UUID | None = None
    document_type: str | None = None
    number_index: str | None = None
    demographic_index: str | None = None
    defects: list[str] = field(default_factory=list)
    # When the source last changed the record, as far as we know (handlers.staged_change): what
    # precedence compares with a collection's approval (golden.py).
    changed_at: datetime | None = None
    # A snapshot's read of the row, not a change streamed from the source's log: the persons it
    # reaches settle before they are rebuilt (tables.pending_persons).
    snapshot_read: bool = False
    id: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.source_table, self.record_key


# The row as the consumer writes it (`id`, `staged_at` and `share` are the database's).
STAGED_COLUMNS = tuple(f.name for f in dataclasses.fields(StagedChange) if f.name != "id")
_COLUMNS = bulk.columns(staged_changes, STAGED_COLUMNS)


class _StagedRows:
    """A transaction's staged rows, by one INSERT of a text array per column
    (canbao_platform.bulk; a `BulkWrite`): the JSON columns travel as the text staging encoded,
    which `add_row`'s typed INSERT would encode again (and it costs ~2 µs more per row in
    SQLAlchemy's bind processing)."""

    _INSERT = sa.text(bulk.insert("staged_changes", _COLUMNS))

    def write(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        session.execute(self._INSERT, bulk.arrays(rows, _COLUMNS))


_STAGED_ROWS: Final = _StagedRows()


def add_staged(uow: UnitOfWork, change: StagedChange) -> None:
    """Stage `change` in the unit of work: written with the others when it (or the savepoint it
    was added in) commits, discarded if it rolls back."""
    row = {name: getattr(change, name) for name in STAGED_COLUMNS}
    row["defects"] = bulk.to_json(change.defects)
    uow.buffer(_STAGED_ROWS, row)


def stage(
    protector: Protector,
    source_table: str,
    record_key: str,
    position: int,
    observed_at: str | None,
    record: SourceRecord | None,
    *,
    forced_person_id: UUID | None = None,
    provenance: dict[str, Any] | None = None,
    changed_at: datetime | None = None,
    snapshot_read: bool = False,
) -> StagedChange:
    """The change (None: the row was deleted), identified and encrypted."""
    change = StagedChange(
        source_table,
        record_key,
        position,
        observed_at,
        deleted=record is None,
        provenance=bulk.to_json(provenance or {}),
        forced_person_id=forced_person_id,
        changed_at=changed_at,
        snapshot_read=snapshot_read,
    )
    if record is None:
        return change
    ident = identify(record, protector)
    if record.claims:
        context = record_context(source_table, record_key)
        change.claims_ciphertext = protector.encrypt(record.claims, context=context)
        change.key_id = protector.key_id
    change.facts = (
        bulk.to_json([{"kind": f.kind, "fields": f.fields} for f in record.facts]) or "[]"
    )
    change.link_ref = record.link_ref
    change.document_type = ident.document_type
    change.number_index = ident.number_index
    change.demographic_index = ident.demographic_index
    change.defects = list(ident.defects)
    return change
