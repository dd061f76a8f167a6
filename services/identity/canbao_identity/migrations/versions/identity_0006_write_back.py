"""Write-back of approved changes to the business systems that own the items (44号 Art.22).

Revision ID: identity_0006
Revises: identity_0005
"""

from collections.abc import Sequence

revision: str = "identity_0006"
down_revision: str | None = "identity_0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
