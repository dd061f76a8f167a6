"""The registry outcome a person should get: domain.md §5 applied, as written, to the facts the
generator knows about the person. It is the ground truth the identity, matching and gateway
tests compare against, so a domain expert should be able to read it next to §5.

Each rule quotes its sentence of §5. Where §5 leaves a choice, the decision is marked
"our convention" and the matching service must make the same one.
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal, NamedTuple

from canbao_contracts.codes import (
    FlagType,
    HouseholdStatus,
    Insurance,
    RegistrationState,
    StatusCode,
    SurveyReason,
    highest_ranked_scheme,
)

State = Literal["paying", "suspended", "terminated"]


class EnrolmentFact(NamedTuple):
    """A local enrolment (si_core.ac02, medical.insured) with its scheme's code (domain.md §7)."""

    insurance: Insurance
    scheme: StatusCode
    region: str
    state: State
    by_unit: bool  # the unit enrols him (ac02.aab001 / medical.insured.emp_no)


class CrossRegionFact(NamedTuple):
    """An enrolment reported by the provincial or national comparison (national.cross_region)."""

    insurance: Insurance
    scope: Literal["province", "national"]
    region: str
    state: Literal["paying", "suspended"]
    receiving_benefit: bool


class BenefitFact(NamedTuple):
    """A benefit (si_core.ac60); `paying` is payment status 1."""

    insurance: Insurance
    region: str
    paying: bool


class Facts(NamedTuple):
    """Everything §5 looks at, as the registry knows it once every source is read."""

    birth_date: date
    household_registered: bool  # in the province's household register (hukou.person)
    household_status: HouseholdStatus | None  # hukou.person.ryzt; None when not registered
    death_recorded: bool  # civil.cremation (or a health death record)
    in_custody: bool  # justice.inmate, not released
    employment_registered: bool  # employment.job_registration without an end date
    studying: bool  # education.student enrolled (xjzt 1)
    enrolments: tuple[EnrolmentFact, ...] = ()
    cross_region: tuple[CrossRegionFact, ...] = ()
    benefits: tuple[BenefitFact, ...] = ()
    missing: tuple[str, ...] = ()  # required items no source carries (RegistrationItem values)
    inaccurate: tuple[str, ...] = ()  # items a source has wrong
    identity_conflict: bool = False  # one number, two people
    # hukou.resident_permit: the end date (yxqz) of a valid (zt 1) residence permit; None for no
    # permit, or one expired or cancelled (zt 2/3).
    permit_valid_until: date | None = None


class Outcome(NamedTuple):
    in_scope: bool
    deceased: bool
    statuses: dict[Insurance, StatusCode | None]
    flags: tuple[tuple[FlagType, Insurance], ...]
    survey_reasons: tuple[SurveyReason, ...]
    registration: RegistrationState | None

    @property
    def needs_survey(self) -> bool:
        return bool(self.survey_reasons)


class Circumstances(NamedTuple):
    """What rule 4 asks about the person, the same for every insurance."""

    prison_military_abroad: bool  # 93
    under_16: bool
    studying: bool
    employed_by_unit: bool
    receiving_pension: bool


INSURANCES: Final = tuple(Insurance)
_EMPLOYMENT_LINKED: Final = frozenset(
    {Insurance.INJURY, Insurance.UNEMPLOYMENT, Insurance.MATERNITY}
)
_UNINSURED: Final = frozenset({StatusCode.UNINSURED_INDIVIDUAL, StatusCode.UNINSURED_BY_EMPLOYER})
_REGISTERED: Final = frozenset(
    {HouseholdStatus.NORMAL, HouseholdStatus.MILITARY_SERVICE, HouseholdStatus.SETTLED_ABROAD}
)
_AWAY: Final = frozenset({HouseholdStatus.MILITARY_SERVICE, HouseholdStatus.SETTLED_ABROAD})
_NOBODY: Final = dict.fromkeys(INSURANCES)


def outcome(facts: Facts, as_of: date) -> Outcome:
    """The person's statuses, flags, survey reasons and registration state on `as_of`."""
    # "Deceased people (household status, civil affairs cremation record, health death record)
    # leave the scope of 'should be insured'; a benefit still paid after death is a risk flag."
    # api.md: statuses are null for a deceased person. Our convention: no survey, no
    # registration state, and benefit_after_death is the only flag evaluated.
    if facts.household_status is HouseholdStatus.DECEASED or facts.death_recorded:
        flags = tuple(
            (FlagType.BENEFIT_AFTER_DEATH, insurance)
            for insurance in INSURANCES
            if benefits_paid(facts, insurance) > 0
        )
        return Outcome(False, True, dict(_NOBODY), flags, (), None)
    if not in_scope(facts, as_of):
        return Outcome(False, False, dict(_NOBODY), (), (), None)
    circumstances = circumstances_of(facts, as_of)
    by_insurance = enrolments_by_insurance(facts)
    statuses: dict[Insurance, StatusCode | None] = {
        insurance: status(insurance, by_insurance.get(insurance, _NONE), circumstances)
        for insurance in INSURANCES
    }
    duplicates = tuple(
        (FlagType.DUPLICATE_INSURANCE, insurance)
        for insurance, enrolments in by_insurance.items()
        if active_enrolments(enrolments) >= 2
    )
    double_benefits = tuple(
        (FlagType.DUPLICATE_BENEFITS, insurance)
        for insurance in INSURANCES
        if len(facts.benefits) + len(facts.cross_region) >= 2  # a duplicate needs two records
        and benefits_paid(facts, insurance) >= 2
    )
    reasons = survey_reasons(facts, statuses)
    registration = RegistrationState.NEEDS_SURVEY if reasons else RegistrationState.CONFIRMED
    return Outcome(True, False, statuses, duplicates + double_benefits, reasons, registration)


def in_scope(facts: Facts, as_of: date) -> bool:
    """§1: "local household-registered people first, then insured non-local residents, then
    other long-term residents". Our convention: household-registered means registered with
    status normal, military service or settled abroad (§5 gives the last two a status, 93);
    anyone else is in scope while a local enrolment is paying or suspended (passport and permit
    holders included), or while they hold a residence permit here that is valid on `as_of`
    (public security's 外来常住人员). An expired or cancelled permit is a record that they lived
    here, not that they still do: it keeps no one in scope."""
    registered = facts.household_registered and facts.household_status in _REGISTERED
    resident = (
        not facts.household_registered
        and facts.permit_valid_until is not None
        and facts.permit_valid_until >= as_of
    )
    return registered or resident or any(e.state != "terminated" for e in facts.enrolments)


class Enrolments(NamedTuple):
    """One insurance's enrolments: local, and reported by the comparison."""

    local: list[EnrolmentFact]
    elsewhere: list[CrossRegionFact]


_NONE: Final = Enrolments([], [])


def enrolments_by_insurance(facts: Facts) -> dict[Insurance, Enrolments]:
    grouped: dict[Insurance, Enrolments] = {}
    for e in facts.enrolments:
        grouped.setdefault(e.insurance, Enrolments([], [])).local.append(e)
    for c in facts.cross_region:
        grouped.setdefault(c.insurance, Enrolments([], [])).elsewhere.append(c)
    return grouped


def status(
    insurance: Insurance, enrolments: Enrolments, circumstances: Circumstances
) -> StatusCode:
    """§5 "For each living person in scope and each insurance, in this order", given the
    person's `enrolments` in that insurance."""
    # 1. "An active local enrolment (payment status active) of that insurance → its insured code
    # … the code shown is the highest-ranked scheme (employee > government/institution >
    # resident > other)."
    active = [e.scheme for e in enrolments.local if e.state == "paying"]
    if active:
        return active[0] if len(active) == 1 else highest_ranked_scheme(active)
    # 2. "Else an active enrolment reported by the provincial/national comparison → 81 (in
    # province, another region) or 82 (another province)." Our convention: 81 wins when both.
    scopes = [c.scope for c in enrolments.elsewhere if c.state == "paying"]
    if scopes:
        if "province" in scopes:
            return StatusCode.INSURED_ELSEWHERE_IN_PROVINCE
        return StatusCode.INSURED_IN_ANOTHER_PROVINCE
    # 3. "Else a suspended enrolment (payment interrupted) → 94." Our convention: local or
    # reported by the comparison. A terminated enrolment is no enrolment.
    if any(e.state == "suspended" for e in enrolments.local) or any(
        c.state == "suspended" for c in enrolments.elsewhere
    ):
        return StatusCode.INTERRUPTED
    # 4. "Else not insured; the reason decides the code". Our convention: the reasons are tried
    # in the order §5 lists them, 93, 95, 92, 91 (a prisoner under 16 is 93, a retiree employed
    # by a unit is 95 in the employment-linked insurances).
    if circumstances.prison_military_abroad:
        # "93 — in prison (justice data), in military service or settled abroad"
        return StatusCode.UNINSURED_MILITARY_ABROAD_PRISON
    if not_required(insurance, circumstances):
        return StatusCode.NOT_REQUIRED
    if circumstances.employed_by_unit:
        # "92 — employed by a unit … but not enrolled in this one"
        return StatusCode.UNINSURED_BY_EMPLOYER
    return StatusCode.UNINSURED_INDIVIDUAL  # "91 — otherwise (the person should join but has not)"


def not_required(insurance: Insurance, circumstances: Circumstances) -> bool:
    """95: "pension for under-16s and full-time students; work injury, unemployment and maternity
    for anyone not employed by a unit …; unemployment, work injury and maternity for people
    receiving a pension." Medical is never 95: everyone should have medical insurance."""
    if insurance is Insurance.PENSION:
        return circumstances.under_16 or circumstances.studying
    if insurance in _EMPLOYMENT_LINKED:
        return not circumstances.employed_by_unit or circumstances.receiving_pension
    return False


def circumstances_of(facts: Facts, as_of: date) -> Circumstances:
    return Circumstances(
        prison_military_abroad=facts.in_custody or facts.household_status in _AWAY,
        under_16=age(facts.birth_date, as_of) < 16,
        # Our convention: every enrolled student record (education.student xjzt 1) is full-time.
        studying=facts.studying,
        employed_by_unit=employed_by_unit(facts),
        receiving_pension=benefits_paid(facts, Insurance.PENSION) > 0,
    )


def employed_by_unit(facts: Facts) -> bool:
    """92's definition: "employed by a unit (employment registration, or the unit enrols him in
    another insurance)". Our convention: an enrolment by a unit counts while paying or
    suspended (the unit still has him on its books); a terminated one does not."""
    return facts.employment_registered or any(
        e.by_unit and e.state != "terminated" for e in facts.enrolments
    )


def survey_reasons(
    facts: Facts, statuses: dict[Insurance, StatusCode | None]
) -> tuple[SurveyReason, ...]:
    """ "Needs survey (需调查登记) when any of" its six conditions; each gives one reason, in the
    order of api.md. Our convention: pension 92 is both uninsured and partially insured."""
    codes = set(statuses.values())
    conditions = (
        # "uninsured in pension or medical (91/92)"
        (
            SurveyReason.UNINSURED,
            statuses[Insurance.PENSION] in _UNINSURED or statuses[Insurance.MEDICAL] in _UNINSURED,
        ),
        # "not insured in every applicable insurance (92 in any)"
        (SurveyReason.PARTIALLY_INSURED, StatusCode.UNINSURED_BY_EMPLOYER in codes),
        (SurveyReason.INTERRUPTED, StatusCode.INTERRUPTED in codes),  # "interrupted (94)"
        (SurveyReason.MISSING_INFO, bool(facts.missing)),  # "required item missing"
        # "item inaccurate (invalid ID, ID disagreeing with birth date/gender, sources
        # disagreeing on the name, malformed phone)"
        (SurveyReason.INACCURATE_INFO, bool(facts.inaccurate)),
        (SurveyReason.IDENTITY_CONFLICT, facts.identity_conflict),  # "one number, two people"
    )
    return tuple(reason for reason, applies in conditions if applies)


def active_enrolments(enrolments: Enrolments) -> int:
    """§5 rule 1: "Two or more active enrolments of the same insurance (of different schemes, or
    in two regions) → duplicate insurance"; rule 2: "Active locally and elsewhere → duplicate
    insurance". Our convention: local enrolments count once per (scheme, region), so the same
    enrolment seen in two records is not a duplicate; each reported enrolment elsewhere counts
    once per (scope, region)."""
    local = {(e.scheme, e.region) for e in enrolments.local if e.state == "paying"}
    elsewhere = {(c.scope, c.region) for c in enrolments.elsewhere if c.state == "paying"}
    return len(local) + len(elsewhere)


def benefits_paid(facts: Facts, insurance: Insurance) -> int:
    """ "Duplicate benefits: two or more benefits being paid for the same insurance (e.g. pension
    paid in two regions, or employee and resident pension together)". Our convention: each
    paying ac60 row and each cross-region report with benefit 1 is one benefit; a pension being
    received ("people receiving a pension", rule 4) is one of these."""
    local = sum(1 for b in facts.benefits if b.insurance == insurance and b.paying)
    elsewhere = sum(
        1 for c in facts.cross_region if c.insurance == insurance and c.receiving_benefit
    )
    return local + elsewhere


def age(birth: date, on: date) -> int:
    """Completed years (a 29 February birthday is reached on 1 March in common years)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
