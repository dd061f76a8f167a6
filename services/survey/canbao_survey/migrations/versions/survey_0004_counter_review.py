"""The second pair of eyes (复核) on counter collections (41号 表4, 44号 Art.13).

Revision ID: survey_0004
Revises: survey_0003
"""

from collections.abc import Sequence

revision: str = "survey_0004"
down_revision: str | None = "survey_0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
