"""Write-back of approved changes to the business systems that own the items (44号 Art.22).

`changed_at` on source records (and on staged changes, on their way there): when the source last
changed the record, which precedence compares with a collection's approval (golden.py). Existing
records have none until their next change: an unknown time counts as older than any collection,
which is today's behaviour (an approved collection wins).

`writebacks`: one row per feedback request and item (golden_records.py, writeback.py), pending until
the system's record agrees (applied), changes to something else or a newer collection replaces
it (superseded), or the system refuses it (refused, with its reason). The values are not stored:
the request's value is the collection's, in the collection's encrypted source record.

Revision ID: identity_0006
Revises: identity_0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "identity_0006"
down_revision: str | None = "identity_0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    for table in ("source_records", "staged_changes"):
        op.add_column(table, sa.Column("changed_at", sa.DateTime(timezone=True)))
    op.create_table(
        "writebacks",
        sa.Column("feedback_id", UUID(as_uuid=True), nullable=False),
        sa.Column("item", sa.String(32), nullable=False),
        sa.Column("collection_id", UUID(as_uuid=True), nullable=False),
        sa.Column("person_id", UUID(as_uuid=True), nullable=False),
        sa.Column("system", sa.String(16), nullable=False),
        sa.Column("source_table", sa.String(64), nullable=False),
        sa.Column("record_key", sa.String(200), nullable=False),
        sa.Column("column_name", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("reason", sa.String(300)),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("feedback_id", "item"),
        sa.CheckConstraint(
            "state IN ('pending', 'applied', 'superseded', 'refused')", name="ck_writebacks_state"
        ),
    )
    op.create_index("ix_writebacks_person", "writebacks", ["person_id", "state"])
    op.create_index("ix_writebacks_list", "writebacks", ["state", "requested_at", "feedback_id"])


def downgrade() -> None:
    op.drop_index("ix_writebacks_list", table_name="writebacks")
    op.drop_index("ix_writebacks_person", table_name="writebacks")
    op.drop_table("writebacks")
    for table in ("staged_changes", "source_records"):
        op.drop_column(table, "changed_at")
