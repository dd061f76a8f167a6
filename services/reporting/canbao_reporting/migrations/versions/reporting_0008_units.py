"""The units of registry.units (tables.units), which name the employers of the labour inspection
list. Filled by the consumer from the topic's beginning (compacted: every unit's newest state).

Revision ID: reporting_0008
Revises: reporting_0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reporting_0008"
down_revision: str | None = "reporting_0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(64), primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("credit_code", sa.String(18)),
        sa.Column("unit_name", sa.Text),
        sa.Column("unit_type", sa.String(2)),
        sa.Column("region_code", sa.String(6)),
    )


def downgrade() -> None:
    op.drop_table("units")
