"""The DCI Social Registry API (dci.py, dci_routes.py): a partner's signing key, the messages
received (for idempotency by message_id), what each request came to (for txn status), where
a partner's callbacks may go and the callbacks themselves until delivered.
tables.py says what each column is for.

Revision ID: gateway_0006
Revises: gateway_0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision: str = "gateway_0006"
down_revision: str | None = "gateway_0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clients", sa.Column("signing_public_key", sa.Text))
    op.add_column(
        "clients",
        sa.Column("callback_urls", ARRAY(sa.String(300)), nullable=False, server_default="{}"),
    )
    op.create_table(
        "dci_messages",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("correlation_id", UUID(as_uuid=True), nullable=False),
        sa.Column("transaction_id", sa.String(99)),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dci_requests",
        sa.Column("correlation_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("reference_id", sa.String(99), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("transaction_id", sa.String(99), nullable=False),
        sa.Column("txn_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(4), nullable=False),
        sa.Column("status_reason_code", sa.String(64)),
        sa.Column("status_reason_message", sa.String(999)),
        sa.Column("total_count", sa.Integer),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_dci_requests_transaction", "dci_requests", ["client_id", "transaction_id"])
    op.create_table(
        "dci_callbacks",
        sa.Column("callback_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("correlation_id", UUID(as_uuid=True), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("url", sa.String(300), nullable=False),
        sa.Column("body_sealed", sa.LargeBinary),
        sa.Column("key_id", sa.String(64)),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(300)),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_dci_callbacks_due",
        "dci_callbacks",
        ["next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_dci_callbacks_correlation", "dci_callbacks", ["client_id", "correlation_id"]
    )


def downgrade() -> None:
    op.drop_table("dci_callbacks")
    op.drop_table("dci_requests")
    op.drop_table("dci_messages")
    op.drop_column("clients", "callback_urls")
    op.drop_column("clients", "signing_public_key")
