"""Survey's collections: every channel's, with its review state.

Revision ID: survey_0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "survey_0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = ("survey",)
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("collection_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("channel", sa.String(12), nullable=False),
        sa.Column("person_id", UUID(as_uuid=True)),
        sa.Column("document_type", sa.String(2), nullable=False),
        sa.Column("items_sealed", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("item_names", ARRAY(sa.String(32)), nullable=False),
        sa.Column("resolved_reasons", ARRAY(sa.String(24)), nullable=False),
        sa.Column("verified_statuses", JSONB, nullable=False),
        sa.Column("handler", sa.String(64), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("first_reviewer", sa.String(64)),
        sa.Column("first_reviewed_at", sa.DateTime(timezone=True)),
        sa.Column("reviewer", sa.String(64)),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.Column("idempotency_key", sa.String(128)),
        sa.CheckConstraint(
            "state IN ('submitted', 'first_reviewed', 'approved', 'rejected')", name="ck_state"
        ),
        # Maker-checker (domain.md §4): approved means a reviewer and a time.
        sa.CheckConstraint(
            "state <> 'approved' OR (reviewer IS NOT NULL AND reviewed_at IS NOT NULL)",
            name="ck_approved_reviewed",
        ),
    )
    # The same key from the same clerk is the same collection (a retried submission).
    op.create_index(
        "ux_collections_idempotency",
        "collections",
        ["handler", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index("ix_collections_person_id", "collections", ["person_id"])
    op.create_index("ix_collections_state", "collections", ["state", "handled_at"])


def downgrade() -> None:
    op.drop_table("collections")
