"""Partner clients (api.md "Partner departments"; clients.py): a client's department, what it
may do and see, and the secret it had before a rotation, for the rotation's grace.

The token version (gateway_0003) now also rises when a client's department, permissions or
fields change, so a client loses at once what it is no longer allowed; and it does not rise for
a rotation with grace (the old secret becomes `previous_secret_hash`): the partner's program
keeps working while it switches. A rotation without grace (a leaked secret) still stops every
token.

Revision ID: gateway_0005
Revises: gateway_0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "gateway_0005"
down_revision: str | None = "gateway_0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("clients", sa.Column("department", sa.String(16)))
    op.add_column(
        "clients",
        sa.Column("permissions", ARRAY(sa.String(16)), nullable=False, server_default="{}"),
    )
    op.add_column(
        "clients", sa.Column("fields", ARRAY(sa.String(16)), nullable=False, server_default="{}")
    )
    op.add_column("clients", sa.Column("previous_secret_hash", sa.Text))
    op.add_column("clients", sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)))
    op.execute(
        """
        CREATE OR REPLACE FUNCTION clients_revoke_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (NEW.active, NEW.kind, NEW.region, NEW.department, NEW.permissions, NEW.fields)
                    IS DISTINCT FROM
                    (OLD.active, OLD.kind, OLD.region, OLD.department, OLD.permissions, OLD.fields)
               OR (NEW.secret_hash IS DISTINCT FROM OLD.secret_hash
                   AND NEW.previous_secret_hash IS DISTINCT FROM OLD.secret_hash) THEN
                NEW.token_version := OLD.token_version + 1;
            END IF;
            RETURN NEW;
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        """
        CREATE OR REPLACE FUNCTION clients_revoke_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (NEW.active, NEW.secret_hash, NEW.kind, NEW.region)
                    IS DISTINCT FROM (OLD.active, OLD.secret_hash, OLD.kind, OLD.region) THEN
                NEW.token_version := OLD.token_version + 1;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    for column in (
        "previous_secret_expires_at",
        "previous_secret_hash",
        "fields",
        "permissions",
        "department",
    ):
        op.drop_column("clients", column)
