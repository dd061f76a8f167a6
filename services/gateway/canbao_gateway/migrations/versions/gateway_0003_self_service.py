"""Self-service (api.md "Self-service"): registered client devices (the kiosks, OAuth2 client
credentials), citizens' sessions and the mobile ID tokens already used (tables.py says why each).

A client's token version rises by trigger, like a staff account's (gateway_0002): disabling a
kiosk, or giving it a new secret, stops its tokens and its citizens' sessions at once.

Revision ID: gateway_0003
Revises: gateway_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "gateway_0003"
down_revision: str | None = "gateway_0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("region", sa.String(12), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.execute(
        """
        CREATE FUNCTION clients_revoke_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (NEW.active, NEW.secret_hash, NEW.kind, NEW.region)
                    IS DISTINCT FROM (OLD.active, OLD.secret_hash, OLD.kind, OLD.region) THEN
                NEW.token_version := OLD.token_version + 1;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER clients_revoke_tokens BEFORE UPDATE ON clients "
        "FOR EACH ROW EXECUTE FUNCTION clients_revoke_tokens()"
    )
    op.create_table(
        "self_sessions",
        sa.Column("session_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("person_id", UUID(as_uuid=True), nullable=False),
        sa.Column("id_number_hash", sa.String(64), nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_self_sessions_expires_at", "self_sessions", ["expires_at"])
    op.create_table(
        "id_token_uses",
        sa.Column("issuer", sa.String(200), primary_key=True),
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_id_token_uses_expires_at", "id_token_uses", ["expires_at"])


def downgrade() -> None:
    op.drop_table("id_token_uses")
    op.drop_table("self_sessions")
    op.execute("DROP TRIGGER clients_revoke_tokens ON clients")
    op.execute("DROP FUNCTION clients_revoke_tokens()")
    op.drop_table("clients")
