"""card — social security card holders: a phone source."""

from __future__ import annotations

from typing import Any

from canbao_identity import records as r
from canbao_identity.adapters.values import text
from canbao_identity.records import SourceRecord


def card_holder(row: dict[str, Any]) -> SourceRecord:
    return SourceRecord(
        "card",
        "card_holder",
        claims={
            r.DOCUMENT_TYPE: "01",
            r.ID_NUMBER: text(row, "aac002"),
            r.NAME: text(row, "aac003"),
            r.PHONE: text(row, "aae005"),
        },
    )
