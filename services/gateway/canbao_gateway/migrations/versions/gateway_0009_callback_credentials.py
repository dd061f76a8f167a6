"""The registry's credentials at a partner's token API, for its DCI callbacks
(dci_delivery.py). tables.py says what each column is for.

Revision ID: gateway_0009
Revises: gateway_0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0009"
down_revision: str | None = "gateway_0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clients", sa.Column("callback_token_url", sa.String(300)))
    op.add_column("clients", sa.Column("callback_client_id", sa.String(100)))
    op.add_column("clients", sa.Column("callback_secret_sealed", sa.LargeBinary))
    op.add_column("clients", sa.Column("callback_key_id", sa.String(64)))


def downgrade() -> None:
    for column in (
        "callback_key_id",
        "callback_secret_sealed",
        "callback_client_id",
        "callback_token_url",
    ):
        op.drop_column("clients", column)
