"""Step 0 of the registry: a consumed change, staged for resolution.

The consumers' handlers run once per message inside the runner's batch transaction; staging is
a `session.add` — no round trip of its own, the runner's flush writes the whole batch in one
INSERT — so consuming costs what parsing and encrypting cost. Resolution then works on hundreds
of staged changes per query (registry.py), which is what makes the feed of a province keep up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy.orm import registry as orm_registry

from canbao_identity.protection import Protector
from canbao_identity.records import SourceRecord
from canbao_identity.resolution import identify
from canbao_identity.tables import staged_changes


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
    facts: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    link_ref: str | None = None
    forced_person_id: UUID | None = None
    document_type: str | None = None
    number_index: str | None = None
    demographic_index: str | None = None
    defects: list[str] = field(default_factory=list)
    id: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.source_table, self.record_key


orm_registry().map_imperatively(StagedChange, staged_changes)


def record_context(source_table: str, record_key: str) -> str:
    """The associated data of a record's ciphertext: it decrypts only as that record."""
    return f"source_records|{source_table}|{record_key}"


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
) -> StagedChange:
    """The change (None: the row was deleted), identified and encrypted."""
    change = StagedChange(
        source_table,
        record_key,
        position,
        observed_at,
        deleted=record is None,
        provenance=provenance or {},
        forced_person_id=forced_person_id,
    )
    if record is None:
        return change
    ident = identify(record, protector)
    if record.claims:
        context = record_context(source_table, record_key)
        change.claims_ciphertext = protector.encrypt(record.claims, context=context)
        change.key_id = protector.key_id
    change.facts = [{"kind": f.kind, "fields": f.fields} for f in record.facts]
    change.link_ref = record.link_ref
    change.document_type = ident.document_type
    change.number_index = ident.number_index
    change.demographic_index = ident.demographic_index
    change.defects = list(ident.defects)
    return change
