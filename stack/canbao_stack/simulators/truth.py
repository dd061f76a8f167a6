"""From a generated life to the canonical facts the registry should derive from the sources
(the input of expected.py), and the gaps identity should report.

The gap rules are our convention for the simulators, to be shared with identity:
* a required item (domain.md §4 Y column, plus the phone: RegistrationItem.required) is
  *missing* when no linked source record carries a value for it: household place from
  hukou.person or si_core.ac01.aac010; residence address from si_core.ac01.aae006, else the
  household register's address hukou.person.hjdz (a person lives at the household address
  unless a business system says otherwise); phone from si_core.ac01.aae005 or
  card.card_holder.aae005; a placeholder such as "不详" is no value. Name, gender, birth date and
  the number (or the other document) always come with the record;
* an item is *inaccurate* when a copy's number has a wrong check character, when a copy's name
  differs from the household register, or when the phone is malformed (not a mobile number
  1[3-9] + 9 digits, nor a landline 0 + 2-3 digit area code + 7-8 digits).
"""

from __future__ import annotations

import functools
import re
from datetime import date
from typing import Any, Final

from canbao_contracts.codes import (
    HouseholdStatus,
    Insurance,
    RegistrationItem,
    SourceInsuranceType,
    StatusCode,
)
from canbao_contracts.id_numbers import validate
from canbao_stack.simulators.dirty import AC01, CARD
from canbao_stack.simulators.expected import (
    BenefitFact,
    CrossRegionFact,
    EnrolmentFact,
    Facts,
    State,
)
from canbao_stack.simulators.model import WORLD_DATE, Person

VALID_PHONE: Final = re.compile(r"1[3-9]\d{9}|0\d{2,3}-?\d{7,8}")
_SCHEMES: Final = {t.value: (t.insurance, t.status_code) for t in SourceInsuranceType}
_STATES: Final[dict[str, State]] = {"1": "paying", "2": "suspended", "3": "terminated"}
_HOUSEHOLD_STATUS: Final = {s.value: s for s in HouseholdStatus}
_INSURANCE: Final = {i.value: i for i in Insurance}
_STATUS_CODE: Final = {c.value: c for c in StatusCode}


def facts(person: Person, missing: tuple[str, ...], inaccurate: tuple[str, ...]) -> Facts:
    """What the registry knows about the person once every source is read."""
    return Facts(
        birth_date=person.birth,
        household_registered=person.local,
        household_status=_HOUSEHOLD_STATUS[person.household_status] if person.local else None,
        death_recorded=person.cremated,
        in_custody=person.custody is not None and person.custody[1] is None,
        employment_registered=any(job.until is None for job in person.jobs),
        studying=person.study is not None and person.study.status == "1",
        enrolments=tuple(
            [
                _enrolment_fact(e.kind, e.region, e.state, e.unit is not None)
                for e in person.enrolments
            ]
        ),
        cross_region=tuple(
            [
                CrossRegionFact(
                    _INSURANCE[c.insurance],
                    "province" if c.scope == "province" else "national",
                    c.region,
                    "paying" if c.status == "1" else "suspended",
                    c.benefit == "1",
                )
                for c in person.cross_region
            ]
        ),
        benefits=tuple(
            [BenefitFact(_SCHEMES[b.kind][0], b.region, b.status == "1") for b in person.benefits]
        ),
        missing=missing,
        inaccurate=inaccurate,
        identity_conflict=person.phantom is not None,
        permit_valid_until=_valid_until(person),
    )


def _valid_until(person: Person) -> date | None:
    if person.permit is None or person.permit[0] != "1":
        return None
    return person.permit[2]


@functools.cache
def _enrolment_fact(kind: str, region: str, state: str, by_unit: bool) -> EnrolmentFact:
    """The fact of an enrolment (domain.md §7 maps the source type to its scheme's code); the
    same few thousand recur, so each is built once."""
    return EnrolmentFact(*_SCHEMES[kind], region, _STATES[state], by_unit)


def gaps(person: Person) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The missing and the inaccurate items, as the popup lists them (api.md)."""
    in_core = person.in_core
    has_phone = (in_core or person.card is not None) and person.phone is not None
    missing = []
    if not (person.local or in_core):
        missing.append(_MISSING[RegistrationItem.HOUSEHOLD_PLACE])
    # A residence permit gives the address where its holder lives (jzdz).
    if not (person.local or (in_core and person.address_copy == "") or person.permit):
        missing.append(_MISSING[RegistrationItem.RESIDENCE_ADDRESS])
    if not has_phone:
        missing.append(_MISSING[RegistrationItem.PHONE])
    inaccurate = []
    for table, written in person.id_copies.items():
        for defect in validate(written, today=WORLD_DATE):  # a valid copy is the same person
            inaccurate.append(_item(RegistrationItem.ID_NUMBER, table, defect.code, written))
    for table, name in person.name_copies.items():
        inaccurate.append(_item(RegistrationItem.NAME, table, "name_mismatch", name))
    if has_phone and not VALID_PHONE.fullmatch(person.phone or ""):
        table = AC01 if in_core else CARD
        inaccurate.append(_item(RegistrationItem.PHONE, table, "malformed", person.phone or ""))
    return missing, inaccurate


# Shared, never modified: they are only serialised.
_MISSING: Final = {item: {"item": item.value, "code": item.code} for item in RegistrationItem}


def _item(item: RegistrationItem, table: str, defect: str, value: str) -> dict[str, str]:
    return {
        "item": item.value,
        "code": item.code,
        "source": table,
        "defect": defect,
        "value": value,
    }


def facts_to_json(f: Facts) -> list[Any]:
    """The facts as stored with the expected outcome, to recompute it for another day: a JSON
    array of the fields of expected.Facts in their order (the birth date in ISO form; each
    enrolment, report and benefit an array of its fields)."""
    until = f.permit_valid_until
    return [f.birth_date.isoformat(), *f[1:-1], None if until is None else until.isoformat()]


def facts_from_json(data: list[Any]) -> Facts:
    (
        birth,
        registered,
        status,
        death,
        custody,
        employment,
        studying,
        enrolments,
        elsewhere,
        benefits,
        missing,
        inaccurate,
        conflict,
        *permit,
    ) = data
    until = permit[0] if permit else None  # stored before residence permits: none
    return Facts(
        birth_date=date.fromisoformat(birth),
        household_registered=registered,
        household_status=_HOUSEHOLD_STATUS[status] if status is not None else None,
        death_recorded=death,
        in_custody=custody,
        employment_registered=employment,
        studying=studying,
        enrolments=tuple(
            EnrolmentFact(_INSURANCE[i], _STATUS_CODE[s], r, st, u) for i, s, r, st, u in enrolments
        ),
        cross_region=tuple(
            CrossRegionFact(_INSURANCE[i], sc, r, st, b) for i, sc, r, st, b in elsewhere
        ),
        benefits=tuple(BenefitFact(_INSURANCE[i], r, p) for i, r, p in benefits),
        missing=tuple(missing),
        inaccurate=tuple(inaccurate),
        identity_conflict=conflict,
        permit_valid_until=None if until is None else date.fromisoformat(until),
    )
