"""The divisions' coverage targets for a year (tables.coverage_targets).

Revision ID: reporting_0003
Revises: reporting_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reporting_0003"
down_revision: str | None = "reporting_0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coverage_targets",
        sa.Column("region", sa.String(6), primary_key=True),
        sa.Column("year", sa.SmallInteger, primary_key=True),
        sa.Column("insurance", sa.String(16), primary_key=True),
        sa.Column("rate", sa.Numeric(5, 4), nullable=False),
        sa.Column("set_by", sa.Text, nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("coverage_targets")
