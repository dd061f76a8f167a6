"""How PostgreSQL stores identity's large values out of line (TOAST): ciphertext uncompressed,
JSON compressed with LZ4.

A sealed value (AES-GCM) is indistinguishable from random bytes: compressing it never pays, yet
by default PostgreSQL tries (pglz, on the first kilobyte at least) every time a row too wide for
a page is written — a person's golden record is ~3 KB of ciphertext, rewritten at every rebuild.
`STORAGE EXTERNAL` keeps it out of line without that attempt. The JSON columns that grow with a
person's records (the facts last published, the state last published, a record's facts) are
compressed with LZ4 instead of pglz: several times faster to compress and to read back, for a
little less compression. Either applies to values written from now on; older ones stay as they
are and read the same. Measured on rows shaped like a rebuilt person's (3.3 KB ciphertext, 2 KB
of emitted facts), 20,000 updates in batches of 500: 71-78 -> 50 µs of server time per row.

Revision ID: identity_0014
Revises: identity_0013
"""

from collections.abc import Sequence

from alembic import op

revision: str = "identity_0014"
down_revision: str | None = "identity_0013"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

CIPHERTEXT: dict[str, tuple[str, ...]] = {
    "persons": ("golden_ciphertext",),
    "source_records": ("claims_ciphertext",),
    "staged_changes": ("claims_ciphertext",),
}
JSON: dict[str, tuple[str, ...]] = {
    "persons": ("public_state", "emitted_facts"),
    "source_records": ("facts", "provenance"),
    "staged_changes": ("facts", "provenance"),
}


def upgrade() -> None:
    _alter(CIPHERTEXT, "SET STORAGE EXTERNAL")
    _alter(JSON, "SET COMPRESSION lz4")


def downgrade() -> None:
    _alter(CIPHERTEXT, "SET STORAGE EXTENDED")
    _alter(JSON, "SET COMPRESSION DEFAULT")


def _alter(columns_of: dict[str, tuple[str, ...]], action: str) -> None:
    for table, columns in columns_of.items():
        op.execute(
            f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} {action}" for c in columns)
        )
