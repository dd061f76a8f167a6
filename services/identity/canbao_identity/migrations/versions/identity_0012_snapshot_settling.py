"""Persons reached only by a snapshot's reads settle before they are rebuilt (tables.py
pending_persons): a staged change says whether it is a snapshot read, a pending person whether
it is settling and when it was last marked. Partial indexes find the due persons and the last
settling mark without a scan. Existing rows are streamed changes and due persons, as they were.

Revision ID: identity_0012
Revises: identity_0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0012"
down_revision: str | None = "identity_0011"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "staged_changes",
        sa.Column("snapshot_read", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "pending_persons",
        sa.Column("settling", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "pending_persons",
        sa.Column(
            "last_marked_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.create_index(
        "ix_pending_persons_due",
        "pending_persons",
        ["marked_at"],
        postgresql_where=sa.text("NOT settling"),
    )
    op.create_index(
        "ix_pending_persons_settling",
        "pending_persons",
        ["last_marked_at"],
        postgresql_where=sa.text("settling"),
    )


def downgrade() -> None:
    op.drop_index("ix_pending_persons_settling", "pending_persons")
    op.drop_index("ix_pending_persons_due", "pending_persons")
    op.drop_column("pending_persons", "last_marked_at")
    op.drop_column("pending_persons", "settling")
    op.drop_column("staged_changes", "snapshot_read")
