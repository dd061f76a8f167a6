"""Matching's own tables (SQLAlchemy Core on its own MetaData; the migration creates them).

No personal values: a person is identity's opaque `person_id` with the masked state identity
publishes; facts carry no names or numbers (canbao_contracts.events.fact_kinds); collections are
kept without their collected items (events.collection: "consumers other than identity … must not
store or log `items`")."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()

# One row per person: the last registry.persons state, the verdict last published, and the
# verdict's columns the lists of the internal API filter on.
persons = sa.Table(
    "persons",
    metadata,
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    # PersonState (masked); SQL NULL while only facts have arrived
    sa.Column("state", JSONB(none_as_null=True)),
    sa.Column("merged_into", UUID(as_uuid=True)),  # retired by a PersonsMerged: never evaluated
    # The Verdict last published; SQL NULL: none yet, or out of scope
    sa.Column("verdict", JSONB(none_as_null=True)),
    sa.Column("in_scope", sa.Boolean),
    sa.Column("region_code", sa.String(6)),
    sa.Column("registration", sa.String(12)),
    sa.Column("survey_reasons", ARRAY(sa.String(24)), nullable=False, server_default="{}"),
    sa.Column("pending", sa.Boolean, nullable=False, server_default="false"),  # to evaluate
    sa.Column("pending_observed_at", sa.DateTime(timezone=True)),  # newest source change since
    # When the person last became pending, and the newest Kafka timestamp among the messages
    # that marked them: the evaluator waits until the consumer has applied everything published
    # before it (the rest of an identity rebuild comes on other topics), at most for a while.
    sa.Column("pending_since", sa.DateTime(timezone=True)),
    sa.Column("pending_published_at", sa.DateTime(timezone=True)),
    sa.Column("recheck_on", sa.Date),  # the next day the verdict may change with no new fact
    sa.Column("evaluated_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_persons_recheck_on", persons.c.recheck_on)
sa.Index("ix_persons_pending_since", persons.c.pending_since, postgresql_where=persons.c.pending)
sa.Index(
    "ix_persons_pending_published_at",
    persons.c.pending_published_at,
    postgresql_where=persons.c.pending,
)
sa.Index("ix_persons_region_registration", persons.c.region_code, persons.c.registration)
sa.Index("ix_persons_survey_reasons", persons.c.survey_reasons, postgresql_using="gin")

# The newest revision of every fact (registry.facts): a retraction stays as a tombstone so that
# a late copy of an older revision cannot bring the fact back.
facts = sa.Table(
    "facts",
    metadata,
    sa.Column("fact_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("person_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("retracted", sa.Boolean, nullable=False),
    sa.Column("from_collection", sa.Boolean, nullable=False),  # source.system = "collection"
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True)),  # the message's Kafka timestamp
    sa.Column("body", JSONB, nullable=False),  # the Fact as the contract serialises it
)

# Approved collections (registry.collections), without the collected values.
collections = sa.Table(
    "collections",
    metadata,
    sa.Column("collection_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("person_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_reasons", ARRAY(sa.String(24)), nullable=False),
    sa.Column("verified_statuses", JSONB, nullable=False),
)
