"""The generator's knowledge of each person's life: who they are, where their household is
registered, what they do, which insurances they are enrolled in, which benefits they receive,
and which defects their copies in the source systems carry.

The source rows (rows.py) and the expected registry outcome (expected.py) are both derived from
this one model, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from canbao_stack.simulators.divisions import County, Place

# The generated world is a snapshot of this day: every date in the source rows is on or before
# it, so the rows do not depend on the day they are generated (reproducible from the seed).
WORLD_DATE = date(2026, 11, 1)


@dataclass(slots=True)
class Unit:
    """An employer (si_core.ab01)."""

    number: str  # AAB001
    credit_code: str  # AAB003
    name: str  # AAB004
    kind: str  # AAB019 unit type
    county: County

    @property
    def public(self) -> bool:
        """Government organs and public institutions: the 120 pension scheme (domain.md §7)."""
        return self.kind in ("30", "50", "55", "56", "57")


@dataclass(slots=True)
class Household:
    """A household of the household register (户, hukou.person.hh)."""

    number: str  # hh
    county: County
    urban: bool
    address: str  # hjdz
    phone: str  # the family's phone, given for children (registration form)


@dataclass(slots=True)
class Enrolment:
    """One local enrolment: si_core.ac02 (aae140) or medical.insured (insutype 310/360/390)."""

    kind: str  # AAE140 / insutype (domain.md §7)
    region: str
    state: str  # AAC008: 1 paying, 2 suspended, 3 terminated
    since: date
    unit: Unit | None = None
    until: date | None = None
    record: int = 0  # which of the person's records holds it (1: a second record elsewhere)
    medical: bool = False  # in medical.insured (310, 360, 390), else in si_core.ac02


@dataclass(slots=True)
class Benefit:
    """A benefit (si_core.ac60)."""

    kind: str  # AAE140
    region: str
    status: str  # AAE116: 1 paying, 2 suspended, 3 stopped
    since: date
    until: date | None = None


@dataclass(slots=True)
class CrossRegion:
    """What the provincial or national comparison reports (national.cross_region)."""

    insurance: str  # pension, medical, injury, unemployment, maternity
    scope: str  # province, national
    region: str
    status: str  # 1 paying, 2 suspended
    benefit: str = "0"  # 1 receiving benefits


@dataclass(slots=True)
class Study:
    """A student record (education.student)."""

    school: str
    level: str  # xd: 1 primary … 5 higher
    status: str  # xjzt: 1 enrolled, 2 graduated, 3 left
    region: str
    since: date
    until: date | None = None


@dataclass(slots=True)
class Job:
    """An employment registration (employment.job_registration)."""

    unit: Unit
    since: date
    until: date | None = None


@dataclass(slots=True)
class Person:
    index: int  # within the population (seed)
    name: str
    male: bool
    birth: date
    number: str | None  # canonical 18-character citizen ID number; None with another document
    ethnicity: str  # GB 3304 code
    household: Household | None  # None: household registered outside the province
    relation: str = "01"  # yhzgx
    urban: bool = False  # household type: urban (AAC009 11/12) or rural (21/22)
    hometown: Place | None = None  # non-local: where the household is registered
    document: tuple[str, str] | None = None  # (psn_cert_type, number) for passports, permits
    situation: str = ""  # what the person does (see lives.py)
    identity_code: str = "90"  # AAC012
    household_status: str = "0"  # ryzt
    died: date | None = None
    death_in_register: bool = False  # hukou ryzt = 1
    cremated: bool = False  # civil.cremation
    enrolments: list[Enrolment] = field(default_factory=list)
    benefits: list[Benefit] = field(default_factory=list)
    cross_region: list[CrossRegion] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    study: Study | None = None
    custody: tuple[date, date | None, str] | None = None  # admitted, released, prison region
    dibao: date | None = None  # receiving the minimum living allowance since
    card: tuple[str, date] | None = None  # (card_status, issued)
    # hukou.resident_permit (居住证) of a non-local resident, for `region`: (zt, qfrq, yxqz).
    permit: tuple[str, date, date] | None = None
    phone: str | None = None
    region: str = ""  # where the registry files the person: household or insured county
    # Dirty data: how each source system's copy differs from the truth.
    id_copies: dict[str, str] = field(default_factory=dict)  # source → the number as written
    name_copies: dict[str, str] = field(default_factory=dict)  # source → the name as written
    address_copy: str | None = ""  # ac01.aae006 override: None blank, "" the true address
    phantom: tuple[str, bool, date] | None = None  # another person using this number
    traits: list[str] = field(default_factory=list)
    in_core: bool = False  # known to the core system (si_core.ac01): set by settle()

    @property
    def local(self) -> bool:
        """Registered in the province's household register."""
        return self.household is not None

    def settle(self) -> None:
        """Called once the life is decided: what the source tables derive from it."""
        self.in_core = bool(self.benefits) or any(not e.medical for e in self.enrolments)
