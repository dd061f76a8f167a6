"""hukou — public security household register (pinyin-initial names)."""

from __future__ import annotations

from typing import Any

from canbao_contracts.codes import HouseholdStatus
from canbao_identity import records as r
from canbao_identity.adapters.values import day, region, text
from canbao_identity.records import FactDraft, SourceRecord

_STATUSES = {s.value for s in HouseholdStatus}


def person(row: dict[str, Any]) -> SourceRecord:
    status = text(row, "ryzt") or "0"
    cancelled = day(row, "zxrq")
    facts: tuple[FactDraft, ...] = ()
    if status in _STATUSES:
        facts = (
            FactDraft(
                "household_status",
                {
                    "status": status,
                    "region_code": region(row, "hjdz_xzqh"),
                    "cancelled_on": cancelled,
                },
            ),
        )
    return SourceRecord(
        "hukou",
        "person",
        facts=facts,
        claims={
            r.DOCUMENT_TYPE: "01",
            r.ID_NUMBER: text(row, "sfzh"),
            r.NAME: text(row, "xm"),
            r.GENDER: text(row, "xb"),
            r.BIRTH_DATE: day(row, "csrq"),
            r.HOUSEHOLD_REGION: region(row, "hjdz_xzqh"),
            r.HOUSEHOLD_PLACE: text(row, "hjdz"),
            r.RESIDENCE_ADDRESS: text(row, "hjdz"),
            r.HOUSEHOLD_STATUS: status,
            r.DEATH_DATE: cancelled if status == "1" else None,
        },
    )
