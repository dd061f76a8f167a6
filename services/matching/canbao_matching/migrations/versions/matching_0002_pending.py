"""When a person became pending and what the consumer had applied then, so that the evaluator
evaluates a person once the rest of what identity published with a change has arrived (a person's
state and facts travel on different topics) instead of once per part:

* persons.pending_since: when the person last became pending (the longest-waiting first; the
  most a person waits for the rest);
* persons.pending_published_at and facts.published_at: the Kafka timestamp of the newest message
  that marked the person, and of the message that brought the fact's revision.

The pending index orders by pending_since instead of by person_id.

Revision ID: matching_0002
Revises: matching_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "matching_0002"
down_revision: str | None = "matching_0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("persons", sa.Column("pending_since", sa.DateTime(timezone=True)))
    op.add_column("persons", sa.Column("pending_published_at", sa.DateTime(timezone=True)))
    op.add_column("facts", sa.Column("published_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE persons SET pending_since = now() WHERE pending")
    op.drop_index("ix_persons_pending", table_name="persons")
    op.create_index(
        "ix_persons_pending_since",
        "persons",
        ["pending_since"],
        postgresql_where=sa.text("pending"),
    )


def downgrade() -> None:
    op.drop_index("ix_persons_pending_since", table_name="persons")
    op.create_index(
        "ix_persons_pending", "persons", ["person_id"], postgresql_where=sa.text("pending")
    )
    op.drop_column("facts", "published_at")
    op.drop_column("persons", "pending_published_at")
    op.drop_column("persons", "pending_since")
