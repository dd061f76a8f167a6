"""DCI subscriptions and notifications (dci_routes.py, dci_notify.py): the subscriptions, and
an ordering key on callbacks so that a subscriber's notifications about one person arrive in
order. tables.py says what each column is for.

Revision ID: gateway_0007
Revises: gateway_0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "gateway_0007"
down_revision: str | None = "gateway_0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("dci_callbacks", sa.Column("ordering_key", sa.String(120)))
    op.create_index(
        "ix_dci_callbacks_ordering",
        "dci_callbacks",
        ["ordering_key", "callback_id"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "dci_subscriptions",
        sa.Column("subscription_code", UUID(as_uuid=True), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(99), nullable=False),
        sa.Column("reference_id", sa.String(99), nullable=False),
        sa.Column("reg_event_type", sa.String(40)),
        sa.Column("person_id", UUID(as_uuid=True)),
        sa.Column("filter", JSONB),
        sa.Column("notify_url", sa.String(300), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "(person_id IS NULL) <> (filter IS NULL)", name="ck_dci_subscriptions_what"
        ),
    )
    op.create_index(
        "ix_dci_subscriptions_person",
        "dci_subscriptions",
        ["person_id"],
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_index("ix_dci_subscriptions_client", "dci_subscriptions", ["client_id", "state"])


def downgrade() -> None:
    op.drop_table("dci_subscriptions")
    op.drop_index("ix_dci_callbacks_ordering", "dci_callbacks")
    op.drop_column("dci_callbacks", "ordering_key")
