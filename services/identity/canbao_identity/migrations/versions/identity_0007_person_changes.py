"""Each person's change history (44号 Art.20, 参保信息变更情况; canbao_identity.history): one row
per changed item of a golden record, per rebuild, and the person's own events.

Insert-only, as survey's decisions ledger is, but by a trigger alone: a key rotation's reseal
(canbao_identity.reseal) rewrites the sealed values under the new key, so the application role
keeps UPDATE, and the trigger lets through an UPDATE that changes nothing but `values_sealed`
and `key_id`. DELETE and TRUNCATE are refused.

Revision ID: identity_0007
Revises: identity_0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision: str = "identity_0007"
down_revision: str | None = "identity_0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_INSERT_ONLY = (
    """
CREATE FUNCTION person_changes_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'values_sealed' - 'key_id')
                          = (to_jsonb(OLD) - 'values_sealed' - 'key_id') THEN
        RETURN NEW;  -- a reseal under a new data key
    END IF;
    RAISE EXCEPTION 'the change history is insert-only' USING ERRCODE = 'CBM04';
END $$
""",
    """
CREATE TRIGGER person_changes_insert_only BEFORE UPDATE OR DELETE ON person_changes
    FOR EACH ROW EXECUTE FUNCTION person_changes_insert_only()
""",
    """
CREATE TRIGGER person_changes_no_truncate BEFORE TRUNCATE ON person_changes
    FOR EACH STATEMENT EXECUTE FUNCTION person_changes_insert_only()
""",
)


def upgrade() -> None:
    op.create_table(
        "person_changes",
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            primary_key=True,
            server_default=sa.text("statement_timestamp()"),
        ),
        sa.Column("change_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("item", sa.String(32)),
        sa.Column("source_table", sa.String(64)),
        sa.Column("record_key", sa.String(200)),
        sa.Column("observed_at", sa.String(40)),
        sa.Column("channel", sa.String(12)),
        sa.Column("collection_id", UUID(as_uuid=True)),
        sa.Column("handler", sa.String(64)),
        sa.Column("reviewer", sa.String(64)),
        sa.Column("reviewed_at", sa.String(40)),
        sa.Column("other_person_id", UUID(as_uuid=True)),
        sa.Column("values_sealed", sa.LargeBinary),
        sa.Column("key_id", sa.String(64)),
    )
    for statement in _INSERT_ONLY:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("person_changes")  # its triggers with it
    op.execute("DROP FUNCTION person_changes_insert_only()")
