"""Matching's state: persons (state, verdict), facts, collections.

Revision ID: matching_0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "matching_0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = ("matching",)
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("state", JSONB),
        sa.Column("merged_into", UUID(as_uuid=True)),
        sa.Column("verdict", JSONB),
        sa.Column("in_scope", sa.Boolean),
        sa.Column("region_code", sa.String(6)),
        sa.Column("registration", sa.String(12)),
        sa.Column("survey_reasons", ARRAY(sa.String(24)), nullable=False, server_default="{}"),
        sa.Column("pending", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("pending_observed_at", sa.DateTime(timezone=True)),
        sa.Column("recheck_on", sa.Date),
        sa.Column("evaluated_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_persons_recheck_on", "persons", ["recheck_on"])
    op.create_index(
        "ix_persons_pending", "persons", ["person_id"], postgresql_where=sa.text("pending")
    )
    op.create_index("ix_persons_region_registration", "persons", ["region_code", "registration"])
    op.create_index(
        "ix_persons_survey_reasons", "persons", ["survey_reasons"], postgresql_using="gin"
    )
    op.create_table(
        "facts",
        sa.Column("fact_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("person_id", UUID(as_uuid=True), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("retracted", sa.Boolean, nullable=False),
        sa.Column("from_collection", sa.Boolean, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", JSONB, nullable=False),
    )
    op.create_index("ix_facts_person_id", "facts", ["person_id"])
    op.create_table(
        "collections",
        sa.Column("collection_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("person_id", UUID(as_uuid=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_reasons", ARRAY(sa.String(24)), nullable=False),
        sa.Column("verified_statuses", JSONB, nullable=False),
    )
    op.create_index("ix_collections_person_id", "collections", ["person_id"])


def downgrade() -> None:
    op.drop_table("collections")
    op.drop_table("facts")
    op.drop_table("persons")
