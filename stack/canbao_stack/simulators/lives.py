"""What each person does, and the enrolments, benefits, schooling, employment, custody and deaths
that follow: the facts of a life from which both the source rows and the expected outcome are
derived. Shares are rough figures for Guizhou (many rural migrant workers insured in Guangdong
and Zhejiang, near-universal resident medical insurance, resident pensions for rural elderly).

Situations: preschool, pupil, student, unit_employee, flexible, farmer, unemployed, migrant_out
(insured in another province), in_province (insured in another city of the province), retired,
elderly (no pension), soldier, abroad, prisoner, released, non_local_worker,
non_local_resident (uninsured, known from a residence permit), foreigner.
"""

from __future__ import annotations

from datetime import date, timedelta

from canbao_stack.simulators import enrol as e
from canbao_stack.simulators.divisions import CAPITAL, COUNTIES, COUNTY_BY_CODE
from canbao_stack.simulators.expected import age
from canbao_stack.simulators.households import Draw
from canbao_stack.simulators.model import WORLD_DATE, Benefit, Job, Person, Study
from canbao_stack.simulators.numbers import mobile
from canbao_stack.simulators.rates import Rates

_COMPLIANCE = (("full", 0.78), ("basic", 0.08), ("injury", 0.05), ("none", 0.06), ("arrears", 0.03))
_UNIVERSITIES = ("贵州大学", "贵州师范大学", "贵州医科大学", "贵州财经大学", "贵州民族大学",
                 "遵义医科大学", "贵州理工学院", "凯里学院", "铜仁学院", "安顺学院")  # fmt: skip
# Of the non-local people generated, those living here uninsured on a residence permit.
_UNINSURED_RESIDENTS = 0.3
_CARDS_FROM = date(2010, 1, 1)  # the second-generation social security card
_CROSS_INSURANCES = {"pension": 1.0, "medical": 0.9, "injury": 0.8, "unemployment": 0.55,
                     "maternity": 0.5}  # fmt: skip


def live(d: Draw, person: Person, rates: Rates) -> None:
    """Give `person` a situation and everything that comes with it."""
    rng = d.rng
    years = age(person.birth, WORLD_DATE)
    roll = rng.random()
    retirement = 60 if person.male or not person.urban else 50 if roll < 0.4 else 55
    if person.document is not None:
        _foreigner(d, person)
    elif person.hometown is not None:
        if rng.random() < _UNINSURED_RESIDENTS:
            _non_local_resident(d, person)
        else:
            _work(d, person, years, rates, non_local=True)
        _permit(d, person)
    elif years < 6:
        person.situation = "preschool"
        _maybe_resident_medical(d, person, 0.9)
    elif years < 16 or (years < 19 and roll < 0.72) or (19 <= years < 23 and roll < 0.38):
        _school(d, person, years)
    elif person.male and 18 <= years < 25 and roll > 0.97:
        person.situation, person.identity_code, person.household_status = "soldier", "37", "3"
    elif roll > 0.9985:
        person.situation, person.household_status = "abroad", "4"
        e.resident_pension(person, person.region, e.since(rng, person, 16), "3")
    elif years < 60 and roll > (0.996 if person.male else 0.998):
        _custody(d, person, released=roll > 0.9975)
    elif years >= retirement:
        _old_age(d, person, rates)
    else:
        _work(d, person, years, rates, non_local=False)
    if person.document is None and rng.random() < _death_chance(years):
        _die(d, person, rates)
    if person.document is None:
        _card_and_phone(d, person, years)
    person.settle()


def _non_local_resident(d: Draw, person: Person) -> None:
    """A migrant from another province living here uninsured (public security's 外来常住人员):
    the registry knows them only from their residence permit. Some work for a unit that has
    not enrolled them (an employment registration: 92), the others on their own (91 pension
    and medical)."""
    rng = d.rng
    person.situation = "non_local_resident"
    if rng.random() < 0.3:
        unit = d.units.pick(rng, COUNTY_BY_CODE[person.region])
        person.identity_code = "24"
        person.jobs.append(Job(unit, e.since(rng, person, 18)))
    else:
        person.identity_code = "51" if rng.random() < 0.5 else "54"


def _permit(d: Draw, person: Person) -> None:
    """Every uninsured non-local resident holds a residence permit (else the registry would not
    know them), half the insured ones do; some permits have expired (2) or been cancelled (3)."""
    rng = d.rng
    if person.situation != "non_local_resident" and rng.random() < 0.5:
        return
    issued = WORLD_DATE - timedelta(days=30 + int(rng.random() * 2500))
    roll = rng.random()
    if roll < 0.8:
        status, until = "1", WORLD_DATE + timedelta(days=365 + int(rng.random() * 1500))
    else:
        status = "2" if roll < 0.92 else "3"
        until = min(issued + timedelta(days=365 * 3), WORLD_DATE - timedelta(days=1))
    person.permit = (status, issued, max(issued, until))


def _school(d: Draw, person: Person, years: int) -> None:
    rng = d.rng
    person.situation, person.identity_code = "pupil" if years < 16 else "student", "31"
    level = "1" if years < 12 else "2" if years < 15 else "3" if years < 19 else "5"
    if level == "3" and rng.random() < 0.35:
        level = "4"  # vocational
    county = person.household.county if person.household else None
    if level == "5":
        school = _UNIVERSITIES[int(rng.random() * len(_UNIVERSITIES))]
        region = "520111" if rng.random() < 0.6 else person.region  # the Huaxi university town
    else:
        kind = {"1": "小学", "2": "中学", "3": "中学", "4": "职业技术学校"}[level]
        school = f"{county.name if county else ''}第{1 + int(rng.random() * 6)}{kind}"
        region = person.region
    if years < 16 and rng.random() < 0.02:
        person.situation = "child"  # not at school: still under 16
    else:
        start = e.since(rng, person, {"1": 6, "2": 12, "3": 15, "4": 15, "5": 18}[level])
        person.study = Study(school, level, "1", region, start)
    _maybe_resident_medical(d, person, 0.92)


def _work(d: Draw, person: Person, years: int, rates: Rates, *, non_local: bool) -> None:
    rng = d.rng
    roll = rng.random()
    urban = person.urban or non_local
    share = (0.55, 0.70, 0.82, 0.90, 0.93) if urban else (0.12, 0.20, 0.27, 0.53, 0.57)
    if non_local:
        share = (0.82, 1.0, 1.0, 1.0, 1.0)  # unit employees and flexible workers
    if roll < share[0]:
        _unit_job(d, person, rates, non_local=non_local)
    elif roll < share[1]:
        person.situation, person.identity_code = "flexible", "51" if rng.random() < 0.5 else "54"
        since = e.since(rng, person, 18)
        if rng.random() < 0.55 or non_local:  # insured here, or the registry would not know him
            e.enrol(person, "110", person.region, "2" if rng.random() < 0.1 else "1", since)
        elif rng.random() < 0.55 and not non_local:
            e.resident_pension(person, person.region, since, "2" if rng.random() < 0.08 else "1")
        if rng.random() < 0.12 or non_local:
            e.enrol(person, "310", person.region, "1", since)
        else:
            _maybe_resident_medical(d, person, 0.85)
    elif roll < share[2]:
        person.situation, person.identity_code = "unemployed", "70"
        if rng.random() < 0.45:
            e.resident_pension(person, person.region, e.since(rng, person, 16))
        elif rng.random() < 0.15:
            e.enrol(person, "110", person.region, "2", e.since(rng, person, 18))
        if rng.random() < 0.06:  # receiving unemployment benefits after losing a job
            since = e.since(rng, person, 20)
            e.enrol(person, "210", person.region, "3", since)
            person.benefits.append(Benefit("210", person.region, "1", since))
        _maybe_resident_medical(d, person, 0.87)
    elif roll < share[3]:
        person.situation, person.identity_code = "migrant_out", "24"
        state = "2" if rng.random() < 0.1 else "1"
        e.elsewhere(rng, person, "national", _CROSS_INSURANCES, state)
        _maybe_resident_medical(d, person, 0.35)
        if rng.random() < 0.08:
            e.resident_pension(person, person.region, e.since(rng, person, 16))
    elif roll < share[4]:
        person.situation, person.identity_code = "in_province", "24"
        e.elsewhere(rng, person, "province", _CROSS_INSURANCES, "1")
        _maybe_resident_medical(d, person, 0.1)
    else:
        person.situation, person.identity_code = "farmer", "27"
        since = e.since(rng, person, 16)
        if rng.random() < 0.86:
            e.resident_pension(person, person.region, since, "2" if rng.random() < 0.05 else "1")
        if person.household and person.household.county.urban_share > 0.5 and rng.random() < 0.08:
            e.enrol(person, "140", person.region, "1", since)  # land expropriated
        _maybe_resident_medical(d, person, 0.94)
    if 22 <= years < 31 and person.situation != "migrant_out" and rng.random() < 0.3:
        start = e.since(rng, person, 18)
        ended = min(WORLD_DATE - timedelta(days=30), start + timedelta(days=365 * 3))
        school = _UNIVERSITIES[int(rng.random() * len(_UNIVERSITIES))]
        person.study = Study(school, "5", "2", "520111", start, max(start, ended))
    resident_medical = any(x.kind == "390" and x.state == "1" for x in person.enrolments)
    if resident_medical and rng.random() < rates.duplicate_medical_region:
        region = e.other_county(rng, person.region)
        if e.enrol(person, "390", region, "1", e.since(rng, person, 16), record=1):
            person.traits.append("duplicate_medical_region")


def _unit_job(d: Draw, person: Person, rates: Rates, *, non_local: bool) -> None:
    rng = d.rng
    person.situation = "non_local_worker" if non_local else "unit_employee"
    county = person.household.county if person.household else None
    if county is None or rng.random() < 0.12:
        county = CAPITAL[int(rng.random() * len(CAPITAL))]  # commuting to Guiyang
    unit = d.units.pick(rng, county)
    if non_local:
        person.region = unit.county.code  # filed where insured
    person.identity_code = {"30": "11", "50": "13", "55": "13", "56": "13", "57": "13"}.get(
        unit.kind, "24" if rng.random() < 0.6 else "17"
    )
    compliance = _pick(_COMPLIANCE, rng.random())
    if non_local and compliance == "none":
        compliance = "basic"  # insured here, or the registry would not know him
    since = e.since(rng, person, 18)
    e.unit_enrolments(rng, person, unit, since, compliance)
    if compliance in ("none", "arrears") or rng.random() < 0.9:
        person.jobs.append(Job(unit, since))
    if rng.random() < 0.15:  # an earlier job, ended
        earlier = d.units.pick(rng, COUNTIES[int(rng.random() * len(COUNTIES))])
        start = e.since(rng, person, 18)
        person.jobs.insert(0, Job(earlier, min(start, since), since))
        if earlier.county.code != unit.county.code:
            e.enrol(person, "110", earlier.county.code, "3", min(start, since), earlier)
    if non_local and rng.random() < 0.1:  # kept the resident medical of the hometown
        e.elsewhere(rng, person, "national", {"medical": 1.0}, "1")
    employee_pension = any(x.kind == "110" and x.state == "1" for x in person.enrolments)
    if employee_pension and not non_local and rng.random() < rates.duplicate_pension:
        e.resident_pension(person, person.region, e.since(rng, person, 16))
        person.traits.append("duplicate_pension")
    if employee_pension and rng.random() < rates.duplicate_pension_region:
        other = d.units.pick(rng, COUNTIES[int(rng.random() * len(COUNTIES))])
        if other.county.code != unit.county.code:
            e.enrol(person, "110", other.county.code, "1", e.since(rng, person, 18), other, 1)
            person.traits.append("duplicate_pension_region")
    employee_medical = any(x.kind == "310" and x.state == "1" for x in person.enrolments)
    if employee_medical and rng.random() < rates.duplicate_medical:
        e.resident_medical(person, person.region, e.since(rng, person, 16))
        person.traits.append("duplicate_medical")


def _pick(shares: tuple[tuple[str, float], ...], roll: float) -> str:
    """The choice whose share `roll` (uniform in [0, 1)) falls into."""
    for choice, share in shares:
        if roll < share:
            return choice
        roll -= share
    return shares[-1][0]


def _old_age(d: Draw, person: Person, rates: Rates) -> None:
    rng = d.rng
    roll = rng.random()
    pensioned = 0.82 if person.urban else 0.05
    resident = pensioned + (0.12 if person.urban else 0.83)
    retired_on = e.since(rng, person, 60 if person.male else 55)
    if roll < pensioned:
        person.situation, person.identity_code = "retired", "80"
        kind = "120" if rng.random() < 0.2 else "110"
        e.pension_benefit(person, kind, person.region, retired_on)
        e.enrol(person, "310", person.region, "1", retired_on)
        if rng.random() < rates.duplicate_benefits:
            e.pension_benefit(person, "170", person.region, retired_on)
            person.traits.append("duplicate_benefits")
    elif roll < resident:
        person.situation, person.identity_code = "retired", "80"
        kind = "140" if person.region in ("520111", "520113") and rng.random() < 0.1 else "170"
        e.pension_benefit(person, kind, person.region, retired_on)
        if rng.random() < rates.duplicate_benefits:  # a pension from Guangdong as well
            e.elsewhere(rng, person, "national", {"pension": 1.0}, "1")
            person.cross_region[-1].benefit = "1"
            person.traits.append("duplicate_benefits")
        _maybe_resident_medical(d, person, 0.96)
    else:
        person.situation, person.identity_code = "elderly", "90"
        _maybe_resident_medical(d, person, 0.85)


def _custody(d: Draw, person: Person, *, released: bool) -> None:
    rng = d.rng
    admitted = e.since(rng, person, 18)
    end = admitted + timedelta(days=int(rng.random() * 900)) if released else None
    if end is not None:
        end = max(admitted, min(end, WORLD_DATE - timedelta(days=1)))
    prison = COUNTIES[int(rng.random() * len(COUNTIES))].code
    person.custody = (admitted, end, prison)
    person.situation, person.identity_code = ("released", "70") if released else ("prisoner", "90")
    if rng.random() < 0.5:  # the pension he paid before: interrupted, or ended
        kind = "110" if rng.random() < 0.4 else "170"
        state = "1" if released and rng.random() < 0.3 else "2" if rng.random() < 0.5 else "3"
        e.enrol(person, kind, person.region, state, admitted - timedelta(days=2000))
    if released:
        _maybe_resident_medical(d, person, 0.7)


def _foreigner(d: Draw, person: Person) -> None:
    rng = d.rng
    person.situation = "foreigner"
    if rng.random() < 0.6:
        unit = d.units.pick(rng, CAPITAL[int(rng.random() * len(CAPITAL))])
        person.region = unit.county.code
        e.enrol(person, "310", person.region, "1", e.since(rng, person, 22), unit)
    else:
        e.resident_medical(person, person.region, e.since(rng, person, 22))


def _maybe_resident_medical(d: Draw, person: Person, chance: float) -> None:
    if d.rng.random() < chance:
        e.resident_medical(person, person.region, e.since(d.rng, person, 0))


def _die(d: Draw, person: Person, rates: Rates) -> None:
    """Died within the last three years: enrolments end, benefits stop (or not: the risk)."""
    rng = d.rng
    died = WORLD_DATE - timedelta(days=1 + int(rng.random() * 1000))
    if died <= person.birth:
        return
    person.died = died
    person.death_in_register = rng.random() < 0.9
    person.cremated = rng.random() < 0.85 or not person.death_in_register
    person.household_status = "1" if person.death_in_register else "0"
    for enrolment in person.enrolments:
        enrolment.state, enrolment.until = "3", died
    person.cross_region.clear()
    for job in person.jobs:
        job.until = job.until or died
    keep_paying = bool(person.benefits) and rng.random() < rates.benefit_after_death
    for benefit in person.benefits:
        if not keep_paying:
            benefit.status, benefit.until = "3", died
    if keep_paying:
        person.traits.append("benefit_after_death")


def _card_and_phone(d: Draw, person: Person, years: int) -> None:
    """A social security card (most people; cancelled after death, sometimes) and the phone the
    registration form asks for: the person's own, else the family's (children, the very old)."""
    rng = d.rng
    if person.phone is None:
        own = years >= 18 and (years < 80 or rng.random() < 0.4) and rng.random() < 0.9
        home = person.household
        person.phone = home.phone if home is not None and not own else mobile(rng)
    if rng.random() < (0.6 if person.hometown else 0.85 if years < 16 else 0.95):
        start = max(person.birth, _CARDS_FROM)
        issued = start + timedelta(days=int(rng.random() * (WORLD_DATE - start).days))
        if person.died is not None:
            status = "4" if rng.random() < 0.6 else "1"
            issued = min(issued, person.died)
        else:
            status = "2" if rng.random() < 0.03 else "1"
        person.card = (status, issued)


def _death_chance(years: int) -> float:
    """Deaths in the last three years among people of this age."""
    for below, chance in ((1, 0.006), (40, 0.003), (60, 0.012), (70, 0.04), (80, 0.1)):
        if years < below:
            return chance
    return 0.22
