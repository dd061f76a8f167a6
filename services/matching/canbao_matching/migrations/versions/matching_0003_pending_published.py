"""A partial index on pending_published_at, so that the evaluator takes the pending persons past
what the consumer has applied by a range of it (store.take_due) instead of filtering every
waiting person's entry of the pending_since index at each take. A person pending since before
matching_0002 has no pending_published_at: their mark dates from when they became pending.

Revision ID: matching_0003
Revises: matching_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "matching_0003"
down_revision: str | None = "matching_0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE persons SET pending_published_at = pending_since"
        " WHERE pending AND pending_published_at IS NULL"
    )
    op.create_index(
        "ix_persons_pending_published_at",
        "persons",
        ["pending_published_at"],
        postgresql_where=sa.text("pending"),
    )


def downgrade() -> None:
    op.drop_index("ix_persons_pending_published_at", table_name="persons")
