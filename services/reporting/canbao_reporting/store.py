"""Reading and adding person states (tables.person_states). The caller's unit of work commits.

The table as of a moment is each person's newest state applied before it; a state carries the
cells it counts in (quarterly_table.cells_of, computed as it is applied), so the table is a count
per cell and the people behind a number the persons whose newest state holds that cell, in the
database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from canbao_contracts.events import Verdict
from canbao_reporting.quarterly_table import Cell, cell_names, cell_of, cells_of
from canbao_reporting.tables import person_states


async def apply_state(
    session: AsyncSession, person_id: UUID, verdict: Verdict | None, *,
    evaluated_at: datetime, arrived_at: datetime,
) -> bool:  # fmt: skip
    """Add the person's new state (None: withdrawn) unless the newest applied is as new or newer
    (a duplicate, or an older verdict overtaken by a newer one); True when added."""
    # One person's events come from one partition, handled by one consumer at a time; the lock
    # keeps two instances from interleaving during a rebalance all the same.
    connection = await session.connection()  # Core statements: SQLModel's session warns on them
    await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(person_id))))
    newest = (
        await connection.execute(
            sa.select(person_states.c.evaluated_at, person_states.c.valid_from)
            .where(person_states.c.person_id == person_id)
            .order_by(person_states.c.id.desc())
            .limit(1)
        )
    ).first()
    if newest is not None and newest.evaluated_at >= evaluated_at:
        return False
    # Never before the state it supersedes, whatever this instance's clock says: the states of a
    # person follow each other in time as they do in `id`.
    valid_from = max(arrived_at, newest.valid_from) if newest is not None else arrived_at
    await connection.execute(
        sa.insert(person_states).values(
            person_id=person_id, valid_from=valid_from, evaluated_at=evaluated_at,
            verdict=None if verdict is None else verdict.model_dump(mode="json"),
            region_code=None if verdict is None else verdict.region_code,
            cells=[] if verdict is None else cell_names(cells_of(verdict)),
        )
    )  # fmt: skip
    return True


def _lock_key(person_id: UUID) -> int:
    return int.from_bytes(person_id.bytes[:8], "big", signed=True)


# Each person's newest state applied before :before (NULL: all applied so far); a withdrawn one
# has no cells. :region narrows to a division's people by their code's prefix ('' : everyone).
_NEWEST: Final = """
    SELECT DISTINCT ON (person_id) person_id, verdict, region_code, cells FROM person_states
    WHERE CAST(:before AS timestamptz) IS NULL OR valid_from < :before
    ORDER BY person_id, id DESC
"""
_IN_REGION: Final = "(:region = '' OR newest.region_code LIKE :region || '%')"


async def cell_counts(
    session: AsyncSession, before: datetime | None, *, region: str = ""
) -> dict[Cell, int]:
    """The people counted in each cell of the table as of `before` (None: now)."""
    query = sa.text(f"""
        SELECT cell, count(*) AS people FROM ({_NEWEST}) AS newest, unnest(newest.cells) AS cell
        WHERE {_IN_REGION} GROUP BY cell
    """)  # fmt: skip
    connection = await session.connection()
    rows = await connection.execute(query, {"before": before, "region": region})
    return {cell_of(row.cell): row.people for row in rows}


@dataclass(frozen=True, slots=True)
class PersonInCell:
    person_id: UUID
    city: str
    verdict: Mapping[str, Any]


def _cell_match(city: str | None, column: int) -> tuple[str, str]:
    """The SQL condition on one cell name and its parameter: one city's cell, or (None) the
    column in every city — the total row."""
    if city is None:
        return "cell LIKE :cell", f"%:{column}"
    return "cell = :cell", f"{city}:{column}"


async def people_in_cell(
    session: AsyncSession, before: datetime | None, *, city: str | None, column: int,
    region: str = "", after: tuple[UUID, str] | None = None, limit: int = 100,
) -> list[PersonInCell]:  # fmt: skip
    """The people counted in a cell as of `before`, by person_id then city (a person counts once
    per city of a row; in the total row once per city they count in, as the total sums them);
    `after`: the (person_id, city) the previous page ended with."""
    condition, cell = _cell_match(city, column)
    query = sa.text(f"""
        SELECT newest.person_id, cell, newest.verdict
        FROM ({_NEWEST}) AS newest, unnest(newest.cells) AS cell
        WHERE {condition} AND {_IN_REGION}
          AND (CAST(:after_person AS uuid) IS NULL
               OR (newest.person_id, cell) > (:after_person, :after_cell))
        ORDER BY newest.person_id, cell LIMIT :limit
    """)  # fmt: skip
    after_person, after_city = after if after is not None else (None, "")
    connection = await session.connection()
    rows = await connection.execute(query, {
        "before": before, "region": region, "cell": cell, "limit": limit,
        "after_person": after_person, "after_cell": f"{after_city}:{column}",
    })  # fmt: skip
    return [PersonInCell(row.person_id, cell_of(row.cell)[0], row.verdict) for row in rows]


async def people_counted(
    session: AsyncSession, before: datetime | None, *, city: str | None, column: int,
    region: str = "",
) -> int:  # fmt: skip
    """How many entries `people_in_cell` lists in all: the cell's number."""
    condition, cell = _cell_match(city, column)
    query = sa.text(f"""
        SELECT count(*) FROM ({_NEWEST}) AS newest, unnest(newest.cells) AS cell
        WHERE {condition} AND {_IN_REGION}
    """)  # fmt: skip
    connection = await session.connection()
    counted = await connection.scalar(query, {"before": before, "region": region, "cell": cell})
    return int(counted or 0)
