"""Staff accounts get a token version, raised by the database whenever an account is disabled or
enabled or its password, role or scope changes: tokens carry it, and one of an older version is
refused (tokens.py), so such a change takes effect at once rather than when tokens expire.

A trigger rather than application code: every way of changing an account (manage.py, a future
endpoint, an administrator's SQL) revokes its tokens alike.

Revision ID: gateway_0002
Revises: gateway_0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "gateway_0002"
down_revision: str | None = "gateway_0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "staff_accounts",
        sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
    )
    op.execute(
        """
        CREATE FUNCTION staff_accounts_revoke_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (NEW.active, NEW.password_hash, NEW.role, NEW.scope)
                    IS DISTINCT FROM (OLD.active, OLD.password_hash, OLD.role, OLD.scope) THEN
                NEW.token_version := OLD.token_version + 1;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER staff_accounts_revoke_tokens BEFORE UPDATE ON staff_accounts "
        "FOR EACH ROW EXECUTE FUNCTION staff_accounts_revoke_tokens()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER staff_accounts_revoke_tokens ON staff_accounts")
    op.execute("DROP FUNCTION staff_accounts_revoke_tokens()")
    op.drop_column("staff_accounts", "token_version")
