"""The insurance a situation brings: enrolments in the five insurances with their schemes
(domain.md §7), benefits, and the enrolments other regions report. Each helper records one fact
on the person; the source keys stay unique (one ac02 row per record, type and region; one
medical row per record and type).
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from canbao_stack.simulators.divisions import COUNTIES, DESTINATIONS
from canbao_stack.simulators.model import (
    WORLD_DATE,
    Benefit,
    CrossRegion,
    Enrolment,
    Person,
    Unit,
)

_EARLIEST = date(1995, 1, 1)  # the core system's history starts here
_DESTINATION_CODES = [code for code, weight in DESTINATIONS for _ in range(weight)]


def enrol(
    person: Person,
    kind: str,
    region: str,
    state: str,
    since: date,
    unit: Unit | None = None,
    record: int = 0,
) -> Enrolment | None:
    """An enrolment of insurance type `kind` (AAE140 / insutype); None if the person's record
    already has one of that type there (the sources' primary keys allow only one)."""
    medical = kind in ("310", "360", "390")
    for e in person.enrolments:
        if e.record == record and e.kind == kind and (medical or e.region == region):
            return None
    until = None if state == "1" else _between(since, WORLD_DATE, person.index)
    enrolment = Enrolment(kind, region, state, since, unit, until, record, medical)
    person.enrolments.append(enrolment)
    return enrolment


def unit_enrolments(
    rng: random.Random, person: Person, unit: Unit, since: date, compliance: str
) -> None:
    """What a unit does for its employee. `compliance`: full (all five), basic (pension, medical
    and work injury: no unemployment or maternity), injury (work injury only: construction
    sites), none (not enrolled at all), arrears (everything suspended: the unit stopped paying)."""
    region = unit.county.code
    pension = "120" if unit.public else "110"
    medical = "360" if unit.public and rng.random() < 0.05 else "310"
    state = "2" if compliance == "arrears" else "1"
    kinds = {
        "full": (pension, "210", "410", "510", medical),
        "arrears": (pension, "210", "410", "510", medical),
        "basic": (pension, "410", medical),
        "injury": ("410",),
        "none": (),
    }[compliance]
    for kind in kinds:
        enrol(person, kind, region, state, since, unit)


def resident_pension(person: Person, region: str, since: date, state: str = "1") -> None:
    enrol(person, "170", region, state, since)


def resident_medical(person: Person, region: str, since: date, state: str = "1") -> None:
    enrol(person, "390", region, state, since)


def pension_benefit(person: Person, kind: str, region: str, since: date) -> None:
    """A retiree: the enrolment stays in force (our convention: LD/T 92's AAC008 1 covers people
    receiving benefits) and the benefit is paid."""
    enrol(person, kind, region, "1", max(_EARLIEST, since - timedelta(days=365 * 15)))
    person.benefits.append(Benefit(kind, region, "1", since))


def elsewhere(
    rng: random.Random, person: Person, scope: str, insurances: dict[str, float], state: str
) -> None:
    """Enrolments the provincial (scope province) or national comparison reports, one region."""
    if scope == "national":
        region = _DESTINATION_CODES[int(rng.random() * len(_DESTINATION_CODES))]
    else:
        region = other_county(rng, person.region)
    for insurance, chance in insurances.items():
        if rng.random() < chance:
            person.cross_region.append(CrossRegion(insurance, scope, region, state))


def other_county(rng: random.Random, not_this: str) -> str:
    """A county of the province other than `not_this`."""
    while True:
        code = COUNTIES[int(rng.random() * len(COUNTIES))].code
        if code != not_this:
            return code


def since(rng: random.Random, person: Person, from_age: int) -> date:
    """A start date between the person's `from_age` birthday (or 1995) and WORLD_DATE."""
    start = max(_EARLIEST, _add_years(person.birth, from_age))
    if start >= WORLD_DATE:
        return WORLD_DATE
    return start + timedelta(days=int(rng.random() * (WORLD_DATE - start).days))


def _between(start: date, end: date, salt: int) -> date:
    """A deterministic date in [start, end] (the end of a suspended or terminated period)."""
    days = max(0, (end - start).days)
    return start + timedelta(days=(salt * 7919) % (days + 1))


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)
