"""Identity's own tables (SQLAlchemy Core on its own MetaData; the migration creates them).

Personal values live only in the `*_ciphertext` columns (AES-GCM, protection.py) with the id of
the key that encrypted them; look-ups go through blind indexes (HMAC-SHA256)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = sa.MetaData()


STAGED_SHARES = 64  # see staged_changes
STAGED_SHARE = (
    "get_byte(decode(md5(coalesce(link_ref, source_table || '|' || record_key)), 'hex'), 0)"
    f" % {STAGED_SHARES}"
)

persons = sa.Table(
    "persons",
    metadata,
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("demographic_index", sa.String(64), index=True),  # name + birth date + gender
    # Ciphertext is stored out of line uncompressed, JSON compressed with LZ4 (identity_0014).
    sa.Column("golden_ciphertext", sa.LargeBinary),  # golden record + gaps + provenance
    sa.Column("key_id", sa.String(64)),
    sa.Column("public_state", JSONB),  # what we last published (masked): to publish changes only
    sa.Column(
        "emitted_facts", JSONB, nullable=False, server_default="{}"
    ),  # fact_id → [revision, digest, retracted, the fact as JSON] (publication.facts_events)
    # Who a household survey of a division visits (routes.py survey-subjects), written with
    # public_state: its region_code (in byte order, so a prefix is a range of the index), whether
    # household-registered locally and deceased; and the household as a blind index of region and
    # 户号 (protection.py), which groups its members without the number in clear.
    sa.Column("region_code", sa.String(6, collation="C")),
    sa.Column("household_registered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("deceased", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("household_index", sa.String(64)),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index(
        "ix_persons_survey_subjects",
        "region_code",
        "household_index",
        "person_id",
        postgresql_where=sa.text("household_registered AND NOT deceased"),
    ),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("document_type", sa.String(2), primary_key=True),
    sa.Column("number_index", sa.String(64), primary_key=True),
    sa.Column("person_id", UUID(as_uuid=True), nullable=False, index=True),
)

source_records = sa.Table(
    "source_records",
    metadata,
    sa.Column("source_table", sa.String(64), primary_key=True),  # si_core.ac01, collection.counter
    sa.Column("record_key", sa.String(200), primary_key=True),  # a number only as blind index
    sa.Column("person_id", UUID(as_uuid=True), index=True),
    sa.Column("link_kind", sa.String(16), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),  # highest applied (LSN×2 + streamed)
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("claims_ciphertext", sa.LargeBinary),
    sa.Column("key_id", sa.String(64)),
    sa.Column("facts", JSONB, nullable=False, server_default="[]"),  # not personal
    sa.Column("provenance", JSONB, nullable=False, server_default="{}"),  # a collection's staff
    sa.Column("link_ref", sa.String(300), index=True),
    sa.Column("number_index", sa.String(64)),
    sa.Column("demographic_index", sa.String(64), index=True),
    sa.Column("observed_at", sa.String(40)),
    # When the source last changed the record as far as we know (handlers.staged_change): never
    # later than the truth, so a re-snapshot cannot make an old value look fresh (golden.py).
    sa.Column("changed_at", sa.DateTime(timezone=True)),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# Source changes consumed but not yet resolved (golden_records.py step 1): the consumers write them
# in the batch's own transaction (with the idempotency records), already reduced to what resolution
# needs — claims encrypted, the number only as its blind index — and the builder resolves them in
# bulk, in staging order.
#
# Each change falls in one of STAGED_SHARES shares (migration identity_0011), which the builder
# replicas resolve in parallel, one replica per share at a time (store.take_staged). The share is
# a hash of the row the change's person is found through: its `link_ref` (an ac02/ac60 names its
# ac01), else its own key — so an ac01's versions and the rows that name it are resolved by one
# replica, in staging order (a deletion names no row: an ac02's may fall in another share than
# its versions, and the save keeps whichever is newer, store._SAVE_RECORDS). PostgreSQL computes
# it as the row is staged (md5's first byte: stable, the same for every writer and builder);
# changing the count is a migration of its own. Like pending_persons, a queue: vacuumed by its own
# settings (migration identity_0013).
staged_changes = sa.Table(
    "staged_changes",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source_table", sa.String(64), nullable=False),
    sa.Column("record_key", sa.String(200), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("observed_at", sa.String(40)),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("claims_ciphertext", sa.LargeBinary),
    sa.Column("key_id", sa.String(64)),
    sa.Column("facts", JSONB, nullable=False),
    sa.Column("provenance", JSONB, nullable=False),
    sa.Column("link_ref", sa.String(300)),
    sa.Column("forced_person_id", UUID(as_uuid=True)),  # a collection naming its person
    sa.Column("document_type", sa.String(2)),
    sa.Column("number_index", sa.String(64)),
    sa.Column("demographic_index", sa.String(64)),
    sa.Column("defects", JSONB, nullable=False),  # DefectCode values: value-free
    sa.Column("changed_at", sa.DateTime(timezone=True)),
    # A snapshot's read of the row (op "r"), not a change streamed from the source's log: the
    # persons it reaches settle (pending_persons) while more of the snapshot is on its way.
    sa.Column("snapshot_read", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(  # the builder's backlog: the age of the oldest change not yet resolved
        "staged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("share", sa.SmallInteger, sa.Computed(STAGED_SHARE, persisted=True), nullable=False),
    sa.Index("ix_staged_changes_share", "share", "id"),
)

# Persons whose records changed since their golden record was last built: resolution marks them with
# the records it links (GoldenRecords.resolve), as does a clerk's link
# (GoldenRecords.link_reviewed); the golden-record builder drains them (builder.py), so a burst of
# changes to one person (a snapshot: ~6 rows each) costs one rebuild, not one per row.
#
# A person reached only by a snapshot's reads is `settling`: a snapshot goes table by table, so
# their other rows are still on the way, minutes apart at a province's scale. The builder leaves
# settling persons until the snapshot has gone quiet — no read marked anyone for a few seconds
# (`last_marked_at`) — or they have waited too long (Store.take_pending, Settling); a change
# streamed from a source's log makes its person due at once.
pending_persons = sa.Table(
    "pending_persons",
    metadata,
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    sa.Column(  # when first marked: taken oldest first (builder.py)
        "marked_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
        index=True,
    ),
    sa.Column("settling", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "last_marked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_pending_persons_due", "marked_at", postgresql_where=sa.text("NOT settling")),
    sa.Index("ix_pending_persons_settling", "last_marked_at", postgresql_where=sa.text("settling")),
)

review_queue = sa.Table(
    "review_queue",
    metadata,
    sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source_table", sa.String(64), nullable=False),
    sa.Column("record_key", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),  # value-free
    sa.Column("demographic_index", sa.String(64), index=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="open"),  # ReviewState
    sa.Column("resolution", sa.String(32)),  # ReviewOutcome
    sa.Column("person_id", UUID(as_uuid=True)),
    sa.Column("resolved_by", sa.String(64)),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("source_table", "record_key"),
)

# Persons whose rebuild failed for a reason that is not transient (builder.py): no longer pending,
# so they hold up nobody; rebuilt again when their next change arrives or an operator retries
# them (set_aside.py), and removed from here by the rebuild that succeeds.
set_aside_persons = sa.Table(
    "set_aside_persons",
    metadata,
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("reason", sa.String(300), nullable=False),  # value-free: error class and SQLSTATE
    sa.Column(
        "set_aside_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# Write-back of approved changes to the business systems (44号 Art.22; writeback.py): one row per
# feedback request (one per collection and disagreeing source record) and item. No value: the
# request's value is the collection's, held encrypted in its source record.
writebacks = sa.Table(
    "writebacks",
    metadata,
    sa.Column("feedback_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("item", sa.String(32), primary_key=True),  # RegistrationItem
    sa.Column("collection_id", UUID(as_uuid=True), nullable=False),
    sa.Column("person_id", UUID(as_uuid=True), nullable=False),
    sa.Column("system", sa.String(16), nullable=False),
    sa.Column("source_table", sa.String(64), nullable=False),
    sa.Column("record_key", sa.String(200), nullable=False),
    sa.Column("column_name", sa.String(64), nullable=False),
    # pending → applied | superseded | refused
    sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("reason", sa.String(300)),  # the system's, for a refusal
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("settled_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint(
        "state IN ('pending', 'applied', 'superseded', 'refused')", name="ck_writebacks_state"
    ),
    sa.Index("ix_writebacks_person", "person_id", "state"),
    sa.Index("ix_writebacks_list", "state", "requested_at", "feedback_id"),
)

# Each person's change history (history.py; 44号 Art.20): insert-only (migration identity_0007's
# trigger), old and new values sealed together per row under `key_id`, bound to the row.
person_changes = sa.Table(
    "person_changes",
    metadata,
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    sa.Column(  # the statement's time: every row of one rebuild shares it
        "changed_at",
        sa.DateTime(timezone=True),
        primary_key=True,
        server_default=sa.text("statement_timestamp()"),
    ),
    sa.Column("change_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # history.ChangeKind
    sa.Column("item", sa.String(32)),  # the golden field, for kind "value"
    # Where the new value comes from: the source record (its key: a number only as blind index)…
    sa.Column("source_table", sa.String(64)),
    sa.Column("record_key", sa.String(200)),
    sa.Column("observed_at", sa.String(40)),
    # …and for a collection, who made and who checked it (AAE011, AAE014/AAE015).
    sa.Column("channel", sa.String(12)),
    sa.Column("collection_id", UUID(as_uuid=True)),
    sa.Column("handler", sa.String(64)),
    sa.Column("reviewer", sa.String(64)),
    sa.Column("reviewed_at", sa.String(40)),
    sa.Column("other_person_id", UUID(as_uuid=True)),  # the other person of a merge
    sa.Column("values_sealed", sa.LargeBinary),  # {"old", "new"}; null for a person's event
    sa.Column("key_id", sa.String(64)),
)

# Batches partner departments sent (api.md "Partner departments"; partner_batches.py): one row
# per batch, unique per client and Idempotency-Key. `seq` orders batches: an accepted row's
# staged position is seq × 10^8 + its line, so a later batch's row supersedes an earlier one's.
# `received = accepted + rejected` always: the counts move in the transaction that stages the
# accepted rows and writes the rejected ones. `attempt` names the upload that holds the batch
# while it is `receiving`; `heartbeat_at` tells a live upload from one that was cut off.
partner_batches = sa.Table(
    "partner_batches",
    metadata,
    sa.Column("batch_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("department", sa.String(16), nullable=False),
    sa.Column("dataset", sa.String(32), nullable=False),
    sa.Column("media_type", sa.String(40), nullable=False),
    # How its bytes are read: utf-8 | gb18030, declared (charset) | detected (partner_batches).
    sa.Column("encoding", sa.String(8), nullable=False),
    sa.Column("encoding_source", sa.String(8), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # receiving | received
    sa.Column("attempt", UUID(as_uuid=True), nullable=False),
    sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("accepted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejected", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("digest", sa.String(64)),  # SHA-256 of the body, once received
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("client_id", "idempotency_key"),
    sa.CheckConstraint("state IN ('receiving', 'received')", name="ck_partner_batches_state"),
    sa.CheckConstraint("received = accepted + rejected", name="ck_partner_batches_counts"),
    sa.CheckConstraint("encoding IN ('utf-8', 'gb18030')", name="ck_partner_batches_encoding"),
    sa.CheckConstraint(
        "encoding_source IN ('declared', 'detected')", name="ck_partner_batches_encoding_source"
    ),
)

# The rows of a batch refused, by line number, with every reason (partners.Rejection). No value
# of the row: the department has its file, and a refused row is no record of the registry.
partner_batch_rejects = sa.Table(
    "partner_batch_rejects",
    metadata,
    sa.Column("batch_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("line", sa.BigInteger, primary_key=True),
    sa.Column("reasons", JSONB, nullable=False),  # [{"code", "column", "message_zh"}]
)

# The units (employers) of si_core.ab01 as last published on registry.units (units.py): not
# persons, never resolved. `position` is the highest source position applied (LSN×2 + streamed,
# as source_records'), so a duplicate or an older change is not published again; a deleted unit
# keeps its row for the same reason. Not personal data: a unit's registered particulars.
units = sa.Table(
    "units",
    metadata,
    sa.Column("unit_id", sa.String(64), primary_key=True),  # AAB001
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("credit_code", sa.String(18)),  # AAB003
    sa.Column("unit_name", sa.Text),  # AAB004
    sa.Column("unit_type", sa.String(2)),  # AAB019
    sa.Column("region_code", sa.String(6)),  # AAB301
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
