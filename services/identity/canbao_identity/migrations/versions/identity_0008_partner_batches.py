"""Batches of partner departments (api.md "Partner departments"; partner_batches.py, tables.py
say what each column is for).

Revision ID: identity_0008
Revises: identity_0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "identity_0008"
down_revision: str | None = "identity_0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partner_batches",
        sa.Column("batch_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("department", sa.String(16), nullable=False),
        sa.Column("dataset", sa.String(32), nullable=False),
        sa.Column("media_type", sa.String(40), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempt", UUID(as_uuid=True), nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("accepted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rejected", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("digest", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("client_id", "idempotency_key"),
        sa.CheckConstraint("state IN ('receiving', 'received')", name="ck_partner_batches_state"),
        sa.CheckConstraint("received = accepted + rejected", name="ck_partner_batches_counts"),
    )
    op.create_table(
        "partner_batch_rejects",
        sa.Column("batch_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("line", sa.BigInteger, primary_key=True),
        sa.Column("reasons", JSONB, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("partner_batch_rejects")
    op.drop_table("partner_batches")
