"""Reporting's projection of registry.statuses: every state a person has had, as applied.

Revision ID: reporting_0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "reporting_0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = ("reporting",)
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "person_states",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("person_id", UUID(as_uuid=True), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", JSONB),
    )
    op.create_index("ix_person_states_person_id_id", "person_states", ["person_id", "id"])
    op.create_index("ix_person_states_valid_from", "person_states", ["valid_from"])


def downgrade() -> None:
    op.drop_table("person_states")
