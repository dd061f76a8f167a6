"""Change registration at the grass-roots platform (变更登记, 44号 Art.21) as tasks of channel
change, and the city's sampling checks (Chongqing plan 四(二)): samples, their records and the
re-check of each, insert-only, maker-checker held by the database.

Revision ID: survey_0005
Revises: survey_0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision: str = "survey_0005"
down_revision: str | None = "survey_0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

# CBM01 maker-checker and CBM03 insert-only, as survey_0003's decision ledger.
TRIGGERS = (
    """
CREATE FUNCTION sampling_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the sampling record % is insert-only', TG_TABLE_NAME USING ERRCODE = 'CBM03';
END $$
""",
    *(
        f"""
CREATE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION sampling_insert_only()
"""
        for table in ("samples", "sample_records", "sample_checks")
    ),
    """
CREATE FUNCTION sample_checks_maker_checker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Chongqing plan 四(二), domain.md §4: nobody re-checks a record they made or decided.
    IF EXISTS (
        SELECT 1 FROM sample_records
        WHERE sample_id = NEW.sample_id AND record_id = NEW.record_id
        AND (maker = NEW.checked_by OR NEW.checked_by = ANY(deciders))
    ) THEN
        RAISE EXCEPTION 'maker-checker: % made or decided record %', NEW.checked_by,
            NEW.record_id USING ERRCODE = 'CBM01';
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER sample_checks_maker_checker BEFORE INSERT ON sample_checks
    FOR EACH ROW EXECUTE FUNCTION sample_checks_maker_checker()
""",
)
OPEN_PERSON = "state NOT IN ('approved', 'closed') AND person_id IS NOT NULL"


def upgrade() -> None:
    op.drop_constraint("ck_tasks_channel", "tasks", type_="check")
    op.create_check_constraint(
        "ck_tasks_channel", "tasks", "channel IN ('survey', 'self', 'change')"
    )
    # One waiting survey task per person (lists.py); a self-service correction or a change at the
    # platform may wait beside it (the person came to correct what the survey would ask), and one
    # change waits per person at a time (review.record_change).
    op.drop_index("ux_tasks_open_person", "tasks")
    op.create_index(
        "ux_tasks_open_person",
        "tasks",
        ["person_id"],
        unique=True,
        postgresql_where=sa.text(f"{OPEN_PERSON} AND channel = 'survey'"),
    )
    op.create_index(
        "ux_tasks_open_change",
        "tasks",
        ["person_id"],
        unique=True,
        postgresql_where=sa.text(f"{OPEN_PERSON} AND channel = 'change'"),
    )
    op.create_index("ix_tasks_person", "tasks", ["person_id"])
    op.create_index("ix_submissions_state", "submissions", ["state"])

    op.create_table(
        "samples",
        sa.Column("sample_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("per_county", sa.Integer, nullable=False),
        sa.Column("per_surveyor", sa.Integer, nullable=False),
        sa.Column("approved_from", sa.Date, nullable=False),
        sa.Column("approved_to", sa.Date, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("drawn_by", sa.String(64), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("population", sa.Integer, nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
    )
    op.create_table(
        "sample_records",
        sa.Column(
            "sample_id", UUID(as_uuid=True), sa.ForeignKey("samples.sample_id"), primary_key=True
        ),
        sa.Column("record_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(12), nullable=False),
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("maker", sa.String(64), nullable=False),
        sa.Column("deciders", ARRAY(sa.String(64)), nullable=False),
        sa.Column("person_id", UUID(as_uuid=True)),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("item_names", ARRAY(sa.String(32)), nullable=False),
        sa.CheckConstraint("kind IN ('submission', 'collection')", name="ck_sample_records_kind"),
    )
    op.create_table(
        "sample_checks",
        sa.Column("sample_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("record_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("result", sa.String(8), nullable=False),
        sa.Column("wrong_items", ARRAY(sa.String(32)), nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("checked_by", sa.String(64), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sample_id", "record_id"], ["sample_records.sample_id", "sample_records.record_id"]
        ),
        sa.CheckConstraint("result IN ('correct', 'error')", name="ck_sample_checks_result"),
        sa.CheckConstraint(
            "result = 'error' OR cardinality(wrong_items) = 0", name="ck_sample_checks_wrong_items"
        ),
    )
    op.create_index("ix_sample_checks_checked_at", "sample_checks", ["checked_at"])
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("sample_checks", "sample_records", "samples"):
        op.drop_table(table)
    op.execute("DROP FUNCTION sample_checks_maker_checker()")
    op.execute("DROP FUNCTION sampling_insert_only()")
    op.drop_index("ix_submissions_state", "submissions")
    op.drop_index("ix_tasks_person", "tasks")
    op.drop_index("ux_tasks_open_change", "tasks")
    op.drop_index("ux_tasks_open_person", "tasks")
    op.create_index(
        "ux_tasks_open_person",
        "tasks",
        ["person_id"],
        unique=True,
        postgresql_where=sa.text(OPEN_PERSON),
    )
    op.drop_constraint("ck_tasks_channel", "tasks", type_="check")
    op.create_check_constraint("ck_tasks_channel", "tasks", "channel IN ('survey', 'self')")
