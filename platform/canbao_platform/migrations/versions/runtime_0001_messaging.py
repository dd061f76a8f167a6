"""The messaging runtime's tables: idempotency records, outbox, dead letters.

Revision ID: runtime_0001
Revises:
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "runtime_0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = ("runtime",)
depends_on: Sequence[str] | None = None


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(), primary_key=True),
        sa.Column("message_key", sa.String(), primary_key=True),
        _timestamp("processed_at"),
    )
    op.create_index(
        "processed_messages_age", "processed_messages", ["processed_at"], postgresql_using="brin"
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), primary_key=True),  # bigserial: relayed in id order
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("key", sa.LargeBinary()),
        sa.Column("value", sa.LargeBinary()),
        sa.Column("header_names", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("header_values", postgresql.ARRAY(sa.LargeBinary()), nullable=False),
        _timestamp("created_at"),
    )
    # The writing transaction: the relay holds a row back while an older transaction is still
    # open, since that one may yet commit a lower id (see messaging/outbox.py). xid8: PG >= 13.
    op.execute("ALTER TABLE outbox ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()")
    # Wake the relay when a transaction that wrote to the outbox commits (NOTIFY is delivered
    # at commit and folded per transaction); per statement, so a batch costs one notification.
    op.execute(
        """
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('canbao_outbox', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("consumer", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String()),
        sa.Column("reason", sa.Text(), nullable=False),
        _timestamp("dead_lettered_at"),
        sa.UniqueConstraint("consumer", "topic", "partition", "offset"),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION outbox_notify()")
    op.drop_table("outbox")
    op.drop_index("processed_messages_age", table_name="processed_messages")
    op.drop_table("processed_messages")
