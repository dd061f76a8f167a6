"""The units of si_core.ab01, published on registry.units instead of being resolved to no one
(units.py). Their old rows in the resolution tables carried nothing (a unit has no claims) and
are removed. The units si_core already holds are published once Debezium reads si_core.ab01
again: an incremental snapshot of that table (Debezium's `execute-snapshot` signal).

Revision ID: identity_0010
Revises: identity_0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0010"
down_revision: str | None = "identity_0009"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "units",
        sa.Column("unit_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("credit_code", sa.String(18)),
        sa.Column("unit_name", sa.Text),
        sa.Column("unit_type", sa.String(2)),
        sa.Column("region_code", sa.String(6)),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    for table in ("staged_changes", "source_records"):
        op.execute(f"DELETE FROM {table} WHERE source_table = 'si_core.ab01'")


def downgrade() -> None:
    op.drop_table("units")
