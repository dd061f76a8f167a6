"""Proofs of insurance (参保证明) and request limits (api.md "Self-service"; tables.py says why
each): `certificates` is insert-only like the audit log (gateway_0001), so that what a code
verifies is what was printed; `throttle_hits` counts requests against the self-service limits.

Revision ID: gateway_0004
Revises: gateway_0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision: str = "gateway_0004"
down_revision: str | None = "gateway_0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("person_id", UUID(as_uuid=True), nullable=False),
        sa.Column("id_number_hash", sa.String(64), nullable=False),
        sa.Column("masked_name", sa.String(60), nullable=False),
        sa.Column("masked_number", sa.String(18), nullable=False),
        sa.Column("registration", sa.String(12)),
        sa.Column("statuses", JSONB, nullable=False),
        sa.Column("enrolments", JSONB, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
    )
    op.create_index("ix_certificates_id_number_hash", "certificates", ["id_number_hash"])
    # Never changed once issued, for every role including the owner (as audit_log).
    op.execute(
        """
        CREATE FUNCTION certificates_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'certificates are insert-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER certificates_insert_only BEFORE UPDATE OR DELETE ON certificates "
        "FOR EACH ROW EXECUTE FUNCTION certificates_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER certificates_no_truncate BEFORE TRUNCATE ON certificates "
        "FOR EACH STATEMENT EXECUTE FUNCTION certificates_refuse_change()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON certificates FROM PUBLIC")
    op.create_table(
        "throttle_hits",
        sa.Column("scope", sa.String(24), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("hit_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_throttle_hits_scope_key_hit_at", "throttle_hits", ["scope", "key", "hit_at"]
    )


def downgrade() -> None:
    op.drop_table("throttle_hits")
    op.execute("DROP TRIGGER certificates_no_truncate ON certificates")
    op.execute("DROP TRIGGER certificates_insert_only ON certificates")
    op.execute("DROP FUNCTION certificates_refuse_change()")
    op.drop_table("certificates")
