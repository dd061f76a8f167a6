"""Each person's newest state, one row a person (tables.person_newest), filled from the history
as store.apply_state keeps it from now on. Like every migration that fills from the history, run
it with the consumers stopped: a state an old instance applies meanwhile would be missing here.

Revision ID: reporting_0006
Revises: reporting_0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "reporting_0006"
down_revision: str | None = "reporting_0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "person_newest",
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", JSONB),
        sa.Column("region_code", sa.String(6)),
        sa.Column("cells", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("lists", ARRAY(sa.Text), nullable=False, server_default="{}"),
    )
    # Each person's newest row of the history (apply_state appends only newer verdicts, so the
    # newest by id is the newest evaluated); the index after, in one pass.
    op.execute("""
        INSERT INTO person_newest (person_id, valid_from, evaluated_at, verdict, region_code,
                                   cells, lists)
        SELECT DISTINCT ON (person_id) person_id, valid_from, evaluated_at, verdict,
               region_code, cells, lists
        FROM person_states ORDER BY person_id, id DESC
    """)
    op.create_index("ix_person_newest_cells", "person_newest", ["cells"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("person_newest")
