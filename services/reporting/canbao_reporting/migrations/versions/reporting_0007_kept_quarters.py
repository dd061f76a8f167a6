"""The counts of the past quarters, kept once asked after they have settled (tables.
quarter_snapshots, quarter_cells, quarter_coverage); append-only (app.py).

Revision ID: reporting_0007
Revises: reporting_0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reporting_0007"
down_revision: str | None = "reporting_0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

INSURANCES = ("pension", "medical", "injury", "unemployment", "maternity")


def upgrade() -> None:
    op.create_table(
        "quarter_snapshots",
        sa.Column("as_of", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "quarter_cells",
        *_quarter_and_division(),
        sa.Column("cell", sa.Text, primary_key=True),
        sa.Column("people", sa.Integer, nullable=False),
    )
    counts = [
        "people",
        "registered",
        "needing",
        "verified",
        *(f"{i}_{n}" for i in INSURANCES for n in ("should", "insured")),
    ]
    op.create_table(
        "quarter_coverage",
        *_quarter_and_division(),
        *(sa.Column(name, sa.Integer, nullable=False) for name in counts),
    )


def _quarter_and_division() -> list[sa.Column[object]]:
    """A kept quarter's counts are keyed by its end and a division code ('' : none)."""
    return [
        sa.Column(
            "as_of",
            sa.DateTime(timezone=True),
            sa.ForeignKey("quarter_snapshots.as_of"),
            primary_key=True,
        ),
        sa.Column("region_code", sa.String(6), primary_key=True),
    ]


def downgrade() -> None:
    op.drop_table("quarter_coverage")
    op.drop_table("quarter_cells")
    op.drop_table("quarter_snapshots")
