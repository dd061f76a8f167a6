"""The second pair of eyes (复核) on counter collections (41号 表4, 44号 Art.13).

A counter collection is now kept `submitted` until a reviewer (AAE014), never the clerk who
collected it (AAE011), passes or returns it. The decision is a row of survey_0003's insert-only
ledger, stage `recheck`, whose `submission_id` is then the collection's id: the ledger's
foreign key to `submissions` goes, and its trigger finds the maker in `submissions.submitted_by`
or, for a counter collection, in `collections.handler`. SQLSTATEs unchanged: CBM01
maker-checker, CBM02 a decision out of order (a 复核 is one decision; nothing follows it).

Revision ID: survey_0004
Revises: survey_0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "survey_0004"
down_revision: str | None = "survey_0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

MAKER_CHECKER = """
CREATE OR REPLACE FUNCTION decisions_maker_checker() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    maker text;
    counter boolean := false;
BEGIN
    SELECT submitted_by INTO maker FROM submissions WHERE submission_id = NEW.submission_id;
    IF maker IS NULL THEN
        SELECT handler INTO maker FROM collections WHERE collection_id = NEW.submission_id;
        counter := maker IS NOT NULL;
    END IF;
    IF maker IS NULL THEN
        RAISE EXCEPTION 'decision on an unknown submission or collection %', NEW.submission_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- domain.md §4 and 44号 §17-18: nobody decides on a record they made or reviewed.
    IF NEW.decided_by = maker OR EXISTS (
        SELECT 1 FROM decisions
        WHERE submission_id = NEW.submission_id AND decided_by = NEW.decided_by
    ) THEN
        RAISE EXCEPTION 'maker-checker: % made or already decided on %',
            NEW.decided_by, NEW.submission_id USING ERRCODE = 'CBM01';
    END IF;
    IF counter THEN
        -- 复核 (41号 表4): one decision on a counter collection, and nothing after it.
        IF NEW.stage <> 'recheck' OR EXISTS (
            SELECT 1 FROM decisions WHERE submission_id = NEW.submission_id
        ) THEN
            RAISE EXCEPTION 'decision % at stage % out of order for collection %',
                NEW.decision, NEW.stage, NEW.submission_id USING ERRCODE = 'CBM02';
        END IF;
        RETURN NEW;
    END IF;
    -- 审定 only after a passed 初审; nothing after a rejection or an approval; no 复核.
    IF NEW.stage = 'recheck' OR EXISTS (
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
"""

# survey_0003's function, restored by the downgrade.
PREVIOUS = """
CREATE OR REPLACE FUNCTION decisions_maker_checker() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    maker text;
BEGIN
    SELECT submitted_by INTO maker FROM submissions WHERE submission_id = NEW.submission_id;
    IF maker IS NULL THEN
        RAISE EXCEPTION 'decision on an unknown submission %', NEW.submission_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF NEW.decided_by = maker OR EXISTS (
        SELECT 1 FROM decisions
        WHERE submission_id = NEW.submission_id AND decided_by = NEW.decided_by
    ) THEN
        RAISE EXCEPTION 'maker-checker: % made or already decided on submission %',
            NEW.decided_by, NEW.submission_id USING ERRCODE = 'CBM01';
    END IF;
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
"""


def upgrade() -> None:
    # The ledger now holds decisions on collections too: the trigger checks the reference.
    op.execute("ALTER TABLE decisions DROP CONSTRAINT decisions_submission_id_fkey")
    op.execute("ALTER TABLE decisions DROP CONSTRAINT ck_decisions_stage")
    op.execute(
        "ALTER TABLE decisions ADD CONSTRAINT ck_decisions_stage CHECK ("
        "(stage = 'review' AND decision IN ('pass', 'reject')) OR "
        "(stage = 'approve' AND decision IN ('approve', 'reject')) OR "
        "(stage = 'recheck' AND decision IN ('pass', 'reject')))"
    )
    op.execute(MAKER_CHECKER)
    # Whose reviewers a collection is for: where the gateway placed the person when it checked
    # the clerk's scope (identity's region for them; a new registration's region or number).
    op.add_column("collections", sa.Column("person_region", sa.String(6)))
    # The reviewers' queue: a division's waiting collections, oldest first (keyset paging).
    op.execute(
        "CREATE INDEX ix_collections_pending ON collections (handled_at, collection_id) "
        "WHERE state = 'submitted'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_collections_pending")
    op.drop_column("collections", "person_region")
    op.execute(PREVIOUS)
    op.execute("ALTER TABLE decisions DROP CONSTRAINT ck_decisions_stage")
    op.execute(
        "ALTER TABLE decisions ADD CONSTRAINT ck_decisions_stage CHECK ("
        "(stage = 'review' AND decision IN ('pass', 'reject')) OR "
        "(stage = 'approve' AND decision IN ('approve', 'reject')))"
    )
    op.execute(
        "ALTER TABLE decisions ADD CONSTRAINT decisions_submission_id_fkey "
        "FOREIGN KEY (submission_id) REFERENCES submissions (submission_id)"
    )
