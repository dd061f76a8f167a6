"""Identity's registry: persons, identities (blind indexes), source records, review queue.

Revision ID: identity_0001
Revises:
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "identity_0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = ("identity",)
depends_on: Sequence[str] | None = None


def _now(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=None if nullable else sa.func.now(),
    )


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("demographic_index", sa.String(64)),
        sa.Column("golden_ciphertext", sa.LargeBinary),
        sa.Column("key_id", sa.String(64)),
        sa.Column("public_state", JSONB),
        sa.Column("emitted_facts", JSONB, nullable=False, server_default="{}"),
        _now("updated_at"),
    )
    op.create_index("ix_persons_demographic_index", "persons", ["demographic_index"])
    op.create_table(
        "identities",
        sa.Column("document_type", sa.String(2), primary_key=True),
        sa.Column("number_index", sa.String(64), primary_key=True),
        sa.Column("person_id", UUID(as_uuid=True), nullable=False),
    )
    op.create_index("ix_identities_person_id", "identities", ["person_id"])
    op.create_table(
        "source_records",
        sa.Column("source_table", sa.String(64), primary_key=True),
        sa.Column("record_key", sa.String(200), primary_key=True),
        sa.Column("person_id", UUID(as_uuid=True)),
        sa.Column("link_kind", sa.String(16), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("claims_ciphertext", sa.LargeBinary),
        sa.Column("key_id", sa.String(64)),
        sa.Column("facts", JSONB, nullable=False, server_default="[]"),
        sa.Column("provenance", JSONB, nullable=False, server_default="{}"),
        sa.Column("link_ref", sa.String(300)),
        sa.Column("number_index", sa.String(64)),
        sa.Column("demographic_index", sa.String(64)),
        sa.Column("observed_at", sa.String(40)),
        _now("updated_at"),
    )
    for column in ("person_id", "link_ref", "demographic_index"):
        op.create_index(f"ix_source_records_{column}", "source_records", [column])
    op.create_table(
        "staged_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("source_table", sa.String(64), nullable=False),
        sa.Column("record_key", sa.String(200), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("observed_at", sa.String(40)),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("claims_ciphertext", sa.LargeBinary),
        sa.Column("key_id", sa.String(64)),
        sa.Column("facts", JSONB, nullable=False),
        sa.Column("provenance", JSONB, nullable=False),
        sa.Column("link_ref", sa.String(300)),
        sa.Column("forced_person_id", UUID(as_uuid=True)),
        sa.Column("document_type", sa.String(2)),
        sa.Column("number_index", sa.String(64)),
        sa.Column("demographic_index", sa.String(64)),
        sa.Column("defects", JSONB, nullable=False),
    )
    op.create_table(
        "pending_persons",
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        _now("marked_at"),
    )
    op.create_table(
        "review_queue",
        sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("source_table", sa.String(64), nullable=False),
        sa.Column("record_key", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("demographic_index", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False, server_default="open"),
        sa.Column("resolution", sa.String(32)),
        sa.Column("person_id", UUID(as_uuid=True)),
        sa.Column("resolved_by", sa.String(64)),
        _now("created_at"),
        _now("resolved_at", nullable=True),
        sa.UniqueConstraint("source_table", "record_key"),
    )
    op.create_index("ix_review_queue_demographic_index", "review_queue", ["demographic_index"])


def downgrade() -> None:
    for table in (
        "review_queue",
        "pending_persons",
        "staged_changes",
        "source_records",
        "identities",
        "persons",
    ):
        op.drop_table(table)
