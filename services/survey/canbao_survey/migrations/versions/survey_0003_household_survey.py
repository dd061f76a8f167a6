"""The household survey (入户调查, domain.md §2.3): subjects, roster, lists, residents, tasks,
submissions, the insert-only decision ledger with maker-checker in the database, signed forms.

Revision ID: survey_0003
Revises: survey_0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision: str = "survey_0003"
down_revision: str | None = "survey_0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

# SQLSTATEs of our own (class "CB"), so that the service maps them to problems without parsing
# messages: CBM01 maker-checker, CBM02 a decision out of order.
MAKER_CHECKER = (
    """
CREATE FUNCTION decisions_maker_checker() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    maker text;
BEGIN
    SELECT submitted_by INTO maker FROM submissions WHERE submission_id = NEW.submission_id;
    IF maker IS NULL THEN
        RAISE EXCEPTION 'decision on an unknown submission %', NEW.submission_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- domain.md §4 and 44号 §17-18: nobody decides on a submission they made or reviewed.
    IF NEW.decided_by = maker OR EXISTS (
        SELECT 1 FROM decisions
        WHERE submission_id = NEW.submission_id AND decided_by = NEW.decided_by
    ) THEN
        RAISE EXCEPTION 'maker-checker: % made or already decided on submission %',
            NEW.decided_by, NEW.submission_id USING ERRCODE = 'CBM01';
    END IF;
    -- 审定 only after a passed 初审; nothing after a rejection or an approval.
    IF EXISTS (
        SELECT 1 FROM decisions WHERE submission_id = NEW.submission_id
        AND (decision = 'reject' OR stage = 'approve')
    ) OR (NEW.stage = 'approve' AND NOT EXISTS (
        SELECT 1 FROM decisions WHERE submission_id = NEW.submission_id
        AND stage = 'review' AND decision = 'pass'
    )) OR (NEW.stage = 'review' AND EXISTS (
        SELECT 1 FROM decisions WHERE submission_id = NEW.submission_id AND stage = 'review'
    )) THEN
        RAISE EXCEPTION 'decision % at stage % out of order for submission %',
            NEW.decision, NEW.stage, NEW.submission_id USING ERRCODE = 'CBM02';
    END IF;
    RETURN NEW;
END $$
""",
    """
CREATE TRIGGER decisions_maker_checker BEFORE INSERT ON decisions
    FOR EACH ROW EXECUTE FUNCTION decisions_maker_checker()
""",
    """
CREATE FUNCTION decisions_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the decision ledger is insert-only' USING ERRCODE = 'CBM03';
END $$
""",
    """
CREATE TRIGGER decisions_insert_only BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION decisions_insert_only()
""",
)


def upgrade() -> None:
    op.create_table(
        "subjects",
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("region_code", sa.String(6)),
        sa.Column("household_registered", sa.Boolean, nullable=False),
        sa.Column("deceased", sa.Boolean, nullable=False),
        sa.Column("masked_name", sa.String(64)),
        sa.Column("missing", ARRAY(sa.String(32)), nullable=False),
        sa.Column("inaccurate", JSONB, nullable=False),
        sa.Column("person_at", sa.DateTime(timezone=True)),
        sa.Column("in_scope", sa.Boolean, nullable=False),
        sa.Column("needs_survey", sa.Boolean, nullable=False),
        sa.Column("survey_reasons", ARRAY(sa.String(24)), nullable=False),
        sa.Column("statuses", JSONB, nullable=False),
        sa.Column("registration", sa.String(12)),
        sa.Column("statuses_at", sa.DateTime(timezone=True)),
        sa.Column("merged_into", UUID(as_uuid=True)),
    )
    # The list's query: the division's people needing a survey (text_pattern_ops: by prefix).
    op.execute(
        "CREATE INDEX ix_subjects_needing_survey ON subjects (region_code text_pattern_ops) "
        "WHERE needs_survey AND in_scope AND household_registered AND NOT deceased"
    )
    op.create_table(
        "surveyors",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("certificate_number", sa.String(32), nullable=False, unique=True),
        sa.Column("contracted", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "survey_lists",
        sa.Column("list_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tasks", sa.Integer, nullable=False),
        sa.Column("households", sa.Integer, nullable=False),
    )
    op.create_table(
        "residents",
        sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("household_key", sa.String(32), nullable=False),
        sa.Column("relation", sa.String(2)),
        sa.Column("masked_name", sa.String(64)),
        sa.Column("masked_id_number", sa.String(20)),
        sa.Column("prefill_sealed", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_residents_household", "residents", ["household_key"])
    op.execute("CREATE INDEX ix_residents_region ON residents (region_code text_pattern_ops)")
    op.create_table(
        "tasks",
        sa.Column("task_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("list_id", UUID(as_uuid=True)),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("origin", sa.String(12), nullable=False),
        sa.Column("person_id", UUID(as_uuid=True)),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("household_key", sa.String(32)),
        sa.Column("survey_reasons", ARRAY(sa.String(24)), nullable=False),
        sa.Column("missing", ARRAY(sa.String(32)), nullable=False),
        sa.Column("inaccurate", JSONB, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("closed_reason", sa.String(16)),
        sa.Column("team", ARRAY(sa.String(64)), nullable=False),
        sa.Column("assigned_by", sa.String(64)),
        sa.Column("last_comment", sa.String(500)),
        sa.Column("submission_id", UUID(as_uuid=True)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('survey', 'self')", name="ck_tasks_channel"),
        sa.CheckConstraint(
            "state IN ('open', 'assigned', 'submitted', 'first_reviewed', 'approved', 'closed')",
            name="ck_tasks_state",
        ),
        sa.CheckConstraint("cardinality(team) <= 3", name="ck_tasks_team_size"),  # 44号 §16
        sa.CheckConstraint(
            "(state = 'closed') = (closed_reason IS NOT NULL)", name="ck_tasks_closed_reason"
        ),
    )
    # One waiting task per person: a list generated again adds only the new people.
    op.create_index(
        "ux_tasks_open_person",
        "tasks",
        ["person_id"],
        unique=True,
        postgresql_where=sa.text("state NOT IN ('approved', 'closed') AND person_id IS NOT NULL"),
    )
    op.execute("CREATE INDEX ix_tasks_region ON tasks (region_code text_pattern_ops, state)")
    op.create_index("ix_tasks_household", "tasks", ["household_key"])
    op.create_index("ix_tasks_team", "tasks", ["team"], postgresql_using="gin")
    op.create_table(
        "submissions",
        sa.Column("submission_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("task_id", UUID(as_uuid=True), sa.ForeignKey("tasks.task_id"), nullable=False),
        sa.Column("client_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contact", sa.String(8), nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("body_sealed", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("item_names", ARRAY(sa.String(32)), nullable=False),
        sa.Column("verified_reason", sa.String(2)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("collection_id", UUID(as_uuid=True)),
    )
    op.create_index("ix_submissions_task", "submissions", ["task_id"])
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "submission_id",
            UUID(as_uuid=True),
            sa.ForeignKey("submissions.submission_id"),
            nullable=False,
        ),
        sa.Column("stage", sa.String(8), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.CheckConstraint(
            "(stage = 'review' AND decision IN ('pass', 'reject')) OR "
            "(stage = 'approve' AND decision IN ('approve', 'reject'))",
            name="ck_decisions_stage",
        ),
    )
    op.create_index("ix_decisions_submission", "decisions", ["submission_id"])
    for statement in MAKER_CHECKER:
        op.execute(statement)
    op.create_table(
        "signed_forms",
        sa.Column(
            "submission_id",
            UUID(as_uuid=True),
            sa.ForeignKey("submissions.submission_id"),
            primary_key=True,
        ),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("data_sealed", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("keep_until", sa.Date, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "signed_forms",
        "decisions",
        "submissions",
        "tasks",
        "residents",
        "survey_lists",
        "surveyors",
        "subjects",
    ):
        op.drop_table(table)
    op.execute("DROP FUNCTION decisions_maker_checker()")
    op.execute("DROP FUNCTION decisions_insert_only()")
