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
    """A minimum-living-allowance recipient (最低生活保障): an identity claim only, for now.

    No fact kind of the contracts fits: BenefitFact is a social insurance benefit (an insurance
    and a scheme, domain.md §4), and no status rule of domain.md §5 uses the allowance. Stating
    it needs a new kind in canbao_contracts (fact_kinds.py, the Fact union) — programme,
    region_code (xzqh), started_on (ksrq), ended_on (jsrq) — with matching accepting it; then
    it is a FactDraft here."""
    return SourceRecord(
        "civil",
        "dibao",
        claims={r.DOCUMENT_TYPE: "01", r.ID_NUMBER: text(row, "sfzh"), r.NAME: text(row, "xm")},
    )
