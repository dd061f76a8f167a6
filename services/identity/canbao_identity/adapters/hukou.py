"""hukou — public security household register and residence permits (pinyin-initial names)."""

from __future__ import annotations

from typing import Any

from canbao_contracts.codes import HouseholdStatus, HouseholdType, ResidencePermitStatus
from canbao_identity import records as r
from canbao_identity.adapters.values import day, region, text
from canbao_identity.records import FactDraft, SourceRecord

_STATUSES = {s.value for s in HouseholdStatus}
_PERMIT_STATUSES = {s.value for s in ResidencePermitStatus}


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
            r.HOUSEHOLD_ADDRESS: text(row, "hjdz"),
            r.HOUSEHOLD_NUMBER: text(row, "hh"),  # 户号
            r.HOUSEHOLD_RELATION: text(row, "yhzgx"),  # 01 head, 02 spouse, 10 child…
            r.HOUSEHOLD_STATUS: status,
            r.DEATH_DATE: cancelled if status == "1" else None,
        },
    )


def resident_permit(row: dict[str, Any]) -> SourceRecord:
    """A residence permit (居住证): someone whose household is registered elsewhere (hjdz_xzqh)
    living here (jzdz_xzqh), one of domain.md §1's non-local long-term residents. The person's
    region is where they live; their household type is non-local (AAC009 52: the permit does not
    say urban or rural). Not the household register: they are not household_registered."""
    status = text(row, "zt")
    facts: tuple[FactDraft, ...] = ()
    if status in _PERMIT_STATUSES:
        facts = (
            FactDraft(
                "residence_permit",
                {
                    "status": status,
                    "region_code": region(row, "jzdz_xzqh"),
                    "issued_on": day(row, "qfrq"),
                    "valid_until": day(row, "yxqz"),
                },
            ),
        )
    return SourceRecord(
        "hukou",
        "resident_permit",
        facts=facts,
        claims={
            r.DOCUMENT_TYPE: "01",
            r.ID_NUMBER: text(row, "sfzh"),
            r.NAME: text(row, "xm"),
            r.GENDER: text(row, "xb"),
            r.BIRTH_DATE: day(row, "csrq"),
            r.HOUSEHOLD_REGION: region(row, "hjdz_xzqh"),
            r.HOUSEHOLD_TYPE: HouseholdType.NON_LOCAL_RESIDENT.value,
            r.RESIDENCE_ADDRESS: text(row, "jzdz"),
            r.REGION: region(row, "jzdz_xzqh"),
        },
    )
