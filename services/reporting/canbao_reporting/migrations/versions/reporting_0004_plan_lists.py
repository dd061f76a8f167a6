"""Each person state with the plans' lists it is on (plan_lists.lists_of).

Revision ID: reporting_0004
Revises: reporting_0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

from canbao_contracts.events import Verdict
from canbao_reporting.plan_lists import lists_of

revision: str = "reporting_0004"
down_revision: str | None = "reporting_0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "person_states",
        sa.Column("lists", ARRAY(sa.Text), nullable=False, server_default="{}"),
    )
    # The states already applied, as the service now computes them when applying.
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, verdict FROM person_states WHERE verdict IS NOT NULL")
    )
    update = sa.text("UPDATE person_states SET lists = :lists WHERE id = :id")
    for row in rows.all():
        lists = sorted(lists_of(Verdict.model_validate(row.verdict)))
        if lists:
            connection.execute(update, {"lists": lists, "id": row.id})


def downgrade() -> None:
    op.drop_column("person_states", "lists")
