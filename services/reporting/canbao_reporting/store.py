"""Reading and adding person states (tables.person_states, person_newest and the quarters kept).
The caller's unit of work commits.

The table as of a moment is each person's newest state applied before it; a state carries the
cells it counts in (quarterly_table.cells_of, computed as it is applied), so the table is a count
per cell and the people behind a number the persons whose newest state holds that cell, in the
database. Now, that is person_newest, one row a person; as of a past quarter's end, the newest
row of each person in the history, counted once and kept when the quarter has settled."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from canbao_contracts.codes import Insurance
from canbao_contracts.events import Verdict
from canbao_reporting.coverage import (
    INSURED_CODES,
    SHOULD_CODES,
    DivisionCounts,
    InsuranceCounts,
    Target,
    TargetRate,
)
from canbao_reporting.plan_lists import PlanList, lists_of
from canbao_reporting.quarterly_table import (
    UNKNOWN_CITY,
    Cell,
    cell_names,
    cell_of,
    cells_of,
    city_of,
)
from canbao_reporting.tables import (
    coverage_targets,
    filings,
    quarter_cells,
    quarter_coverage,
    quarter_snapshots,
)

# One statement, so one round trip, a verdict (the consumer's rate is its statements'): the
# person's newest state replaced unless it is as new or newer (a duplicate, or an older verdict
# overtaken by a newer one), and, when it was, the same state appended to the history. ON
# CONFLICT … DO UPDATE locks the person's row and rechecks it if another transaction changed it
# meanwhile: one person's states are applied one at a time and in order, whichever instance
# applies them (one person's events come from one partition, but two instances may overlap
# during a rebalance). Never before the state it supersedes, whatever this instance's clock
# says: the states of a person follow each other in time as they do in `id`.
_APPLY: Final = sa.text("""
    WITH newest AS (
        INSERT INTO person_newest AS n
               (person_id, valid_from, evaluated_at, verdict, region_code, cells, lists)
        VALUES (:person_id, :arrived_at, :evaluated_at, :verdict, :region_code, :cells, :lists)
        ON CONFLICT (person_id) DO UPDATE
           SET valid_from = GREATEST(EXCLUDED.valid_from, n.valid_from),
               evaluated_at = EXCLUDED.evaluated_at, verdict = EXCLUDED.verdict,
               region_code = EXCLUDED.region_code, cells = EXCLUDED.cells,
               lists = EXCLUDED.lists
         WHERE n.evaluated_at < EXCLUDED.evaluated_at
        RETURNING n.person_id, n.valid_from, n.evaluated_at, n.verdict, n.region_code, n.cells,
                  n.lists
    )
    INSERT INTO person_states (person_id, valid_from, evaluated_at, verdict, region_code, cells,
                               lists)
    SELECT * FROM newest
""").bindparams(
    sa.bindparam("verdict", type_=JSONB(none_as_null=True)),
    sa.bindparam("cells", type_=ARRAY(sa.Text)),
    sa.bindparam("lists", type_=ARRAY(sa.Text)),
)


async def apply_state(
    session: AsyncSession,
    person_id: UUID,
    verdict: Verdict | None,
    *,
    evaluated_at: datetime,
    arrived_at: datetime,
) -> bool:
    """Add the person's new state (None: withdrawn) unless the newest applied is as new or newer
    (a duplicate, or an older verdict overtaken by a newer one); True when added."""
    connection = await session.connection()  # Core statements: SQLModel's session warns on them
    added = await connection.execute(
        _APPLY,
        {
            "person_id": person_id,
            "arrived_at": arrived_at,
            "evaluated_at": evaluated_at,
            "verdict": None if verdict is None else verdict.model_dump(mode="json"),
            "region_code": None if verdict is None else verdict.region_code,
            "cells": [] if verdict is None else cell_names(cells_of(verdict)),
            "lists": [] if verdict is None else sorted(lists_of(verdict)),
        },
    )
    return bool(added.rowcount)


# The people as of a moment, as `newest` (person_id, verdict, region_code, cells, lists): now,
# the row apply_state keeps for each; as of :before, each person's newest state applied before
# it, picked out of the history (a withdrawn one has no cells and is on no list).
_NOW: Final = "person_newest"
_AS_OF: Final = """(
    SELECT DISTINCT ON (person_id) person_id, verdict, region_code, cells, lists
    FROM person_states WHERE valid_from < :before ORDER BY person_id, id DESC
)"""
# :region narrows to a division's people by their code's prefix ('' : everyone).
_IN_REGION: Final = "(:region = '' OR newest.region_code LIKE :region || '%')"


def _people(before: datetime | None) -> str:
    return _NOW if before is None else _AS_OF


async def cell_counts(
    session: AsyncSession, before: datetime | None, *, region: str = "", keep: bool = False
) -> dict[Cell, int]:
    """The people counted in each cell of the table as of `before` (None: now); `keep`: the
    moment has settled, the counts as of it may be kept (`past_counts`)."""
    if before is not None:
        return (await past_counts(session, before, keep=keep)).cell_counts(region)
    query = sa.text(f"""
        SELECT cell, count(*) AS people FROM {_NOW} AS newest, unnest(newest.cells) AS cell
        WHERE {_IN_REGION} GROUP BY cell
    """)
    connection = await session.connection()
    rows = await connection.execute(query, {"region": region})
    return {cell_of(row.cell): row.people for row in rows}


@dataclass(frozen=True, slots=True)
class PersonInCell:
    person_id: UUID
    city: str
    verdict: Mapping[str, Any]


def _cell_match(city: str | None, column: int) -> tuple[str, str]:
    """The SQL condition on one cell name and its parameter: one city's cell (also as the
    containment person_newest's index answers), or (None) the column in every city — the
    total row."""
    if city is None:
        return "cell LIKE :cell", f"%:{column}"
    return "cell = :cell AND newest.cells @> ARRAY[CAST(:cell AS text)]", f"{city}:{column}"


async def people_in_cell(
    session: AsyncSession,
    before: datetime | None,
    *,
    city: str | None,
    column: int,
    region: str = "",
    after: tuple[UUID, str] | None = None,
    limit: int = 100,
) -> list[PersonInCell]:
    """The people counted in a cell as of `before`, by person_id then city (a person counts once
    per city of a row; in the total row once per city they count in, as the total sums them);
    `after`: the (person_id, city) the previous page ended with."""
    condition, cell = _cell_match(city, column)
    # The page starts at the cursor's person: an index range, also inside the history's
    # DISTINCT ON (person_id), into which a condition on person_id alone is pushed down.
    cursor = ""
    if after is not None:
        cursor = (
            "AND newest.person_id >= :after_person"
            " AND (newest.person_id, cell) > (:after_person, :after_cell)"
        )
    query = sa.text(f"""
        SELECT newest.person_id, cell, newest.verdict
        FROM {_people(before)} AS newest, unnest(newest.cells) AS cell
        WHERE {condition} AND {_IN_REGION} {cursor}
        ORDER BY newest.person_id, cell LIMIT :limit
    """)
    values: dict[str, Any] = {"before": before, "region": region, "cell": cell, "limit": limit}
    if after is not None:
        values |= {"after_person": after[0], "after_cell": f"{after[1]}:{column}"}
    connection = await session.connection()
    rows = await connection.execute(query, values)
    return [PersonInCell(row.person_id, cell_of(row.cell)[0], row.verdict) for row in rows]


async def people_counted(
    session: AsyncSession,
    before: datetime | None,
    *,
    city: str | None,
    column: int,
    region: str = "",
    keep: bool = False,
) -> int:
    """How many entries `people_in_cell` lists in all: the cell's number."""
    if before is not None:
        counts = await past_counts(session, before, keep=keep)
        return counts.people_counted(city=city, column=column, region=region)
    condition, cell = _cell_match(city, column)
    query = sa.text(f"""
        SELECT count(*) FROM {_NOW} AS newest, unnest(newest.cells) AS cell
        WHERE {condition} AND {_IN_REGION}
    """)
    connection = await session.connection()
    counted = await connection.scalar(query, {"region": region, "cell": cell})
    return int(counted or 0)


def _coverage_query(people: str, division: str) -> str:
    """One pass over the people: per `division`, the counts coverage.py computes from."""
    counts = [
        "count(*) AS people",
        "count(*) FILTER (WHERE verdict->>'registration' IN ('confirmed', 'verified'))"
        " AS registered",
        "count(*) FILTER (WHERE verdict->>'registration' <> 'confirmed') AS needing",
        "count(*) FILTER (WHERE verdict->>'registration' = 'verified') AS verified",
    ]
    for insurance in Insurance:
        code = f"verdict->'statuses'->>'{insurance.value}'"
        counts += [
            f"count(*) FILTER (WHERE {code} = ANY(:should)) AS {insurance.value}_should",
            f"count(*) FILTER (WHERE {code} = ANY(:insured)) AS {insurance.value}_insured",
        ]
    return f"""
        SELECT {division} AS division, {", ".join(counts)}
        FROM {people} AS newest
        WHERE newest.verdict IS NOT NULL AND NOT (newest.verdict->>'deceased')::boolean
          AND (newest.verdict->>'household_registered_locally')::boolean AND {_IN_REGION}
        GROUP BY 1
    """


# Now: per division of :digits digits. As of a moment: per division code ('' : none), kept.
_COVERAGE: Final = _coverage_query(
    _NOW, f"COALESCE(left(newest.region_code, :digits), '{UNKNOWN_CITY}')"
)
_COVERAGE_BY_CODE: Final = _coverage_query(_AS_OF, "COALESCE(newest.region_code, '')")
_CELLS_BY_CODE: Final = f"""
    SELECT COALESCE(newest.region_code, '') AS division, cell, count(*) AS people
    FROM {_AS_OF} AS newest, unnest(newest.cells) AS cell GROUP BY 1, 2
"""
_CODES: Final = {"should": list(SHOULD_CODES), "insured": list(INSURED_CODES)}


def _division_counts(row: Any) -> DivisionCounts:
    return DivisionCounts(
        row.people,
        row.registered,
        row.needing,
        row.verified,
        {
            i: InsuranceCounts(
                getattr(row, f"{i.value}_should"), getattr(row, f"{i.value}_insured")
            )
            for i in Insurance
        },
    )


async def coverage_counts(
    session: AsyncSession,
    before: datetime | None,
    *,
    region: str,
    digits: int,
    keep: bool = False,
) -> dict[str, DivisionCounts]:
    """The counts of each division of `digits` digits (4: cities, 6: counties) within `region`
    ('': the province; people without a division under "unknown")."""
    if before is not None:
        counts = await past_counts(session, before, keep=keep)
        return counts.coverage_counts(region=region, digits=digits)
    connection = await session.connection()
    rows = await connection.execute(
        sa.text(_COVERAGE), {"region": region, "digits": digits, **_CODES}
    )
    return {row.division: _division_counts(row) for row in rows}


@dataclass(frozen=True, slots=True)
class QuarterCounts:
    """A moment's counts per division code ('' : none): the table's cells and what coverage is
    computed from; every region's answer is a sum of them."""

    cells: Sequence[tuple[str, str, int]]  # division code, cell name, people
    coverage: Mapping[str, DivisionCounts]  # division code → counts

    def cell_counts(self, region: str) -> dict[Cell, int]:
        found: dict[Cell, int] = defaultdict(int)
        for code, cell, people in self.cells:
            if code.startswith(region):
                found[cell_of(cell)] += people
        return dict(found)

    def people_counted(self, *, city: str | None, column: int, region: str) -> int:
        return sum(
            people
            for (c, column_), people in self.cell_counts(region).items()
            if column_ == column and (city is None or c == city)
        )

    def coverage_counts(self, *, region: str, digits: int) -> dict[str, DivisionCounts]:
        found: dict[str, DivisionCounts] = {}
        for code, counts in self.coverage.items():
            if code.startswith(region):
                division = code[:digits] or UNKNOWN_CITY
                found[division] = found[division] + counts if division in found else counts
        return found


async def past_counts(session: AsyncSession, as_of: datetime, *, keep: bool) -> QuarterCounts:
    """The counts as of `as_of` (a quarter's end): as kept, else counted from the history (the
    table's and coverage's at once: whichever is asked first keeps both); and kept, if `keep`
    (the quarter has settled: nothing applied before its end is still to come). A quarter is
    kept once: a second request keeping it at the same time keeps nothing."""
    connection = await session.connection()
    kept = await _kept(connection, as_of)
    if kept is not None:
        return kept
    cells = await connection.execute(sa.text(_CELLS_BY_CODE), {"before": as_of})
    coverage = await connection.execute(
        sa.text(_COVERAGE_BY_CODE), {"before": as_of, "region": "", **_CODES}
    )
    counted = QuarterCounts(
        [(row.division, row.cell, row.people) for row in cells],
        {row.division: _division_counts(row) for row in coverage},
    )
    if keep:
        await _keep(connection, as_of, counted)
    return counted


async def _kept(connection: AsyncConnection, as_of: datetime) -> QuarterCounts | None:
    kept = sa.select(quarter_snapshots.c.as_of).where(quarter_snapshots.c.as_of == as_of)
    if await connection.scalar(kept) is None:
        return None
    cells = await connection.execute(sa.select(quarter_cells).where(quarter_cells.c.as_of == as_of))
    coverage = await connection.execute(
        sa.select(quarter_coverage).where(quarter_coverage.c.as_of == as_of)
    )
    return QuarterCounts(
        [(row.region_code, row.cell, row.people) for row in cells],
        {row.region_code: _division_counts(row) for row in coverage},
    )


async def _keep(connection: AsyncConnection, as_of: datetime, counted: QuarterCounts) -> None:
    first = await connection.scalar(
        pg_insert(quarter_snapshots)
        .values(as_of=as_of, kept_at=sa.func.now())
        .on_conflict_do_nothing()
        .returning(quarter_snapshots.c.as_of)
    )
    if first is None:
        return  # kept meanwhile by another request
    if counted.cells:
        await connection.execute(
            sa.insert(quarter_cells),
            [
                {"as_of": as_of, "region_code": code, "cell": cell, "people": people}
                for code, cell, people in counted.cells
            ],
        )
    if counted.coverage:
        await connection.execute(
            sa.insert(quarter_coverage),
            [
                {"as_of": as_of, "region_code": code, **_coverage_row(counts)}
                for code, counts in counted.coverage.items()
            ],
        )


def _coverage_row(counts: DivisionCounts) -> dict[str, int]:
    row = {
        "people": counts.people,
        "registered": counts.registered,
        "needing": counts.needing,
        "verified": counts.verified,
    }
    for insurance, counted in counts.insurances.items():
        row |= {
            f"{insurance.value}_should": counted.should,
            f"{insurance.value}_insured": counted.insured,
        }
    return row  # tables.COVERAGE_COUNTS, each


async def set_targets(
    session: AsyncSession,
    *,
    region: str,
    year: int,
    rates: Mapping[Insurance, float],
    set_by: str,
    at: datetime,
) -> None:
    """Enter (or revise) the division's targets for the year."""
    if not rates:
        return
    rows = [
        {
            "region": region,
            "year": year,
            "insurance": insurance.value,
            "rate": rate,
            "set_by": set_by,
            "set_at": at,
        }
        for insurance, rate in rates.items()
    ]
    insert = pg_insert(coverage_targets).values(rows)
    connection = await session.connection()
    await connection.execute(
        insert.on_conflict_do_update(
            index_elements=[
                coverage_targets.c.region,
                coverage_targets.c.year,
                coverage_targets.c.insurance,
            ],
            set_={
                "rate": insert.excluded.rate,
                "set_by": insert.excluded.set_by,
                "set_at": insert.excluded.set_at,
            },
        )
    )


async def targets(session: AsyncSession, *, year: int, within: str) -> dict[str, Target]:
    """The year's targets of `within` and every division inside it (and of the divisions
    containing it), by region then insurance."""
    query = sa.select(coverage_targets).where(
        coverage_targets.c.year == year,
        sa.or_(
            coverage_targets.c.region.startswith(within),
            sa.literal(within).startswith(coverage_targets.c.region),
        ),
    )
    connection = await session.connection()
    found: dict[str, Target] = {}
    for row in await connection.execute(query):
        found.setdefault(row.region, {})[Insurance(row.insurance)] = TargetRate(
            float(row.rate), row.set_by, row.set_at
        )
    return found


# The lists a state is on as of a day: those stored with it, and the long-interrupted when its
# interruption began before :cutoff (a list that time alone fills: plan_lists.py).
_LISTS_AS_OF: Final = f"""(newest.lists || CASE
    WHEN '{PlanList.INTERRUPTED.value}' = ANY(newest.lists)
         AND (newest.verdict->>'interrupted_since')::date < :cutoff
    THEN ARRAY['{PlanList.LONG_INTERRUPTED.value}'] ELSE ARRAY[]::text[] END)"""


async def list_counts(
    session: AsyncSession, before: datetime | None, *, region: str, digits: int, cutoff: date
) -> dict[tuple[str, PlanList], int]:
    """How many people of each division (of `digits` digits, within `region`) each list holds
    (`cutoff`: the long-interrupted are those interrupted before it)."""
    query = sa.text(f"""
        SELECT COALESCE(left(newest.region_code, :digits), '{UNKNOWN_CITY}') AS division,
               name, count(*) AS people
        FROM {_people(before)} AS newest, unnest({_LISTS_AS_OF}) AS name
        WHERE {_IN_REGION} GROUP BY 1, 2
    """)
    connection = await session.connection()
    rows = await connection.execute(
        query, {"before": before, "region": region, "digits": digits, "cutoff": cutoff}
    )
    return {(row.division, PlanList(row.name)): row.people for row in rows}


async def people_on_list(
    session: AsyncSession,
    before: datetime | None,
    *,
    name: PlanList,
    region: str,
    cutoff: date,
    after: UUID | None = None,
    limit: int = 100,
) -> list[PersonInCell]:
    """The people on a list within `region`, by person_id, after `after`."""
    query = sa.text(f"""
        SELECT newest.person_id, newest.verdict FROM {_people(before)} AS newest
        WHERE :name = ANY({_LISTS_AS_OF}) AND {_IN_REGION}
          AND (CAST(:after AS uuid) IS NULL OR newest.person_id > :after)
        ORDER BY newest.person_id LIMIT :limit
    """)
    connection = await session.connection()
    rows = await connection.execute(
        query,
        {
            "before": before,
            "region": region,
            "limit": limit,
            "name": name.value,
            "after": after,
            "cutoff": cutoff,
        },
    )
    return [
        PersonInCell(row.person_id, city_of(row.verdict.get("region_code")), row.verdict)
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class FiledRow:
    quarter: str
    region: str
    filed_at: datetime
    filed_by: str
    signatures: Mapping[str, Any]
    table: Mapping[str, Any]


async def file(session: AsyncSession, row: FiledRow, *, xlsx: bytes, pdf: bytes) -> bool:
    """Keep the filed table with its signed files; False when the division has filed the
    quarter already (nothing changes)."""
    insert = (
        pg_insert(filings)
        .values(
            quarter=row.quarter,
            region=row.region,
            filed_at=row.filed_at,
            filed_by=row.filed_by,
            signatures=row.signatures,
            table=row.table,
            xlsx=xlsx,
            pdf=pdf,
        )
        .on_conflict_do_nothing()
    )
    connection = await session.connection()
    return (await connection.execute(insert)).rowcount == 1


async def filed(session: AsyncSession, quarter: str, *, within: str) -> list[FiledRow]:
    """The quarter's filings of `within` and the divisions inside it."""
    query = sa.select(
        filings.c.quarter,
        filings.c.region,
        filings.c.filed_at,
        filings.c.filed_by,
        filings.c.signatures,
        filings.c.table,
    ).where(filings.c.quarter == quarter, filings.c.region.startswith(within))
    connection = await session.connection()
    return [FiledRow(**row._mapping) for row in await connection.execute(query)]


async def filed_file(session: AsyncSession, quarter: str, region: str, kind: str) -> bytes | None:
    """The signed xlsx or pdf of a filing."""
    column = {"xlsx": filings.c.xlsx, "pdf": filings.c.pdf}[kind]
    query = sa.select(column).where(filings.c.quarter == quarter, filings.c.region == region)
    connection = await session.connection()
    found: bytes | None = await connection.scalar(query)
    return found


# A living person with 92 in some insurance: employed by a unit but not enrolled in it (§5).
_OWED_92: Final = (
    "EXISTS (SELECT 1 FROM jsonb_each_text(newest.verdict->'statuses') AS s WHERE s.value = '92')"
)


@dataclass(frozen=True, slots=True)
class EmployerGap:
    unit_id: str
    people: int  # employees not enrolled in at least one insurance
    by_insurance: dict[Insurance, int]  # employees with 92 in each


async def employer_gaps(
    session: AsyncSession, before: datetime | None, *, region: str, limit: int
) -> tuple[list[EmployerGap], int]:
    """The employers of the region's people owed a 92, those leaving out the most first (at most
    `limit`), and how many employers there are in all."""
    per_insurance = ", ".join(
        f"count(*) FILTER (WHERE newest.verdict->'statuses'->>'{i.value}' = '92') AS {i.value}"
        for i in Insurance
    )
    query = sa.text(f"""
        SELECT unit, count(*) AS people, {per_insurance}, count(*) OVER () AS units
        FROM {_people(before)} AS newest,
             jsonb_array_elements_text(COALESCE(newest.verdict->'employers', '[]')) AS unit
        WHERE newest.verdict IS NOT NULL AND {_IN_REGION} AND {_OWED_92}
        GROUP BY unit ORDER BY people DESC, unit LIMIT :limit
    """)
    connection = await session.connection()
    rows = (
        await connection.execute(query, {"before": before, "region": region, "limit": limit})
    ).all()
    gaps = [
        EmployerGap(row.unit, row.people, {i: getattr(row, i.value) for i in Insurance})
        for row in rows
    ]
    return gaps, rows[0].units if rows else 0


def _employed_and_owed(before: datetime | None) -> str:
    return f"""
        FROM {_people(before)} AS newest
        WHERE newest.verdict IS NOT NULL AND newest.verdict->'employers' ? :unit
          AND {_IN_REGION} AND {_OWED_92}
    """


async def employees_owed(
    session: AsyncSession,
    before: datetime | None,
    *,
    unit_id: str,
    region: str,
    after: UUID | None = None,
    limit: int = 100,
) -> tuple[list[PersonInCell], int]:
    """A page of the region's people the unit employs and has not enrolled in some insurance
    (92), by person_id after `after`, and how many they are in all."""
    page = sa.text(f"""
        SELECT newest.person_id, newest.verdict {_employed_and_owed(before)}
          AND (CAST(:after AS uuid) IS NULL OR newest.person_id > :after)
        ORDER BY newest.person_id LIMIT :limit
    """)
    params = {"before": before, "region": region, "unit": unit_id}
    connection = await session.connection()
    rows = await connection.execute(page, params | {"after": after, "limit": limit})
    found = [
        PersonInCell(row.person_id, city_of(row.verdict.get("region_code")), row.verdict)
        for row in rows
    ]
    counted = await connection.scalar(
        sa.text(f"SELECT count(*) {_employed_and_owed(before)}"), params
    )
    return found, int(counted or 0)
