"""Exchanges with the national registry (dci_exchange.py): the subscription's reconciliation
state, the ledger of what the subscriber acknowledged, and the report of each pass. tables.py
says what each column is for.

Revision ID: gateway_0008
Revises: gateway_0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "gateway_0008"
down_revision: str | None = "gateway_0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "dci_subscriptions",
        sa.Column("exchange", sa.Boolean, nullable=False, server_default="false"),
    )
    op.add_column(
        "dci_subscriptions",
        sa.Column("reconcile_pass", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("dci_subscriptions", sa.Column("reconcile_after", UUID(as_uuid=True)))
    op.add_column("dci_subscriptions", sa.Column("reconciled_at", sa.DateTime(timezone=True)))
    op.create_table(
        "dci_exchange_ledger",
        sa.Column("subscription_code", UUID(as_uuid=True), primary_key=True),
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("sent_digest", sa.String(64), nullable=False),
        sa.Column("sent_selected", sa.Boolean, nullable=False),
        sa.Column("sent_callback_id", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("acked_digest", sa.String(64)),
        sa.Column("acked_selected", sa.Boolean),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("checked_pass", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_dci_exchange_ledger_callback",
        "dci_exchange_ledger",
        ["sent_callback_id"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "dci_exchange_passes",
        sa.Column("subscription_code", UUID(as_uuid=True), primary_key=True),
        sa.Column("pass", sa.Integer, primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        *(
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "selected",
                "held",
                "in_flight",
                "missing",
                "stale",
                "removed",
                "redelivered",
                "unidentified",
            )
        ),
    )


def downgrade() -> None:
    op.drop_table("dci_exchange_passes")
    op.drop_table("dci_exchange_ledger")
    for column in ("reconciled_at", "reconcile_after", "reconcile_pass", "exchange"):
        op.drop_column("dci_subscriptions", column)
