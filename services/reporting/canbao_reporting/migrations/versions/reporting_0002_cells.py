"""Each person state with the table's cells it counts in and its division (tables.py), so that
the table is a GROUP BY in the database and the people behind a cell a filter on the same cells.

Revision ID: reporting_0002
Revises: reporting_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

from canbao_contracts.events import Verdict
from canbao_reporting.quarterly_table import cell_names, cells_of

revision: str = "reporting_0002"
down_revision: str | None = "reporting_0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("person_states", sa.Column("region_code", sa.String(6)))
    op.add_column(
        "person_states",
        sa.Column("cells", ARRAY(sa.Text), nullable=False, server_default="{}"),
    )
    # The states already applied, computed as the service now computes them when applying.
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, verdict FROM person_states WHERE verdict IS NOT NULL")
    )
    update = sa.text(
        "UPDATE person_states SET cells = :cells, region_code = :region WHERE id = :id"
    )
    for row in rows.all():
        verdict = Verdict.model_validate(row.verdict)
        connection.execute(
            update,
            {"cells": cell_names(cells_of(verdict)), "region": verdict.region_code, "id": row.id},
        )
    op.drop_index("ix_person_states_person_id_id", "person_states")
    op.create_index(
        "ix_person_states_person_id_id", "person_states", ["person_id", sa.text("id DESC")]
    )


def downgrade() -> None:
    op.drop_index("ix_person_states_person_id_id", "person_states")
    op.create_index("ix_person_states_person_id_id", "person_states", ["person_id", "id"])
    op.drop_column("person_states", "cells")
    op.drop_column("person_states", "region_code")
