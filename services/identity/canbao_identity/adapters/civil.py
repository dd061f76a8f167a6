"""civil — civil affairs: cremation records (deaths) and minimum-living-allowance recipients."""

from __future__ import annotations

from typing import Any

from canbao_identity import records as r
from canbao_identity.adapters.values import day, text
from canbao_identity.records import FactDraft, SourceRecord


def cremation(row: dict[str, Any]) -> SourceRecord:
    died = day(row, "swrq")
    return SourceRecord(
        "civil",
        "cremation",
        facts=(FactDraft("death", {"died_on": died}),),
        claims={
            r.DOCUMENT_TYPE: "01",
            r.ID_NUMBER: text(row, "sfzh"),
            r.NAME: text(row, "xm"),
            r.DEATH_DATE: died,
        },
    )


def dibao(row: dict[str, Any]) -> SourceRecord:
    """No fact kind of the contracts covers the allowance yet: an identity claim only."""
    return SourceRecord(
        "civil",
        "dibao",
        claims={r.DOCUMENT_TYPE: "01", r.ID_NUMBER: text(row, "sfzh"), r.NAME: text(row, "xm")},
    )
