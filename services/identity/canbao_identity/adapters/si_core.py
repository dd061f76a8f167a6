"""si_core — the social insurance core system (LD/T 92-2013 names, sources.md)."""

from __future__ import annotations

import re
from typing import Any

from canbao_contracts.codes import SourceInsuranceType, UnitType
from canbao_contracts.events.units import CREDIT_CODE_PATTERN, UNIT_NAME_MAX
from canbao_identity import records as r
from canbao_identity.adapters.values import compact_day, day, region, text
from canbao_identity.records import FactDraft, SourceRecord, UnitRecord

_STATE = {"1": "paying", "2": "suspended", "3": "terminated"}  # AAC008
_TYPES = {t.value: t for t in SourceInsuranceType}
_UNIT_TYPES = {t.value for t in UnitType}  # AAB019, domain.md §4
_CREDIT_CODE = re.compile(CREDIT_CODE_PATTERN)  # GB 32100-2015


def person_ref(aac001: str | None) -> str | None:
    return None if aac001 is None else f"si_core.ac01|aac001={aac001}"


def unit(row: dict[str, Any]) -> UnitRecord:
    """A unit is no person's record: published as it is on registry.units (units.py), never
    resolved. Its values as the contract takes them, None where the source's is not one."""
    code = (text(row, "aab003") or "").replace(" ", "").upper()
    name = text(row, "aab004")
    return UnitRecord(
        credit_code=code if _CREDIT_CODE.fullmatch(code) else None,
        # Text the registry's rules normalise (NFKC) may outgrow the column: cut, not dropped.
        unit_name=name[:UNIT_NAME_MAX] if name else None,
        unit_type=kind if (kind := text(row, "aab019")) in _UNIT_TYPES else None,
        region_code=region(row, "aab301"),
    )


def person(row: dict[str, Any]) -> SourceRecord:
    return SourceRecord(
        "si_core",
        "ac01",
        claims={
            r.DOCUMENT_TYPE: "01",
            r.ID_NUMBER: text(row, "aac002"),
            r.NAME: text(row, "aac003"),
            r.GENDER: text(row, "aac004"),
            r.BIRTH_DATE: compact_day(row, "aac006"),
            r.HOUSEHOLD_TYPE: text(row, "aac009"),
            r.HOUSEHOLD_PLACE: text(row, "aac010"),
            r.RESIDENCE_ADDRESS: text(row, "aae006"),
            r.PHONE: text(row, "aae005"),
            r.PERSONAL_IDENTITY: text(row, "aac012"),
            r.REGION: region(row, "aab301"),
        },
    )


def enrolment(row: dict[str, Any]) -> SourceRecord:
    kind = _TYPES.get(text(row, "aae140") or "")
    facts: tuple[FactDraft, ...] = ()
    if kind is not None and (state := _STATE.get(text(row, "aac008") or "")):
        facts = (
            FactDraft(
                "enrolment",
                {
                    "insurance": kind.insurance.value,
                    "scheme": kind.status_code.value,
                    "state": state,
                    "region_code": region(row, "aab301"),
                    "unit_id": text(row, "aab001"),
                    "first_enrolled_on": day(row, "aac030"),
                    "period_start": day(row, "aae030"),
                    "period_end": day(row, "aae031"),
                },
            ),
        )
    return SourceRecord("si_core", "ac02", facts=facts, link_ref=person_ref(text(row, "aac001")))


def benefit(row: dict[str, Any]) -> SourceRecord:
    kind = _TYPES.get(text(row, "aae140") or "")
    facts: tuple[FactDraft, ...] = ()
    if kind is not None and (state := text(row, "aae116")) in ("1", "2", "3"):
        facts = (
            FactDraft(
                "benefit",
                {
                    "insurance": kind.insurance.value,
                    "scheme": kind.status_code.value,
                    "state": state,
                    "region_code": region(row, "aab301"),
                    "period_start": day(row, "aae030"),
                    "period_end": day(row, "aae031"),
                },
            ),
        )
    return SourceRecord("si_core", "ac60", facts=facts, link_ref=person_ref(text(row, "aac001")))
