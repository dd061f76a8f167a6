"""The units (employers) of si_core.ab01 (sources.md): no person's record, so never staged nor
resolved. Each change of a unit's row is published on registry.units as the unit's state, or
its deletion, through the outbox in the consumer's own unit of work.

Ordering as for every source record (canbao_contracts.debezium.ChangePosition): the highest
source position applied per unit is kept (`units.position`), so a duplicate or a late copy of an
older change publishes nothing, and a change that leaves the unit as it was (a new snapshot, an
`updated_at` touched) publishes nothing either. A unit's events are keyed by its AAB001, so they
stay in order on one partition; each carries its position as `revision` for consumers to keep
the newest (architecture.md "At-least-once in, exactly-once effect").
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Final

import sqlalchemy as sa

from canbao_contracts.debezium import ChangeEvent
from canbao_contracts.events import UnitChanged, UnitDeleted
from canbao_identity.adapters import si_core
from canbao_identity.adapters.values import text
from canbao_identity.records import UnitRecord
from canbao_platform.messaging import PermanentError, UnitOfWork

UNIT_TABLE: Final = "si_core.ab01"
_VALUES: Final = tuple(field.name for field in fields(UnitRecord))


def is_unit_feed(topic: str) -> bool:
    """By topic suffix, as adapters.adapter_for: the deployment's prefix does not matter."""
    return ".".join(topic.split(".")[-2:]) == UNIT_TABLE


async def apply_unit_change(uow: UnitOfWork, event: ChangeEvent) -> None:
    """Keep the unit's newest state and publish it if it changed; a tombstone does nothing (the
    delete before it did the work)."""
    if (position := event.position) is None:
        if event.op == "tombstone":
            return
        raise PermanentError("change event without an LSN: cannot be ordered")
    revision = position.lsn * 2 + int(position.streamed)  # as handlers.staged_change
    # Read as the enrolments' unit_id is (adapters.si_core.enrolment), so that the two meet.
    if not (unit_id := text(event.key, "aab001")):
        raise PermanentError("malformed change event: si_core.ab01 without its key aab001")
    state = None if event.is_delete or event.row is None else si_core.unit(event.row)
    values = asdict(state) if state is not None else dict.fromkeys(_VALUES)
    connection = await uow.session.connection()
    parameters = {"unit_id": unit_id, "position": revision, "deleted": state is None, **values}
    result = (await connection.execute(_APPLY, parameters)).one()
    if not result.saved:
        return  # a duplicate, or older than what was applied
    # A unit never heard of is as good as deleted: its deletion tells nobody anything.
    before = None if result.position is None or result.deleted else _state_of(result)
    if state == before:
        return
    if state is None:
        uow.publish_event(UnitDeleted(unit_id=unit_id, revision=revision))
    else:
        uow.publish_event(UnitChanged(unit_id=unit_id, revision=revision, **asdict(state)))


def _state_of(row: sa.Row[Any]) -> UnitRecord:
    return UnitRecord(row.credit_code, row.unit_name, row.unit_type, row.region_code)


# One round trip per change: the unit as it was (locked), and the change saved if it is newer
# than what was applied (the guard keeps the newest even against another consumer's insert, a
# rebalance). Both parts see the row as it was before the statement.
_APPLY: Final = sa.text(f"""
    WITH previous AS (
        SELECT position, deleted, {", ".join(_VALUES)} FROM units
        WHERE unit_id = :unit_id FOR UPDATE),
    saved AS (
        INSERT INTO units (unit_id, position, deleted, {", ".join(_VALUES)})
        VALUES (:unit_id, :position, :deleted, {", ".join(f":{v}" for v in _VALUES)})
        ON CONFLICT (unit_id) DO UPDATE SET
            position = excluded.position, deleted = excluded.deleted,
            {", ".join(f"{v} = excluded.{v}" for v in _VALUES)}, updated_at = now()
        WHERE units.position < excluded.position
        RETURNING 1)
    SELECT previous.*, EXISTS (SELECT FROM saved) AS saved
    FROM (SELECT) AS one LEFT JOIN previous ON true
""")
