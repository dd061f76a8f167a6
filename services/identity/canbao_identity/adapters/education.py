"""education — students."""

from __future__ import annotations

from typing import Any

from canbao_identity import records as r
from canbao_identity.adapters.values import day, region, text
from canbao_identity.records import FactDraft, SourceRecord


def student(row: dict[str, Any]) -> SourceRecord:
    facts: tuple[FactDraft, ...] = ()
    if (state := text(row, "xjzt")) in ("1", "2", "3"):
        level = text(row, "xd")
        facts = (
            FactDraft(
                "study",
                {
                    "level": level if level in ("1", "2", "3", "4", "5") else None,
                    "state": state,
                    "region_code": region(row, "xzqh"),
                    "enrolled_on": day(row, "rxrq"),
                    "graduated_on": day(row, "byrq"),
                },
            ),
        )
    return SourceRecord(
        "education",
        "student",
        facts=facts,
        claims={r.DOCUMENT_TYPE: "01", r.ID_NUMBER: text(row, "sfzjh"), r.NAME: text(row, "xm")},
    )
