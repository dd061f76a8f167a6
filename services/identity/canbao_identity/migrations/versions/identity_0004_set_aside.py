"""Persons the builder set aside: their rebuild failed for a reason that is not transient (a
value the database refuses), so they no longer hold up everyone rebuilt with them (builder.py);
an operator sees them in /readyz and retries them (`python -m canbao_identity.set_aside`).

Revision ID: identity_0004
Revises: identity_0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "identity_0004"
down_revision: str | None = "identity_0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "set_aside_persons",
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column(
            "set_aside_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("set_aside_persons")
