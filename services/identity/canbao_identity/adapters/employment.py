"""employment — employment registrations."""

from __future__ import annotations

from typing import Any

from canbao_identity import records as r
from canbao_identity.adapters.values import day, region, text
from canbao_identity.records import FactDraft, SourceRecord


def job_registration(row: dict[str, Any]) -> SourceRecord:
    unit_name = text(row, "aab004")
    fact = FactDraft(
        "employment",
        {
            "unit_id": text(row, "aab001"),
            "unit_name": unit_name[:100] if unit_name else None,
            "region_code": region(row, "aab301"),
            "started_on": day(row, "start_date"),
            "ended_on": day(row, "end_date"),
        },
    )
    return SourceRecord(
        "employment",
        "job_registration",
        facts=(fact,),
        claims={
            r.DOCUMENT_TYPE: "01",
            r.ID_NUMBER: text(row, "aac002"),
            r.NAME: text(row, "aac003"),
            r.UNIT_NAME: unit_name,
        },
    )
