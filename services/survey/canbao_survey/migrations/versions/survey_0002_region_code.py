"""Where a newly registered person lives (CollectionApproved.region_code).

Revision ID: survey_0002
Revises: survey_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "survey_0002"
down_revision: str | None = "survey_0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("collections", sa.Column("region_code", sa.String(6)))


def downgrade() -> None:
    op.drop_column("collections", "region_code")
