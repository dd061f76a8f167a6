"""Reporting's own tables (SQLAlchemy Core; the migration creates them).

No personal values: a person is identity's opaque `person_id` and the verdict matching publishes
(region, birth year, gender, codes and flags; canbao_contracts.events.statuses)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from canbao_contracts.codes import Insurance

metadata = sa.MetaData()
# What coverage is computed from, per division (coverage.DivisionCounts), as counted in SQL.
COVERAGE_COUNTS = ("people", "registered", "needing", "verified",
                   *(f"{i.value}_{n}" for i in Insurance
                     for n in ("should", "insured")))  # fmt: skip

# Append-only (the service's login may not UPDATE or DELETE it: app.py `append_only`): one row per
# verdict applied, so that the table as of any moment is the newest row of each person applied
# before it (domain.md §6 "A past quarter's table never changes"; api.md "Reports").
person_states = sa.Table(
    "person_states",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),  # the order applied
    sa.Column("person_id", UUID(as_uuid=True), nullable=False),
    # When reporting applied it: a state counts from then on, whenever matching evaluated it
    # (late events count in the quarter they arrive in, as a statistics office expects).
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    # The verdict's own time: an older verdict arriving after a newer one is not applied.
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    # The Verdict as the contract serialises it; SQL NULL: withdrawn (out of the table).
    sa.Column("verdict", JSONB(none_as_null=True)),
    # The verdict's division (GB/T 2260, six digits): a county's scope and coverage by division.
    sa.Column("region_code", sa.String(6)),
    # The table's cells the person counts in while this state holds, "5201:7" (city:column),
    # computed once as applied by quarterly_table.cells_of: the numbers (a GROUP BY over them)
    # and the people behind each (a filter on them) are one predicate. Empty when withdrawn.
    sa.Column("cells", ARRAY(sa.Text), nullable=False, server_default="{}"),
    # The plans' lists the person is on while this state holds (plan_lists.lists_of).
    sa.Column("lists", ARRAY(sa.Text), nullable=False, server_default="{}"),
)
# Each person's newest state first: DISTINCT ON (person_id) ... ORDER BY person_id, id DESC.
sa.Index("ix_person_states_person_id_id", person_states.c.person_id, person_states.c.id.desc())
sa.Index("ix_person_states_valid_from", person_states.c.valid_from)

# Each person's newest state, one row a person, kept by store.apply_state in the statement that
# appends it to person_states (the row lock here orders one person's states): the current
# quarter's table, its people, coverage and lists read it instead of picking each person's newest
# row out of the whole history, which grows with every verdict. A past quarter is counted from
# the history, as of its end.
person_newest = sa.Table(
    "person_newest",
    metadata,
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("verdict", JSONB(none_as_null=True)),
    sa.Column("region_code", sa.String(6)),
    sa.Column("cells", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("lists", ARRAY(sa.Text), nullable=False, server_default="{}"),
)
# The people behind a small cell without reading everyone: cells @> '{5204:11}'.
sa.Index("ix_person_newest_cells", person_newest.c.cells, postgresql_using="gin")

# A past quarter's counts, kept the first time they are asked once the quarter has settled
# (routes.py SETTLED): counted once from the history as of the quarter's end, then read back
# instead of counted again (domain.md §6: a past quarter's table never changes). Per division
# code ('' : none), so that any region's table and coverage are sums of these rows. Append-only,
# like the history they are counted from (app.py).
quarter_snapshots = sa.Table(
    "quarter_snapshots",
    metadata,
    sa.Column("as_of", sa.DateTime(timezone=True), primary_key=True),  # the quarter's end
    sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
)
quarter_cells = sa.Table(
    "quarter_cells",
    metadata,
    sa.Column(
        "as_of",
        sa.DateTime(timezone=True),
        sa.ForeignKey("quarter_snapshots.as_of"),
        primary_key=True,
    ),
    sa.Column("region_code", sa.String(6), primary_key=True),
    sa.Column("cell", sa.Text, primary_key=True),  # as person_states.cells names it
    sa.Column("people", sa.Integer, nullable=False),
)
quarter_coverage = sa.Table(
    "quarter_coverage",
    metadata,
    sa.Column(
        "as_of",
        sa.DateTime(timezone=True),
        sa.ForeignKey("quarter_snapshots.as_of"),
        primary_key=True,
    ),
    sa.Column("region_code", sa.String(6), primary_key=True),
    *(sa.Column(name, sa.Integer, nullable=False) for name in COVERAGE_COUNTS),
)

# The annual expansion plan (40号 三(二)1): each division's coverage target per insurance for a
# year, entered by the province or a city for a division within it; the newest entry holds.
coverage_targets = sa.Table(
    "coverage_targets",
    metadata,
    sa.Column("region", sa.String(6), primary_key=True),  # the division's code prefix: 52, 5201
    sa.Column("year", sa.SmallInteger, primary_key=True),
    sa.Column("insurance", sa.String(16), primary_key=True),
    sa.Column("rate", sa.Numeric(5, 4), nullable=False),  # 0.9200
    sa.Column("set_by", sa.Text, nullable=False),  # the analyst's username
    sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
)

# Filed tables (domain.md §6 filing): append-only, so a filed table and its signed files never
# change. One per quarter and filing division (the province or a city).
filings = sa.Table(
    "filings",
    metadata,
    sa.Column("quarter", sa.String(6), primary_key=True),  # 2026Q3
    sa.Column("region", sa.String(6), primary_key=True),  # 52, 5201
    sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("filed_by", sa.Text, nullable=False),
    sa.Column("signatures", JSONB, nullable=False),  # canbao_contracts.reports.Signatures
    sa.Column("table", JSONB, nullable=False),  # the QuarterlyTable as filed
    sa.Column("xlsx", sa.LargeBinary, nullable=False),  # the files as signed
    sa.Column("pdf", sa.LargeBinary, nullable=False),
)

# The units of the core insurance system (si_core.ab01) as identity publishes them on
# registry.units: what names an employer on the labour inspection list (routes.py employers).
# One row a unit, the event with the highest source position (`revision`) winning, so a
# duplicate or a late copy changes nothing (units.py); a deleted unit keeps its row, unnamed.
units = sa.Table(
    "units",
    metadata,
    sa.Column("unit_id", sa.String(64), primary_key=True),  # AAB001
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("credit_code", sa.String(18)),  # AAB003
    sa.Column("unit_name", sa.Text),  # AAB004
    sa.Column("unit_type", sa.String(2)),  # AAB019
    sa.Column("region_code", sa.String(6)),  # AAB301
)
