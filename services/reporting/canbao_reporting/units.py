"""The units of the core insurance system (si_core.ab01) as identity publishes them on
registry.units (canbao_contracts.events.units): what names an employer on the list labour
inspection works through (routes.py employers). Reporting reads no source: the names come as
events, like everything else it knows (architecture.md "Data flows one way").

One row a unit: the event with the highest `revision` (the change's source position) wins, so a
duplicate or a late copy of an older change leaves the newest state. The caller's unit of work
commits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_contracts.events import UnitChanged, UnitDeleted
from canbao_reporting.tables import units

_STATE: Final = {"credit_code", "unit_name", "unit_type", "region_code"}  # UnitChanged's


@dataclass(frozen=True, slots=True)
class KnownUnit:
    name: str | None  # AAB004
    credit_code: str | None  # AAB003


async def apply_unit(session: AsyncSession, event: UnitChanged | UnitDeleted) -> bool:
    """Keep the unit's state unless a newer one is kept already; True when kept."""
    deleted = isinstance(event, UnitDeleted)
    state = dict.fromkeys(_STATE) if deleted else event.model_dump(mode="json", include=_STATE)
    statement = insert(units).values(
        unit_id=event.unit_id, revision=event.revision, deleted=deleted, **state
    )
    statement = statement.on_conflict_do_update(
        index_elements=[units.c.unit_id],
        set_={c.name: statement.excluded[c.name] for c in units.columns if c.name != "unit_id"},
        where=units.c.revision < statement.excluded.revision,
    )
    connection = await session.connection()  # Core statements: SQLModel's session warns on them
    return bool((await connection.execute(statement)).rowcount)


async def known_units(session: AsyncSession, unit_ids: Iterable[str]) -> dict[str, KnownUnit]:
    """Name and credit code of each of the units the registry knows (not deleted); a unit it
    does not know (medical's emp_no of a unit si_core lacks) is not in the answer."""
    query = sa.select(units.c.unit_id, units.c.unit_name, units.c.credit_code).where(
        units.c.unit_id.in_(list(unit_ids)), sa.not_(units.c.deleted)
    )
    connection = await session.connection()
    rows = await connection.execute(query)
    return {row.unit_id: KnownUnit(row.unit_name, row.credit_code) for row in rows}
