"""medical — the medical security bureau (national medical insurance platform names)."""

from __future__ import annotations

from typing import Any

from canbao_contracts.codes import SourceInsuranceType
from canbao_identity import records as r
from canbao_identity.adapters.values import day, region, text
from canbao_identity.records import FactDraft, SourceRecord

_STATE = {"1": "paying", "2": "suspended", "4": "terminated"}  # psn_insu_stas
_SCHEMES = {t.value: t for t in SourceInsuranceType if t.value in ("310", "360", "390")}


def insured(row: dict[str, Any]) -> SourceRecord:
    kind, state = (
        _SCHEMES.get(text(row, "insutype") or ""),
        _STATE.get(text(row, "psn_insu_stas") or ""),
    )
    facts: tuple[FactDraft, ...] = ()
    if kind is not None and state is not None:
        facts = (
            FactDraft(
                "enrolment",
                {
                    "insurance": kind.insurance.value,
                    "scheme": kind.status_code.value,
                    "state": state,
                    "region_code": region(row, "insu_admdvs"),
                    "unit_id": text(row, "emp_no"),
                    "period_start": day(row, "begndate"),
                    "period_end": day(row, "enddate"),
                },
            ),
        )
    return SourceRecord(
        "medical",
        "insured",
        facts=facts,
        claims={
            r.DOCUMENT_TYPE: text(row, "psn_cert_type") or "01",
            r.ID_NUMBER: text(row, "certno"),
            r.NAME: text(row, "psn_name"),
            r.GENDER: text(row, "gend"),
            r.BIRTH_DATE: day(row, "brdy"),
            r.REGION: region(row, "insu_admdvs"),
        },
    )
