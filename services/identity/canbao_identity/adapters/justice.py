"""justice — people in custody."""

from __future__ import annotations

from typing import Any

from canbao_identity import records as r
from canbao_identity.adapters.values import day, region, text
from canbao_identity.records import FactDraft, SourceRecord


def inmate(row: dict[str, Any]) -> SourceRecord:
    fact = FactDraft(
        "custody",
        {
            "admitted_on": day(row, "rjrq"),
            "released_on": day(row, "cjrq"),
            "region_code": region(row, "jyxzqh"),
        },
    )
    return SourceRecord(
        "justice",
        "inmate",
        facts=(fact,),
        claims={r.DOCUMENT_TYPE: "01", r.ID_NUMBER: text(row, "sfzh"), r.NAME: text(row, "xm")},
    )
