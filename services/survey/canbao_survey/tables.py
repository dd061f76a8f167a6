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
)
