"""national — the provincial and national registry comparison's answers."""

from __future__ import annotations

from typing import Any

from canbao_contracts.debezium import decode_timestamp
from canbao_identity import records as r
from canbao_identity.adapters.values import region, text
from canbao_identity.records import FactDraft, SourceRecord

_INSURANCES = ("pension", "medical", "injury", "unemployment", "maternity")


def cross_region(row: dict[str, Any]) -> SourceRecord:
    facts: tuple[FactDraft, ...] = ()
    insurance, scope = text(row, "insurance"), text(row, "scope")
    if insurance in _INSURANCES and scope in ("province", "national"):
        reported = decode_timestamp(row.get("reported_at"), column="reported_at")
        facts = (
            FactDraft(
                "cross_region_enrolment",
                {
                    "insurance": insurance,
                    "scope": scope,
                    "region_code": region(row, "region"),
                    "state": "paying" if text(row, "status") == "1" else "suspended",
                    "receiving_benefit": text(row, "benefit") == "1",
                    "reported_at": None if reported is None else reported.isoformat(),
                },
            ),
        )
    return SourceRecord(
        "national",
        "cross_region",
        facts=facts,
        claims={r.DOCUMENT_TYPE: "01", r.ID_NUMBER: text(row, "aac002")},
    )
