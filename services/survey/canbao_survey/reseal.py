"""`python -m canbao_survey.reseal`: the second step of a data-key rotation — every collection's
items still sealed under a retired key rewritten under `SURVEY_DATA_KEY`, while the service runs.
The procedure and what the output means: `canbao_platform.resealing`; in production,
deploy/README.md ("Rotating a data key")."""

from __future__ import annotations

from canbao_platform import resealing
from canbao_platform.resealing import SealedColumn
from canbao_survey.app import SERVICE_NAME
from canbao_survey.settings import SurveySettings
from canbao_survey.store import context_of
from canbao_survey.tables import collections

SEALED_COLUMNS = (
    SealedColumn(
        collections, "items_sealed", "key_id",
        lambda row: context_of(row["collection_id"]), ("collection_id",),
    ),
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    settings = SurveySettings()
    return resealing.main(
        SERVICE_NAME, settings.database_url, settings.sealer(), SEALED_COLUMNS, argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
