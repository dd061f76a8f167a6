"""domain.md §5 "Status rules" in Python: a person's facts and today's date → the verdict.

Read it next to the document: each rule quotes its sentence. Where §5 leaves a choice, the
decision is marked "our convention"; it is the same one the generator's ground truth makes
(stack/canbao_stack/simulators/expected.py), unless said otherwise. Pure functions: no database,
no Kafka, no clock (today is an argument).

What the rules see (`Situation`): the person as identity publishes them (registry.persons), the
facts identity derived from the business systems (registry.facts, current and not retracted)
and the approved collections (registry.collections) that resolved reasons or verified statuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Final, TypeVar, cast

from canbao_contracts.codes import (
    BenefitPaymentStatus,
    FlagType,
    HouseholdStatus,
    Insurance,
    RegistrationState,
    ResidencePermitStatus,
    StatusCode,
    StudentStatus,
    SurveyReason,
    highest_ranked_scheme,
)
from canbao_contracts.events import (
    BenefitFact,
    CrossRegionEnrolmentFact,
    CustodyFact,
    DeathFact,
    EmploymentFact,
    EnrolmentFact,
    EnrolmentState,
    Fact,
    Flag,
    HouseholdStatusFact,
    ResidencePermitFact,
    Statuses,
    StudyFact,
    Verdict,
    VerifiedStatus,
)
from canbao_contracts.events.fact_kinds import FactBase
from canbao_contracts.events.person_state import PersonState
from canbao_contracts.events.vocabulary import ComparisonScope

INSURANCES: Final = tuple(Insurance)
EMPLOYMENT_LINKED: Final = frozenset(
    {Insurance.INJURY, Insurance.UNEMPLOYMENT, Insurance.MATERNITY}
)
UNINSURED: Final = frozenset({StatusCode.UNINSURED_INDIVIDUAL, StatusCode.UNINSURED_BY_EMPLOYER})
# Our convention (§1 "local household-registered people first"): registered means a household
# status of normal, military service or settled abroad (§5 gives the last two the code 93).
REGISTERED: Final = frozenset(
    {HouseholdStatus.NORMAL, HouseholdStatus.MILITARY_SERVICE, HouseholdStatus.SETTLED_ABROAD}
)
AWAY: Final = frozenset({HouseholdStatus.MILITARY_SERVICE, HouseholdStatus.SETTLED_ABROAD})
NOT_REQUIRED_AGE: Final = 16
F = TypeVar("F", bound=FactBase)


@dataclass(frozen=True)
class Collection:
    """An approved collection as matching keeps it (no collected values: those are identity's)."""

    reviewed_at: datetime
    resolved_reasons: tuple[SurveyReason, ...] = ()
    verified_statuses: tuple[VerifiedStatus, ...] = ()


@dataclass(frozen=True)
class Situation:
    """Everything §5 looks at for one person."""

    person: PersonState
    facts: tuple[Fact, ...] = ()  # current, not retracted
    collections: tuple[Collection, ...] = ()
    latest_source_change: datetime | None = None  # newest observed_at of a business-system fact

    def of(self, kind: type[F]) -> list[F]:
        """The facts of one kind (a new list: the caller may keep or change it)."""
        return list(cast("list[F]", self._by_kind.get(kind, [])))

    @cached_property
    def _by_kind(self) -> dict[type[FactBase], list[Fact]]:
        """The facts grouped by their kind, once: the rules ask for a kind about 30 times."""
        grouped: dict[type[FactBase], list[Fact]] = {}
        for fact in self.facts:
            grouped.setdefault(type(fact), []).append(fact)
        return grouped


@dataclass(frozen=True)
class Circumstances:
    """What rule 4 asks about the person on a given day, the same for every insurance."""

    prison_military_abroad: bool  # 93
    under_16: bool
    studying: bool
    employed_by_unit: bool
    receiving_pension: bool
    verified: dict[Insurance, StatusCode] = field(default_factory=dict)


# -- The verdict -----------------------------------------------------------------------------------


def evaluate(situation: Situation, today: date) -> Verdict | None:
    """The person's verdict on `today`; None for a living person outside the registry's scope
    (the contract's Verdict has no "out of scope": its statuses are null only for the dead)."""
    person = situation.person
    base = {
        "region_code": person.region_code,
        "birth_year": None if person.birth_date is None else person.birth_date.year,
        "gender": person.gender,
        "household_registered_locally": person.household_registered_locally,
        "household_data_obtained": person.household_data_obtained,
    }
    # "Deceased people (household status, civil affairs cremation record, health death record)
    # leave the scope of 'should be insured'; a benefit still paid after death is a risk flag."
    # api.md: statuses are null for a deceased person. Our convention: no survey reasons, and
    # benefit_after_death is the only flag evaluated.
    if is_deceased(situation):
        flags = tuple(
            Flag(type=FlagType.BENEFIT_AFTER_DEATH, insurance=insurance)
            for insurance in INSURANCES
            if benefits_paid(situation, insurance) > 0
        )
        return Verdict(
            **base,
            deceased=True,
            statuses=Statuses(**dict.fromkeys(INSURANCES)),
            flags=flags,
            needs_survey=False,
            registration=RegistrationState.CONFIRMED,
        )
    if not in_scope(situation, today):
        return None
    circumstances = circumstances_of(situation, today)
    statuses = {i: status(i, situation, circumstances) for i in INSURANCES}
    flags = tuple(
        Flag(type=FlagType.DUPLICATE_INSURANCE, insurance=i)
        for i in INSURANCES
        if active_enrolments(situation, i) >= 2
    ) + tuple(
        Flag(type=FlagType.DUPLICATE_BENEFITS, insurance=i)
        for i in INSURANCES
        if benefits_paid(situation, i) >= 2
    )
    # A verified status counts where it stands (rules 1-3 found nothing in the systems).
    verified = {i for i, code in circumstances.verified.items() if statuses[i] is code}
    computed = survey_reasons(situation.person, statuses, verified)
    resolved = resolved_reasons(situation)
    reasons = tuple(r for r in computed if r not in resolved)
    registration, confirmed_by = registration_of(
        statuses, reasons, verified_by_collection=bool(verified) or bool(set(computed) & resolved)
    )
    return Verdict(
        **base,
        deceased=False,
        statuses=Statuses(**statuses),
        flags=flags,
        needs_survey=bool(reasons),
        survey_reasons=reasons,
        registration=registration,
        confirmed_by=confirmed_by,
        enrolment_cities=enrolment_cities(situation),
        employers=employers(situation, today),
        interrupted_since=interrupted_since(situation),
    )


def is_deceased(situation: Situation) -> bool:
    """Household status deceased, a cremation or death record (identity folds them into the
    person's `deceased`; the facts are read too so a death is seen whichever arrives first)."""
    return (
        situation.person.deceased
        or bool(situation.of(DeathFact))
        or household_status(situation) is HouseholdStatus.DECEASED
    )


def in_scope(situation: Situation, today: date) -> bool:
    """§1: "local household-registered people first, then insured non-local residents, then
    other long-term residents". Our convention: anyone not household-registered is in scope
    while a local enrolment is paying or suspended (passport and permit holders included), and
    so is a resident the household register does not know who holds a current residence permit
    here (public security's 外来常住人员) or whom an approved collection registered (a newcomer at
    a counter, a person a survey team found living here): the long-term residents the registry
    learns of only from them. A collection does not bring back someone the register knows as
    moved out or settled abroad."""
    local = situation.person.household_registered_locally
    registered = local and household_status(situation) in REGISTERED
    enrolled = any(e.state is not EnrolmentState.TERMINATED for e in situation.of(EnrolmentFact))
    resident = not local and (
        situation.person.registered_by_collection
        or bool(situation.collections)
        or holds_current_permit(situation, today)
    )
    return registered or enrolled or resident


def holds_current_permit(situation: Situation, today: date) -> bool:
    """A residence permit (居住证) that is valid today. Our convention: an expired (2) or
    cancelled (3) permit, or a valid one past its end date (yxqz), is a record that the person
    lived here, not that they still do: on its own it keeps no one in scope."""
    return any(
        p.status is ResidencePermitStatus.VALID
        and (p.valid_until is None or p.valid_until >= today)
        for p in situation.of(ResidencePermitFact)
    )


def household_status(situation: Situation) -> HouseholdStatus | None:
    """hukou.person.ryzt; a locally registered person without the fact yet counts as normal."""
    facts = sorted(situation.of(HouseholdStatusFact), key=lambda f: (f.observed_at, f.revision))
    if facts:
        return facts[-1].status
    return HouseholdStatus.NORMAL if situation.person.household_registered_locally else None


# -- Statuses: "For each living person in scope and each insurance, in this order" ---------------


def status(insurance: Insurance, situation: Situation, circumstances: Circumstances) -> StatusCode:
    local = [e for e in situation.of(EnrolmentFact) if e.insurance is insurance]
    elsewhere = [c for c in situation.of(CrossRegionEnrolmentFact) if c.insurance is insurance]
    # 1. "An active local enrolment (payment status active) of that insurance → its insured code
    # … the code shown is the highest-ranked scheme (employee > government/institution >
    # resident > other)."
    active = [e.scheme for e in local if e.state is EnrolmentState.PAYING]
    if active:
        return highest_ranked_scheme(active)
    # 2. "Else an active enrolment reported by the provincial/national comparison → 81 (in
    # province, another region) or 82 (another province)." Our convention: 81 when both.
    scopes = {c.scope for c in elsewhere if c.state is EnrolmentState.PAYING}
    if ComparisonScope.PROVINCE in scopes:
        return StatusCode.INSURED_ELSEWHERE_IN_PROVINCE
    if ComparisonScope.NATIONAL in scopes:
        return StatusCode.INSURED_IN_ANOTHER_PROVINCE
    # 3. "Else a suspended enrolment (payment interrupted) → 94." Our convention: local or
    # reported by the comparison; a terminated enrolment is no enrolment.
    suspended = [e.state for e in local] + [c.state for c in elsewhere]
    if EnrolmentState.SUSPENDED in suspended:
        return StatusCode.INTERRUPTED
    # 4. "Else not insured; the reason decides the code". A reason a survey or counter verified
    # (registry.collections) stands where the systems know of no enrolment (domain.md §5 last
    # sentence: "a survey that verifies a person as legitimately uninsured records the verified
    # reason"). Otherwise our convention: the reasons in the order §5 lists them: 93, 95, 92, 91
    # (a prisoner under 16 is 93, a retiree employed by a unit is 95 in injury).
    if insurance in circumstances.verified:
        return circumstances.verified[insurance]
    if circumstances.prison_military_abroad:
        # "93 — in prison (justice data), in military service or settled abroad (household
        # status)."
        return StatusCode.UNINSURED_MILITARY_ABROAD_PRISON
    if not_required(insurance, circumstances):
        return StatusCode.NOT_REQUIRED
    if circumstances.employed_by_unit:
        # "92 — employed by a unit (employment registration, or the unit enrols him in another
        # insurance) but not enrolled in this one."
        return StatusCode.UNINSURED_BY_EMPLOYER
    # "91 — otherwise (the person should join but has not)."
    return StatusCode.UNINSURED_INDIVIDUAL


def not_required(insurance: Insurance, circumstances: Circumstances) -> bool:
    """95: "not required: pension for under-16s and full-time students; work injury,
    unemployment and maternity for anyone not employed by a unit (children, students, retirees,
    farmers, unemployed, self-employed without employees); unemployment, work injury and
    maternity for people receiving a pension." Medical is never 95: it covers everyone (§1)."""
    if insurance is Insurance.PENSION:
        return circumstances.under_16 or circumstances.studying
    if insurance in EMPLOYMENT_LINKED:
        return not circumstances.employed_by_unit or circumstances.receiving_pension
    return False


def circumstances_of(situation: Situation, today: date) -> Circumstances:
    birth = situation.person.birth_date
    return Circumstances(
        prison_military_abroad=in_custody(situation, today) or household_status(situation) in AWAY,
        # A missing birth date is a survey reason of its own (missing_info); the person is not
        # presumed a child.
        under_16=birth is not None and age(birth, today) < NOT_REQUIRED_AGE,
        studying=studying(situation, today),
        employed_by_unit=employed_by_unit(situation, today),
        receiving_pension=benefits_paid(situation, Insurance.PENSION) > 0,
        verified=verified_statuses(situation),
    )


def in_custody(situation: Situation, today: date) -> bool:
    """ "in prison (justice data)": admitted and not released by today (released_on is the
    first day out)."""
    return any(_current(c.admitted_on, c.released_on, today) for c in situation.of(CustodyFact))


def studying(situation: Situation, today: date) -> bool:
    """ "full-time students". Our convention (with the generator): every enrolled student record
    (education.student xjzt 1) is full-time; a graduation date reached ends it even if the
    school has not yet updated the status."""
    return any(
        s.state is StudentStatus.ENROLLED and _current(None, s.graduated_on, today)
        for s in situation.of(StudyFact)
    )


def employed_by_unit(situation: Situation, today: date) -> bool:
    """92's definition: "employed by a unit (employment registration, or the unit enrols him in
    another insurance)". Our convention: a registration without an end date reached; an
    enrolment by a unit while paying or suspended (the unit still has him on its books)."""
    registered = any(
        _current(e.started_on, e.ended_on, today) for e in situation.of(EmploymentFact)
    )
    return registered or any(_on_the_books(e) for e in situation.of(EnrolmentFact))


def employers(situation: Situation, today: date) -> tuple[str, ...]:
    """The units employing the person by employed_by_unit's convention, those the sources name:
    whom a 92 is owed to."""
    registered = {
        e.unit_id
        for e in situation.of(EmploymentFact)
        if e.unit_id is not None and _current(e.started_on, e.ended_on, today)
    }
    enrolling = {
        e.unit_id for e in situation.of(EnrolmentFact) if e.unit_id is not None and _on_the_books(e)
    }
    return tuple(sorted(registered | enrolling))


def interrupted_since(situation: Situation) -> date | None:
    """Rule 3's interruption (94), dated: the earliest period end of a suspended enrolment."""
    ends = [
        e.period_end
        for e in situation.of(EnrolmentFact)
        if e.state is EnrolmentState.SUSPENDED and e.period_end is not None
    ]
    return min(ends, default=None)


def _on_the_books(enrolment: EnrolmentFact) -> bool:
    return enrolment.unit_id is not None and enrolment.state is not EnrolmentState.TERMINATED


def enrolment_cities(situation: Situation) -> tuple[str, ...]:
    """domain.md §6 "'Local' is relative to each city": the cities (地市, a region's first four
    digits) of the person's paying local enrolments, whichever insurance."""
    return tuple(
        sorted(
            {
                e.region_code[:4]
                for e in situation.of(EnrolmentFact)
                if e.state is EnrolmentState.PAYING and e.region_code is not None
            }
        )
    )


def _current(start: date | None, end: date | None, today: date) -> bool:
    return (start is None or start <= today) and (end is None or today < end)


# -- Flags ----------------------------------------------------------------------------------------


def active_enrolments(situation: Situation, insurance: Insurance) -> int:
    """Rule 1: "Two or more active enrolments of the same insurance (of different schemes, or in
    two regions) → duplicate insurance"; rule 2: "Active locally and elsewhere → duplicate
    insurance". Our convention: a local enrolment counts once per (scheme, region), so one
    enrolment seen in two systems is no duplicate; one elsewhere once per (scope, region)."""
    local = {
        (e.scheme, e.region_code)
        for e in situation.of(EnrolmentFact)
        if e.insurance is insurance and e.state is EnrolmentState.PAYING
    }
    elsewhere = {
        (c.scope, c.region_code)
        for c in situation.of(CrossRegionEnrolmentFact)
        if c.insurance is insurance and c.state is EnrolmentState.PAYING
    }
    return len(local) + len(elsewhere)


def benefits_paid(situation: Situation, insurance: Insurance) -> int:
    """ "Duplicate benefits (重复享受待遇): two or more benefits being paid for the same insurance
    (e.g. pension paid in two regions, or employee and resident pension together)." Our
    convention: each paying benefit record (si_core.ac60 status 1) and each comparison report of
    a benefit received is one benefit; a pension being received ("people receiving a pension",
    rule 4) is one of these."""
    local = sum(
        1
        for b in situation.of(BenefitFact)
        if b.insurance is insurance and b.state is BenefitPaymentStatus.PAYING
    )
    elsewhere = sum(
        1
        for c in situation.of(CrossRegionEnrolmentFact)
        if c.insurance is insurance and c.receiving_benefit
    )
    return local + elsewhere


# -- Needs survey, collections and the registration state -----------------------------------------


def survey_reasons(
    person: PersonState,
    statuses: dict[Insurance, StatusCode],
    verified: set[Insurance],
) -> tuple[SurveyReason, ...]:
    """ "Needs survey (需调查登记) when any of" its conditions; one reason each, in the order of
    api.md. Our convention: pension 92 is both uninsured and partially insured; a status a
    collection verified raises none ("records the verified reason and confirms the
    registration")."""
    systems = {i: code for i, code in statuses.items() if i not in verified}
    uninsured = systems.get(Insurance.PENSION) in UNINSURED or (
        systems.get(Insurance.MEDICAL) in UNINSURED
    )
    conditions = (
        # "uninsured in pension or medical (91/92)"
        (SurveyReason.UNINSURED, uninsured),
        # "not insured in every applicable insurance (92 in any)"
        (SurveyReason.PARTIALLY_INSURED, StatusCode.UNINSURED_BY_EMPLOYER in systems.values()),
        # "interrupted (94)"
        (SurveyReason.INTERRUPTED, StatusCode.INTERRUPTED in systems.values()),
        # "required item missing"
        (SurveyReason.MISSING_INFO, bool(person.missing)),
        # "item inaccurate (invalid ID, ID disagreeing with birth date/gender, sources
        # disagreeing on the name, malformed phone)"
        (SurveyReason.INACCURATE_INFO, bool(person.inaccurate)),
        # "identity conflict (one number, two people)"
        (SurveyReason.IDENTITY_CONFLICT, person.identity_conflict),
    )
    return tuple(reason for reason, applies in conditions if applies)


def effective_collections(situation: Situation) -> list[Collection]:
    """ "collection or survey removes the ones it resolves". Our convention: a collection holds
    until a business system reports something newer about the person (a fact observed after the
    approval); from then the systems' data is the newer word and the rules apply afresh. Decided
    by timestamps, not by arrival order, so replays and late events give the same verdict."""
    latest = situation.latest_source_change
    return [c for c in situation.collections if latest is None or c.reviewed_at >= latest]


def resolved_reasons(situation: Situation) -> set[SurveyReason]:
    return {r for c in effective_collections(situation) for r in c.resolved_reasons}


def verified_statuses(situation: Situation) -> dict[Insurance, StatusCode]:
    """The newest effective verified status per insurance."""
    verified: dict[Insurance, StatusCode] = {}
    for collection in sorted(effective_collections(situation), key=lambda c: c.reviewed_at):
        for v in collection.verified_statuses:
            verified[v.insurance] = v.status
    return verified


def registration_of(
    statuses: dict[Insurance, StatusCode],
    reasons: Iterable[SurveyReason],
    *,
    verified_by_collection: bool,
) -> tuple[RegistrationState, ComparisonScope | None]:
    """§2.1: "Complete and accurate → registration confirmed directly"; otherwise "needs survey";
    §5: a survey that settles the reasons "confirms the registration (counts under 'verified and
    registered')". Our convention for §6 columns 3, 5, 6: a person confirmed directly is
    confirmed by the local systems when any insurance is a local scheme, else by the provincial
    comparison when any is 81, else by the national one when any is 82, else (nothing insured,
    nothing wrong: a prisoner, a child not required to join) by the local systems."""
    if any(True for _ in reasons):
        return RegistrationState.NEEDS_SURVEY, None
    if verified_by_collection:
        return RegistrationState.VERIFIED, None
    codes = set(statuses.values())
    if any(code.insurance is not None for code in codes):
        return RegistrationState.CONFIRMED, ComparisonScope.LOCAL
    if StatusCode.INSURED_ELSEWHERE_IN_PROVINCE in codes:
        return RegistrationState.CONFIRMED, ComparisonScope.PROVINCE
    if StatusCode.INSURED_IN_ANOTHER_PROVINCE in codes:
        return RegistrationState.CONFIRMED, ComparisonScope.NATIONAL
    return RegistrationState.CONFIRMED, ComparisonScope.LOCAL


# -- Time -----------------------------------------------------------------------------------------


def age(birth: date, on: date) -> int:
    """Completed years (a 29 February birthday is reached on 1 March in common years)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def next_recheck(situation: Situation, today: date) -> date | None:
    """The first day after `today` on which the verdict may change with no new fact: the 16th
    birthday (pension 95 ends), and the dates the rules compare with (a release, the end of a
    job, a graduation). The scheduled re-check evaluates the person again on that day."""
    candidates: list[date | None] = []
    birth = situation.person.birth_date
    if birth is not None:
        candidates.append(_birthday(birth, NOT_REQUIRED_AGE))
    for c in situation.of(CustodyFact):
        candidates += [c.admitted_on, c.released_on]
    for e in situation.of(EmploymentFact):
        candidates += [e.started_on, e.ended_on]
    candidates += [s.graduated_on for s in situation.of(StudyFact)]
    # The day after a permit's end date it no longer places the person in scope.
    candidates += [
        p.valid_until + timedelta(days=1)
        for p in situation.of(ResidencePermitFact)
        if p.valid_until is not None
    ]
    future = [d for d in candidates if d is not None and d > today]
    return min(future, default=None)


def _birthday(birth: date, years: int) -> date:
    try:
        return birth.replace(year=birth.year + years)
    except ValueError:  # 29 February in a common year: reached on 1 March (see age)
        return date(birth.year + years, 3, 1)
