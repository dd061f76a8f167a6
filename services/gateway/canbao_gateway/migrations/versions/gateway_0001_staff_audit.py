"""The gateway's tables: staff accounts, login failures, and the append-only audit log.

Revision ID: gateway_0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "gateway_0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = ("gateway",)
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(12), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_login_failures_username", "login_failures", ["username", "failed_at"])
    op.create_index("ix_login_failures_client", "login_failures", ["client", "failed_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staff", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("staff_scope", sa.String(12), nullable=False),
        sa.Column("person_id", UUID(as_uuid=True)),
        sa.Column("id_number_hash", sa.String(64)),
        sa.Column("person_region", sa.String(12)),
        sa.Column("endpoint", sa.String(160), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("client", sa.String(64)),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], postgresql_using="brin")
    op.create_index("ix_audit_log_person_id", "audit_log", ["person_id", "id"])
    op.create_index("ix_audit_log_id_number_hash", "audit_log", ["id_number_hash", "id"])
    op.create_index("ix_audit_log_staff", "audit_log", ["staff", "id"])
    # Append-only, enforced by the database (domain.md §2.5): row triggers refuse UPDATE and
    # DELETE, a statement trigger TRUNCATE, for every role including the table's owner. Only
    # DDL (dropping or disabling a trigger) gets around them, which needs the owner: the gateway
    # connects as an application role that owns nothing and may only SELECT and INSERT here
    # (SERVICE.append_only, granted by canbao_platform.db.grant_application_role).
    op.execute(
        """
        CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC")


def downgrade() -> None:
    # Dropping the table is the one way to remove audit rows, and only by a migration (DDL).
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_refuse_change()")
    op.drop_table("audit_log")
    op.drop_table("login_failures")
    op.drop_table("staff_accounts")
