"""How a partner's batch was read (api.md "Partner departments": UTF-8 or GB18030, declared or
detected; partner_batches.py). A batch received before was read as UTF-8, the encoding the
interface then prescribed: as declared.

Revision ID: identity_0009
Revises: identity_0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0009"
down_revision: str | None = "identity_0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    for name, earlier in (("encoding", "utf-8"), ("encoding_source", "declared")):
        op.add_column(
            "partner_batches",
            sa.Column(name, sa.String(8), nullable=False, server_default=earlier),
        )
        op.alter_column("partner_batches", name, server_default=None)  # every batch says it
    op.create_check_constraint(
        "ck_partner_batches_encoding", "partner_batches", "encoding IN ('utf-8', 'gb18030')"
    )
    op.create_check_constraint(
        "ck_partner_batches_encoding_source",
        "partner_batches",
        "encoding_source IN ('declared', 'detected')",
    )


def downgrade() -> None:
    op.drop_constraint("ck_partner_batches_encoding_source", "partner_batches")
    op.drop_constraint("ck_partner_batches_encoding", "partner_batches")
    op.drop_column("partner_batches", "encoding_source")
    op.drop_column("partner_batches", "encoding")
