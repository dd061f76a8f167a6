"""Filed quarterly tables with their signed files (tables.filings); append-only (app.py).

Revision ID: reporting_0005
Revises: reporting_0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "reporting_0005"
down_revision: str | None = "reporting_0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "filings",
        sa.Column("quarter", sa.String(6), primary_key=True),
        sa.Column("region", sa.String(6), primary_key=True),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("filed_by", sa.Text, nullable=False),
        sa.Column("signatures", JSONB, nullable=False),
        sa.Column("table", JSONB, nullable=False),
        sa.Column("xlsx", sa.LargeBinary, nullable=False),
        sa.Column("pdf", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("filings")
