"""The two queue tables (tables.py staged_changes, pending_persons) get their own autovacuum
settings: every row is deleted soon after it is written, so by PostgreSQL's defaults (vacuum once a
fifth of the table is dead, throttled by the cost delay) a backlog of millions carries millions of
dead rows that each look for the oldest row steps through. Vacuumed after a fixed number of dead
rows, whatever the table's size, and unthrottled: a queue's vacuum is short when it runs often.
Analysed after a fixed number of changed rows too: a queue grows from nothing to millions within
minutes of a snapshot's start, and plans made from its empty statistics would scan it whole.

Revision ID: identity_0013
Revises: identity_0012
"""

from collections.abc import Sequence

from alembic import op

revision: str = "identity_0013"
down_revision: str | None = "identity_0012"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

QUEUES = ("staged_changes", "pending_persons")
SETTINGS = {
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "20000",
    "autovacuum_vacuum_cost_delay": "0",
    "autovacuum_analyze_scale_factor": "0",
    "autovacuum_analyze_threshold": "20000",
}


def upgrade() -> None:
    options = ", ".join(f"{name} = {value}" for name, value in SETTINGS.items())
    for table in QUEUES:
        op.execute(f"ALTER TABLE {table} SET ({options})")


def downgrade() -> None:
    for table in QUEUES:
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(SETTINGS)})")
