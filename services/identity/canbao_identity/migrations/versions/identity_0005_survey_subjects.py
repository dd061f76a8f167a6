"""Who a household survey of a division visits (domain.md §2.3; routes.py survey-subjects): each
person's published region_code, whether household-registered locally and deceased as columns of
their own, and their household as a blind index, with the index the survey's stream reads in
order (region, household, person) — a county's 500,000 people without a sort.

region_code is in byte order (COLLATE "C"): a code prefix is then a range of the index, and the
order of the stream is the index's. The three published values are backfilled from public_state;
the household index is written by the next rebuild of each person (their golden record holds the
户号 only once hukou.person's rows are read again).

Revision ID: identity_0005
Revises: identity_0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "identity_0005"
down_revision: str | None = "identity_0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("persons", sa.Column("region_code", sa.String(6, collation="C")))
    for flag in ("household_registered", "deceased"):
        op.add_column(
            "persons", sa.Column(flag, sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.add_column("persons", sa.Column("household_index", sa.String(64)))
    op.execute(
        "UPDATE persons SET region_code = public_state->>'region_code', "
        "household_registered = coalesce((public_state->>'household_registered_locally')::boolean,"
        " false), "
        "deceased = coalesce((public_state->>'deceased')::boolean, false) "
        "WHERE public_state IS NOT NULL"
    )
    op.create_index(
        "ix_persons_survey_subjects",
        "persons",
        ["region_code", "household_index", "person_id"],
        postgresql_where=sa.text("household_registered AND NOT deceased"),
    )


def downgrade() -> None:
    op.drop_index("ix_persons_survey_subjects", table_name="persons")
    for column in ("household_index", "deceased", "household_registered", "region_code"):
        op.drop_column("persons", column)
