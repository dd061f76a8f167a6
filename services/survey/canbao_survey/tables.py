"""Survey's tables (migration survey_0001)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()

collections = sa.Table(
    "collections",
    metadata,
    sa.Column("collection_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("channel", sa.String(12), nullable=False),
    sa.Column("person_id", UUID(as_uuid=True)),  # null: a new registration
    sa.Column("document_type", sa.String(2), nullable=False),
    sa.Column("region_code", sa.String(6)),  # where a new registrant lives (GB/T 2260 county)
    # AES-GCM of the item → value JSON, under `key_id` (protection.py); never in clear.
    sa.Column("items_sealed", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("item_names", ARRAY(sa.String(32)), nullable=False),  # which items, not values
    sa.Column("resolved_reasons", ARRAY(sa.String(24)), nullable=False),
    sa.Column("verified_statuses", JSONB, nullable=False),
    sa.Column("handler", sa.String(64), nullable=False),  # AAE011
    sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),  # AAE036
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("first_reviewer", sa.String(64)),
    sa.Column("first_reviewed_at", sa.DateTime(timezone=True)),
    sa.Column("reviewer", sa.String(64)),  # AAE014
    sa.Column("reviewed_at", sa.DateTime(timezone=True)),  # AAE015
    sa.Column("idempotency_key", sa.String(128)),  # the client's Idempotency-Key, per handler
    # Where the gateway placed the person (survey_0004): whose reviewers it is for, until survey
    # hears identity's region for them (subjects).
    sa.Column("person_region", sa.String(6)),
)

# -- The household survey (migration survey_0003; tasks.py) ---------------------------------------

# What identity and matching last said about a person (registry.persons, registry.statuses):
# survey's own copy, masked, no values (architecture.md "Each service owns its data").
subjects = sa.Table(
    "subjects",
    metadata,
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("region_code", sa.String(6)),
    sa.Column("household_registered", sa.Boolean, nullable=False),
    sa.Column("deceased", sa.Boolean, nullable=False),
    sa.Column("masked_name", sa.String(64)),
    sa.Column("missing", ARRAY(sa.String(32)), nullable=False),
    sa.Column("inaccurate", JSONB, nullable=False),  # [{"item", "reason"}]
    sa.Column("person_at", sa.DateTime(timezone=True)),  # the newest registry.persons event
    sa.Column("in_scope", sa.Boolean, nullable=False),  # withdrawn: false
    sa.Column("needs_survey", sa.Boolean, nullable=False),
    sa.Column("survey_reasons", ARRAY(sa.String(24)), nullable=False),
    sa.Column("statuses", JSONB, nullable=False),  # insurance → code
    sa.Column("registration", sa.String(12)),
    sa.Column("statuses_at", sa.DateTime(timezone=True)),  # the newest verdict's evaluated_at
    sa.Column("merged_into", UUID(as_uuid=True)),
)

# The surveyor roster per county (44号 Art.5, §16: trained by the county, carrying a 调查证).
surveyors = sa.Table(
    "surveyors",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("certificate_number", sa.String(32), nullable=False, unique=True),  # 调查证号
    sa.Column("contracted", sa.Boolean, nullable=False),  # 劳务派遣/购买服务 staff
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("added_by", sa.String(64), nullable=False),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
)

survey_lists = sa.Table(
    "survey_lists",
    metadata,
    sa.Column("list_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("region_code", sa.String(6), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tasks", sa.Integer, nullable=False),
    sa.Column("households", sa.Integer, nullable=False),
)

# Every member of a household of a listed division, whether they need a survey or not, so that
# a household shows who of it is already complete (户不漏人). Values sealed (prefill_sealed):
# name, number, addresses, phone, household number as identity gave them for the form.
residents = sa.Table(
    "residents",
    metadata,
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("region_code", sa.String(6), nullable=False),
    sa.Column("household_key", sa.String(32), nullable=False),  # keyed digest of the 户号
    sa.Column("relation", sa.String(2)),  # yhzgx: 01 head, 02 spouse, 10 child, 20 parent
    sa.Column("masked_name", sa.String(64)),
    sa.Column("masked_id_number", sa.String(20)),
    sa.Column("prefill_sealed", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("list_id", UUID(as_uuid=True)),  # null: a discovery or a self-service correction
    sa.Column("channel", sa.String(8), nullable=False),  # survey | self | change
    sa.Column("origin", sa.String(12), nullable=False),  # Channel: survey, kiosk, mobile, platform
    sa.Column("person_id", UUID(as_uuid=True)),  # null: a discovered person, not yet registered
    sa.Column("region_code", sa.String(6), nullable=False),
    sa.Column("household_key", sa.String(32)),
    sa.Column("survey_reasons", ARRAY(sa.String(24)), nullable=False),
    sa.Column("missing", ARRAY(sa.String(32)), nullable=False),
    sa.Column("inaccurate", JSONB, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("closed_reason", sa.String(16)),
    sa.Column("team", ARRAY(sa.String(64)), nullable=False),
    sa.Column("assigned_by", sa.String(64)),
    sa.Column("last_comment", sa.String(500)),  # a rejection's comment, for the team
    sa.Column("submission_id", UUID(as_uuid=True)),  # the current submission
    sa.Column("version", sa.Integer, nullable=False),  # bumped on every change of state or team
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

submissions = sa.Table(
    "submissions",
    metadata,
    sa.Column("submission_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("task_id", UUID(as_uuid=True), nullable=False),
    sa.Column("client_id", UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("submitted_by", sa.String(64), nullable=False),  # AAE011
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("visited_at", sa.DateTime(timezone=True), nullable=False),  # AAE036
    sa.Column("contact", sa.String(8), nullable=False),
    sa.Column("outcome", sa.String(12), nullable=False),
    # AES-GCM of the whole submission as sent (items, declaration, note); never in clear.
    sa.Column("body_sealed", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("item_names", ARRAY(sa.String(32)), nullable=False),
    sa.Column("verified_reason", sa.String(2)),
    sa.Column("state", sa.String(16), nullable=False),  # submitted → first_reviewed → approved |
    sa.Column("collection_id", UUID(as_uuid=True)),  # rejected; the published collection
)

# Insert-only (the application role has no UPDATE or DELETE, survey_0003's trigger refuses a
# decider who made or already decided on the submission): the 初审/审定 record of 44号 §17-18,
# and the 复核 of counter collections (stage `recheck`, `submission_id` the collection_id;
# survey_0004's trigger finds the maker in submissions or collections).
decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("submission_id", UUID(as_uuid=True), nullable=False),
    sa.Column("stage", sa.String(8), nullable=False),  # review (初审) | approve (审定) | recheck
    sa.Column("decision", sa.String(8), nullable=False),  # pass | approve | reject
    sa.Column("decided_by", sa.String(64), nullable=False),  # AAE014 for 审定
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),  # AAE015 for 审定
    sa.Column("comment", sa.String(500), nullable=False),
)

# The photo or scan of the signed registration form: the survey's evidence, kept as a business
# archive (社会保险业务档案规定), not "no longer than needed" (architecture.md).
signed_forms = sa.Table(
    "signed_forms",
    metadata,
    sa.Column("submission_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("content_type", sa.String(32), nullable=False),
    sa.Column("data_sealed", sa.LargeBinary, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("keep_until", sa.Date, nullable=False),
)

# -- Sampling checks (migration survey_0005; sampling.py): insert-only, maker-checker in the
# database (a checker neither made nor decided the record).

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("sample_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("region_code", sa.String(6), nullable=False),
    sa.Column("per_county", sa.Integer, nullable=False),
    sa.Column("per_surveyor", sa.Integer, nullable=False),
    sa.Column("approved_from", sa.Date, nullable=False),
    sa.Column("approved_to", sa.Date, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),  # the draw's order: md5(seed:record_id)
    sa.Column("drawn_by", sa.String(64), nullable=False),
    sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("population", sa.Integer, nullable=False),  # approved records it was drawn from
    sa.Column("records", sa.Integer, nullable=False),
)

# A record drawn: a survey submission (submission_id) or a counter collection (collection_id).
sample_records = sa.Table(
    "sample_records",
    metadata,
    sa.Column("sample_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("record_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),  # submission | collection
    sa.Column("channel", sa.String(12), nullable=False),  # Channel
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("maker", sa.String(64), nullable=False),  # AAE011
    sa.Column("deciders", ARRAY(sa.String(64)), nullable=False),  # 初审, 审定, 复核
    sa.Column("person_id", UUID(as_uuid=True)),
    sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("item_names", ARRAY(sa.String(32)), nullable=False),
)

sample_checks = sa.Table(
    "sample_checks",
    metadata,
    sa.Column("sample_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("record_id", UUID(as_uuid=True), primary_key=True),  # once per record
    sa.Column("result", sa.String(8), nullable=False),  # correct | error
    sa.Column("wrong_items", ARRAY(sa.String(32)), nullable=False),
    sa.Column("comment", sa.String(500), nullable=False),
    sa.Column("checked_by", sa.String(64), nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
)
