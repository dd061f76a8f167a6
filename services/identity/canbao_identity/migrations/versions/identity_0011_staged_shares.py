"""Staged changes partitioned into shares, so several builder replicas resolve at once, each in
shares of its own (store.take_staged): a change's share is a hash of the row its person is found
through (its `link_ref`, else its own key), computed by PostgreSQL as the row is staged, so every
writer and every builder agrees on it. Indexed with the id: a builder takes a share's oldest
changes. The existing staged rows get theirs as the column is added.

Revision ID: identity_0011
Revises: identity_0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0011"
down_revision: str | None = "identity_0010"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

# tables.STAGED_SHARE as of this revision (64 shares): the first byte of the md5 of the key.
SHARE = (
    "get_byte(decode(md5(coalesce(link_ref, source_table || '|' || record_key)), 'hex'), 0) % 64"
)


def upgrade() -> None:
    op.add_column(
        "staged_changes",
        sa.Column("share", sa.SmallInteger, sa.Computed(SHARE, persisted=True), nullable=False),
    )
    op.create_index("ix_staged_changes_share", "staged_changes", ["share", "id"])


def downgrade() -> None:
    op.drop_index("ix_staged_changes_share", "staged_changes")
    op.drop_column("staged_changes", "share")
