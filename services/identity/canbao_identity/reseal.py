"""`python -m canbao_identity.reseal`: the second step of a data-key rotation — every golden
record, every source record (staged or resolved) and every row of the change history still
sealed under a retired key rewritten under `IDENTITY_DATA_KEY`, while the service runs. The
procedure and what the output means: `canbao_platform.resealing`; in production,
deploy/README.md ("Rotating a data key")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canbao_identity.app import SERVICE_NAME, protector_from
from canbao_identity.protection import change_context, person_context, record_context
from canbao_identity.settings import IdentitySettings
from canbao_identity.tables import person_changes, persons, source_records, staged_changes
from canbao_platform import resealing
from canbao_platform.resealing import SealedColumn


def _record(row: Mapping[str, Any]) -> str:
    return record_context(row["source_table"], row["record_key"])


RECORD = ("source_table", "record_key")
SEALED_COLUMNS = (
    SealedColumn(
        persons, "golden_ciphertext", "key_id",
        lambda row: person_context(row["person_id"]), ("person_id",),
    ),
    SealedColumn(source_records, "claims_ciphertext", "key_id", _record, RECORD),
    # Transient: the builder deletes what it resolved, so rows may vanish under the job (skipped).
    SealedColumn(staged_changes, "claims_ciphertext", "key_id", _record, RECORD),
    # Insert-only but for this: its trigger lets a reseal rewrite values_sealed and key_id.
    SealedColumn(
        person_changes, "values_sealed", "key_id",
        lambda row: change_context(row["person_id"], row["change_id"]), ("person_id",),
    ),
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    settings = IdentitySettings()
    sealer = protector_from(settings).sealer
    return resealing.main(SERVICE_NAME, settings.database_url, sealer, SEALED_COLUMNS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
