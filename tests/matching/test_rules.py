"""domain.md §5 rule by rule, each with a scenario a clerk would recognise, and the boundaries:
age 16, a student who graduated yesterday, a prisoner released, suspended vs terminated, local
and cross-region together."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from canbao_contracts.codes import (
    BenefitPaymentStatus,
    FlagType,
    HouseholdStatus,
    Insurance,
    RegistrationItem,
    RegistrationState,
    ResidencePermitStatus,
    StatusCode,
    StudentStatus,
    SurveyReason,
)
from canbao_contracts.events import EnrolmentState, Fact, Flag, InaccurateItem, Verdict
from canbao_contracts.events.collection import VerifiedStatus
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_matching.rules import Collection, Situation, evaluate, next_recheck
from tests.matching.people import (
    OBSERVED,
    OTHER_REGION,
    TODAY,
    benefit,
    custody,
    death,
    elsewhere,
    enrolled,
    household,
    job,
    permit,
    person,
    study,
)

P, M, INJ, U, MAT = (
    Insurance.PENSION,
    Insurance.MEDICAL,
    Insurance.INJURY,
    Insurance.UNEMPLOYMENT,
    Insurance.MATERNITY,
)
S = StatusCode
PAYING, SUSPENDED, TERMINATED = (
    EnrolmentState.PAYING,
    EnrolmentState.SUSPENDED,
    EnrolmentState.TERMINATED,
)
ALL_FIVE = (S.URBAN_EMPLOYEE_PENSION, S.EMPLOYEE_MEDICAL, S.INJURY_INSURED,
            S.UNEMPLOYMENT_INSURED, S.MATERNITY_INSURED)  # fmt: skip


def verdict(
    *facts: Fact,
    on: date = TODAY,
    pid: UUID | None = None,
    collections: tuple[Collection, ...] = (),
    **person_fields: Any,
) -> Verdict:
    situation = Situation(
        person=person(pid or uuid4(), **person_fields),
        facts=facts,
        collections=collections,
        latest_source_change=max((f.observed_at for f in facts), default=None),
    )
    result = evaluate(situation, on)
    assert result is not None, "the person is out of scope"
    return result


def codes(v: Verdict) -> dict[Insurance, StatusCode | None]:
    return dict(v.statuses.items())


def flags(v: Verdict) -> set[tuple[FlagType, Insurance]]:
    return {(f.type, f.insurance) for f in v.flags}


def pid() -> UUID:
    return uuid4()


def unit_employee(*schemes: StatusCode, state: EnrolmentState = PAYING) -> tuple[Fact, ...]:
    p = pid()
    return (job(p), *(enrolled(p, s, state, unit="U0001") for s in schemes))


# -- Rule 1: an active local enrolment ------------------------------------------------------------


def test_fully_insured_unit_employee_is_confirmed_directly_by_the_local_systems() -> None:
    v = verdict(*unit_employee(*ALL_FIVE))
    assert list(codes(v).values()) == list(ALL_FIVE)
    assert v.registration is RegistrationState.CONFIRMED
    assert v.confirmed_by is ComparisonScope.LOCAL
    assert not v.needs_survey and v.flags == ()


def test_employee_and_resident_pension_together_are_a_duplicate_shown_as_employee_pension() -> None:
    p = pid()
    v = verdict(enrolled(p, S.RESIDENT_PENSION), enrolled(p, S.URBAN_EMPLOYEE_PENSION))
    assert codes(v)[P] is S.URBAN_EMPLOYEE_PENSION
    assert flags(v) == {(FlagType.DUPLICATE_INSURANCE, P)}


def test_resident_medical_in_two_cities_is_a_duplicate() -> None:
    p = pid()
    v = verdict(
        enrolled(p, S.RESIDENT_MEDICAL), enrolled(p, S.RESIDENT_MEDICAL, region=OTHER_REGION)
    )
    assert codes(v)[M] is S.RESIDENT_MEDICAL
    assert flags(v) == {(FlagType.DUPLICATE_INSURANCE, M)}


def test_public_funded_medical_ranks_above_resident_medical() -> None:
    p = pid()
    v = verdict(enrolled(p, S.RESIDENT_MEDICAL), enrolled(p, S.PUBLIC_FUNDED_MEDICAL))
    assert codes(v)[M] is S.PUBLIC_FUNDED_MEDICAL  # government/institution > resident


def test_land_expropriated_and_resident_pension_show_the_resident_scheme() -> None:
    p = pid()
    v = verdict(enrolled(p, S.LAND_EXPROPRIATED_FARMERS_PENSION), enrolled(p, S.RESIDENT_PENSION))
    assert codes(v)[P] is S.RESIDENT_PENSION  # resident > other


def test_a_paying_and_a_suspended_enrolment_are_not_a_duplicate() -> None:
    p = pid()
    v = verdict(enrolled(p, S.RESIDENT_PENSION), enrolled(p, S.URBAN_EMPLOYEE_PENSION, SUSPENDED))
    assert codes(v)[P] is S.RESIDENT_PENSION
    assert flags(v) == set()


def test_the_verdict_names_the_cities_of_the_paying_enrolments() -> None:
    """domain.md §6: "local" is relative to each city; reporting counts column 3 where these are."""
    p = pid()
    v = verdict(
        enrolled(p, S.RESIDENT_MEDICAL, region=OTHER_REGION),
        enrolled(p, S.RESIDENT_PENSION),
        enrolled(p, S.RESIDENT_PENSION, region=OTHER_REGION),
        enrolled(p, S.URBAN_EMPLOYEE_PENSION, SUSPENDED, region="520402"),
    )
    assert v.enrolment_cities == ("5201", "5203")  # not Anshun: suspended
    assert verdict(custody(p)).enrolment_cities == ()


def test_the_verdict_names_the_units_that_employ_the_person_now() -> None:
    """The employer a 92 is owed to: a current job registration, an enrolment by a unit not
    terminated; not a job that ended, nor a unit's terminated enrolment."""
    p = pid()
    v = verdict(
        job(p),
        enrolled(p, S.URBAN_EMPLOYEE_PENSION, SUSPENDED, unit="U0002"),
        enrolled(p, S.EMPLOYEE_MEDICAL, TERMINATED, unit="U0003"),
    )
    assert v.employers == ("U0001", "U0002")
    assert verdict(job(p, ended=TODAY - timedelta(days=1))).employers == ()
    assert verdict(enrolled(p, S.RESIDENT_PENSION)).employers == ()


def test_an_interruption_is_dated_by_the_earliest_end_of_a_suspended_period() -> None:
    p = pid()
    ended = date(2020, 1, 31)
    v = verdict(
        enrolled(p, S.RESIDENT_PENSION, SUSPENDED, period_end=date(2025, 3, 31)),
        enrolled(p, S.RESIDENT_MEDICAL, SUSPENDED, period_end=date(2025, 9, 30)),
        enrolled(p, S.URBAN_EMPLOYEE_PENSION, TERMINATED, period_end=ended),
    )
    assert v.interrupted_since == date(2025, 3, 31)
    assert verdict(enrolled(p, S.RESIDENT_PENSION)).interrupted_since is None


# -- Rule 2: an active enrolment reported by the comparison ---------------------------------------


def test_migrant_worker_insured_in_guangdong_is_82_and_confirmed_by_the_national_comparison() -> (
    None
):
    p = pid()
    v = verdict(*(elsewhere(p, i, ComparisonScope.NATIONAL) for i in Insurance))
    assert set(codes(v).values()) == {S.INSURED_IN_ANOTHER_PROVINCE}
    assert (v.registration, v.confirmed_by) == (
        RegistrationState.CONFIRMED,
        ComparisonScope.NATIONAL,
    )


def test_insured_in_another_city_of_the_province_is_81() -> None:
    p = pid()
    v = verdict(elsewhere(p, P, ComparisonScope.PROVINCE), enrolled(p, S.RESIDENT_MEDICAL))
    assert codes(v)[P] is S.INSURED_ELSEWHERE_IN_PROVINCE


def test_insured_both_in_province_and_outside_shows_81_and_is_a_duplicate() -> None:
    p = pid()
    v = verdict(
        elsewhere(p, P, ComparisonScope.NATIONAL), elsewhere(p, P, ComparisonScope.PROVINCE)
    )
    assert codes(v)[P] is S.INSURED_ELSEWHERE_IN_PROVINCE
    assert (FlagType.DUPLICATE_INSURANCE, P) in flags(v)


def test_local_and_cross_region_medical_is_a_duplicate_shown_as_the_local_scheme() -> None:
    p = pid()
    v = verdict(enrolled(p, S.RESIDENT_MEDICAL), elsewhere(p, M, ComparisonScope.NATIONAL))
    assert codes(v)[M] is S.RESIDENT_MEDICAL  # rule 1 before rule 2
    assert flags(v) == {(FlagType.DUPLICATE_INSURANCE, M)}


# -- Rule 3: suspended -----------------------------------------------------------------------------


def test_employer_in_arrears_makes_every_insurance_interrupted() -> None:
    v = verdict(*unit_employee(*ALL_FIVE, state=SUSPENDED))
    assert set(codes(v).values()) == {S.INTERRUPTED}
    assert v.survey_reasons == (SurveyReason.INTERRUPTED,)
    assert v.registration is RegistrationState.NEEDS_SURVEY


def test_suspended_is_94_but_terminated_is_no_enrolment() -> None:
    p, q = pid(), pid()
    assert codes(verdict(enrolled(p, S.RESIDENT_PENSION, SUSPENDED)))[P] is S.INTERRUPTED
    assert codes(verdict(enrolled(q, S.RESIDENT_PENSION, TERMINATED)))[P] is S.UNINSURED_INDIVIDUAL


def test_suspended_elsewhere_is_interrupted() -> None:
    v = verdict(elsewhere(pid(), P, ComparisonScope.NATIONAL, SUSPENDED))
    assert codes(v)[P] is S.INTERRUPTED


def test_suspended_pension_of_a_prisoner_is_94_not_93() -> None:
    p = pid()
    v = verdict(custody(p), enrolled(p, S.RESIDENT_PENSION, SUSPENDED))
    assert codes(v)[P] is S.INTERRUPTED
    assert codes(v)[M] is S.UNINSURED_MILITARY_ABROAD_PRISON


# -- Rule 4: not insured, and why ------------------------------------------------------------------


def test_prisoner_soldier_and_emigrant_are_93_in_every_insurance() -> None:
    p, q, r = pid(), pid(), pid()
    for facts in (
        (custody(p),),
        (household(q, HouseholdStatus.MILITARY_SERVICE),),
        (household(r, HouseholdStatus.SETTLED_ABROAD),),
    ):
        v = verdict(*facts)
        assert set(codes(v).values()) == {S.UNINSURED_MILITARY_ABROAD_PRISON}
        assert not v.needs_survey


def test_prisoner_released_yesterday_is_no_longer_93() -> None:
    p = pid()
    inside = verdict(custody(p, released=TODAY), on=TODAY - timedelta(days=1))
    out = verdict(custody(p, released=TODAY - timedelta(days=1)))
    assert codes(inside)[P] is S.UNINSURED_MILITARY_ABROAD_PRISON
    assert codes(out)[P] is S.UNINSURED_INDIVIDUAL
    assert codes(out)[INJ] is S.NOT_REQUIRED


def test_prisoner_under_16_is_93_not_95() -> None:
    v = verdict(custody(pid()), birth_date=date(2012, 1, 1))
    assert codes(v)[P] is S.UNINSURED_MILITARY_ABROAD_PRISON


def test_child_under_16_is_not_required_to_join_pension_but_must_have_medical() -> None:
    v = verdict(birth_date=date(2015, 6, 1))
    assert codes(v)[P] is S.NOT_REQUIRED
    assert codes(v)[M] is S.UNINSURED_INDIVIDUAL
    assert v.survey_reasons == (SurveyReason.UNINSURED,)


def test_a_verdict_tells_the_birth_year_never_the_day() -> None:
    """registry.statuses is compacted and kept: the day of birth with the region and gender
    would narrow a person's ID number to a handful (contracts/README.md)."""
    v = verdict(birth_date=date(1990, 3, 7))
    assert (v.birth_year, v.birth_date) == (1990, None)
    assert "1990-03-07" not in v.model_dump_json()


def test_pension_becomes_required_on_the_16th_birthday() -> None:
    p = pid()
    medical = enrolled(p, S.RESIDENT_MEDICAL)
    birth = date(2010, 11, 23)
    day_before = verdict(medical, birth_date=birth, on=date(2026, 11, 22))
    birthday = verdict(medical, birth_date=birth, on=date(2026, 11, 23))
    assert codes(day_before)[P] is S.NOT_REQUIRED and not day_before.needs_survey
    assert codes(birthday)[P] is S.UNINSURED_INDIVIDUAL
    assert birthday.survey_reasons == (SurveyReason.UNINSURED,)


def test_born_on_29_february_turns_16_on_1_march_in_a_common_year() -> None:
    birth = date(2008, 2, 29)
    assert codes(verdict(birth_date=birth, on=date(2024, 2, 28)))[P] is S.NOT_REQUIRED
    assert codes(verdict(birth_date=birth, on=date(2024, 3, 1)))[P] is S.UNINSURED_INDIVIDUAL


def test_student_is_not_required_to_join_pension() -> None:
    p = pid()
    v = verdict(study(p), enrolled(p, S.RESIDENT_MEDICAL), birth_date=date(2006, 3, 1))
    assert codes(v) == {
        P: S.NOT_REQUIRED,
        M: S.RESIDENT_MEDICAL,
        INJ: S.NOT_REQUIRED,
        U: S.NOT_REQUIRED,
        MAT: S.NOT_REQUIRED,
    }
    assert (v.registration, v.confirmed_by) == (RegistrationState.CONFIRMED, ComparisonScope.LOCAL)


def test_student_who_graduated_yesterday_should_join_pension() -> None:
    p = pid()
    medical = enrolled(p, S.RESIDENT_MEDICAL)
    yesterday = TODAY - timedelta(days=1)
    graduated = verdict(study(p, StudentStatus.GRADUATED, graduated=yesterday), medical)
    stale = verdict(study(p, graduated=yesterday), medical)  # school not yet updated
    still = verdict(study(p, graduated=TODAY), medical, on=yesterday)
    assert codes(graduated)[P] is S.UNINSURED_INDIVIDUAL
    assert codes(stale)[P] is S.UNINSURED_INDIVIDUAL
    assert codes(still)[P] is S.NOT_REQUIRED


def test_student_who_left_school_should_join_pension() -> None:
    p = pid()
    assert codes(verdict(study(p, StudentStatus.LEFT)))[P] is S.UNINSURED_INDIVIDUAL


def test_farmer_with_resident_schemes_is_not_required_to_join_employment_insurances() -> None:
    p = pid()
    v = verdict(enrolled(p, S.RESIDENT_PENSION), enrolled(p, S.RESIDENT_MEDICAL))
    assert [codes(v)[i] for i in (INJ, U, MAT)] == [S.NOT_REQUIRED] * 3
    assert not v.needs_survey


def test_medical_is_never_95() -> None:
    v = verdict(birth_date=date(2025, 1, 1))  # a baby
    assert codes(v)[M] is S.UNINSURED_INDIVIDUAL


def test_employee_whose_unit_enrols_him_only_in_pension_and_medical_is_92_in_the_others() -> None:
    p = pid()
    v = verdict(
        enrolled(p, S.URBAN_EMPLOYEE_PENSION, unit="U1"), enrolled(p, S.EMPLOYEE_MEDICAL, unit="U1")
    )
    assert [codes(v)[i] for i in (INJ, U, MAT)] == [S.UNINSURED_BY_EMPLOYER] * 3
    assert v.survey_reasons == (SurveyReason.PARTIALLY_INSURED,)


def test_employment_registration_without_any_enrolment_is_92_everywhere() -> None:
    v = verdict(job(pid()))
    assert set(codes(v).values()) == {S.UNINSURED_BY_EMPLOYER}
    assert v.survey_reasons == (SurveyReason.UNINSURED, SurveyReason.PARTIALLY_INSURED)


def test_a_job_that_ended_is_no_employment() -> None:
    p = pid()
    v = verdict(
        job(p, ended=TODAY), enrolled(p, S.RESIDENT_PENSION), enrolled(p, S.RESIDENT_MEDICAL)
    )
    assert codes(v)[INJ] is S.NOT_REQUIRED


def test_a_unit_enrolment_suspended_still_means_employed_by_the_unit() -> None:
    p = pid()
    v = verdict(enrolled(p, S.URBAN_EMPLOYEE_PENSION, SUSPENDED, unit="U1"))
    assert codes(v)[P] is S.INTERRUPTED
    assert codes(v)[M] is S.UNINSURED_BY_EMPLOYER


def test_a_unit_enrolment_terminated_no_longer_means_employed() -> None:
    p = pid()
    v = verdict(enrolled(p, S.URBAN_EMPLOYEE_PENSION, TERMINATED, unit="U1"))
    assert codes(v)[INJ] is S.NOT_REQUIRED
    assert codes(v)[P] is S.UNINSURED_INDIVIDUAL


def test_retiree_receiving_a_pension_is_not_required_to_join_employment_insurances() -> None:
    p = pid()
    v = verdict(
        job(p),
        enrolled(p, S.URBAN_EMPLOYEE_PENSION),
        enrolled(p, S.EMPLOYEE_MEDICAL),
        benefit(p, S.URBAN_EMPLOYEE_PENSION),
    )
    assert [codes(v)[i] for i in (INJ, U, MAT)] == [S.NOT_REQUIRED] * 3


def test_elderly_without_a_pension_or_enrolment_should_join_pension() -> None:
    v = verdict(birth_date=date(1950, 1, 1))
    assert codes(v)[P] is S.UNINSURED_INDIVIDUAL
    assert v.registration is RegistrationState.NEEDS_SURVEY


# -- Flags -----------------------------------------------------------------------------------------


def test_pension_paid_in_two_regions_is_duplicate_benefits() -> None:
    p = pid()
    v = verdict(
        enrolled(p, S.URBAN_EMPLOYEE_PENSION),
        benefit(p, S.URBAN_EMPLOYEE_PENSION),
        benefit(p, S.RESIDENT_PENSION, region=OTHER_REGION),
    )
    assert flags(v) == {(FlagType.DUPLICATE_BENEFITS, P)}


def test_local_pension_and_a_pension_received_elsewhere_are_duplicate_benefits() -> None:
    p = pid()
    v = verdict(
        benefit(p, S.URBAN_EMPLOYEE_PENSION),
        elsewhere(p, P, ComparisonScope.NATIONAL, benefit=True),
    )
    assert (FlagType.DUPLICATE_BENEFITS, P) in flags(v)


def test_a_stopped_benefit_is_not_paid() -> None:
    p = pid()
    v = verdict(
        benefit(p, S.URBAN_EMPLOYEE_PENSION),
        benefit(p, S.RESIDENT_PENSION, BenefitPaymentStatus.STOPPED),
    )
    assert (FlagType.DUPLICATE_BENEFITS, P) not in flags(v)


# -- Deceased --------------------------------------------------------------------------------------


def test_deceased_person_has_no_statuses_and_no_survey() -> None:
    p = pid()
    for facts, fields in (
        ((death(p),), {}),
        ((household(p, HouseholdStatus.DECEASED),), {}),
        ((), {"deceased": True}),
    ):
        v = verdict(*facts, **fields)
        assert v.deceased and set(codes(v).values()) == {None}
        assert not v.needs_survey and v.flags == ()


def test_pension_still_paid_after_death_is_a_risk_flag() -> None:
    p = pid()
    v = verdict(death(p), benefit(p, S.URBAN_EMPLOYEE_PENSION))
    assert v.flags == (Flag(type=FlagType.BENEFIT_AFTER_DEATH, insurance=P),)


# -- Scope -----------------------------------------------------------------------------------------


def test_person_who_moved_out_without_enrolment_is_out_of_scope() -> None:
    p = pid()
    situation = Situation(person=person(p), facts=(household(p, HouseholdStatus.MOVED_OUT),))
    assert evaluate(situation, TODAY) is None


def test_non_local_worker_enrolled_here_is_in_scope() -> None:
    p = pid()
    v = verdict(
        enrolled(p, S.URBAN_EMPLOYEE_PENSION, unit="U1"), household_registered_locally=False
    )
    assert codes(v)[P] is S.URBAN_EMPLOYEE_PENSION


def test_non_local_person_without_enrolment_is_out_of_scope() -> None:
    situation = Situation(person=person(household_registered_locally=False))
    assert evaluate(situation, TODAY) is None


def test_a_resident_registered_by_a_collection_is_in_scope_and_should_be_insured() -> None:
    """A newcomer the household register does not know, registered at a counter: a long-term
    resident (§1), uninsured until they enrol."""
    v = verdict(household_registered_locally=False, collections=(Collection(APPROVED),))
    assert codes(v)[P] is S.UNINSURED_INDIVIDUAL and codes(v)[M] is S.UNINSURED_INDIVIDUAL
    assert SurveyReason.UNINSURED in v.survey_reasons


def test_a_newcomer_registered_by_a_counter_is_in_scope() -> None:
    """The collection that registered them had no person_id yet: identity says where the record
    came from (registered_by_collection)."""
    v = verdict(household_registered_locally=False, registered_by_collection=True)
    assert codes(v)[M] is S.UNINSURED_INDIVIDUAL


# A migrant from another province living here on a residence permit (居住证), uninsured.
NON_LOCAL = {"household_registered_locally": False, "household_data_obtained": False,
             "household_region_code": "530102"}  # fmt: skip


def test_an_uninsured_resident_permit_holder_is_in_scope_and_should_be_insured() -> None:
    """Public security's 外来常住人员 (§1 "other long-term residents"): uninsured, they should join
    pension and medical (91); not employed by a unit, the rest are not required (95)."""
    p = pid()
    v = verdict(permit(p), pid=p, **NON_LOCAL)
    assert codes(v) == {
        P: S.UNINSURED_INDIVIDUAL,
        M: S.UNINSURED_INDIVIDUAL,
        INJ: S.NOT_REQUIRED,
        U: S.NOT_REQUIRED,
        MAT: S.NOT_REQUIRED,
    }
    assert v.needs_survey and SurveyReason.UNINSURED in v.survey_reasons
    assert v.region_code == "520102"


def test_a_resident_permit_holder_employed_by_a_unit_is_92_where_not_enrolled() -> None:
    p = pid()
    v = verdict(permit(p), job(p), pid=p, **NON_LOCAL)
    assert set(codes(v).values()) == {S.UNINSURED_BY_EMPLOYER}


@pytest.mark.parametrize(
    ("status", "until"),
    [
        (ResidencePermitStatus.EXPIRED, date(2025, 3, 1)),
        (ResidencePermitStatus.CANCELLED, date(2029, 3, 1)),
        (ResidencePermitStatus.VALID, TODAY - timedelta(days=1)),
    ],
    ids=["expired", "cancelled", "valid-but-past-its-end-date"],
)
def test_a_permit_no_longer_current_keeps_no_uninsured_person_in_scope(
    status: ResidencePermitStatus, until: date
) -> None:
    p = pid()
    gone = Situation(person=person(p, **NON_LOCAL), facts=(permit(p, status, until=until),))
    assert evaluate(gone, TODAY) is None
    # Insured here, they stay in scope by their enrolment.
    insured = (permit(p, status, until=until), enrolled(p, S.URBAN_EMPLOYEE_PENSION, unit="U1"))
    assert evaluate(Situation(person=person(p, **NON_LOCAL), facts=insured), TODAY) is not None


def test_the_day_after_a_permit_ends_the_person_is_judged_again() -> None:
    p = pid()
    situation = Situation(person=person(p, **NON_LOCAL), facts=(permit(p, until=TODAY),))
    assert evaluate(situation, TODAY) is not None
    assert next_recheck(situation, TODAY) == TODAY + timedelta(days=1)
    assert evaluate(situation, TODAY + timedelta(days=1)) is None


def test_a_collection_does_not_bring_back_someone_who_moved_out() -> None:
    p = pid()
    situation = Situation(
        person=person(p),
        facts=(household(p, HouseholdStatus.MOVED_OUT),),
        collections=(Collection(APPROVED),),
    )
    assert evaluate(situation, TODAY) is None


# -- Needs survey ----------------------------------------------------------------------------------


def test_missing_phone_inaccurate_name_and_identity_conflict_are_survey_reasons() -> None:
    p = pid()
    insured = (enrolled(p, S.RESIDENT_PENSION), enrolled(p, S.RESIDENT_MEDICAL))
    inaccurate = (
        InaccurateItem(item=RegistrationItem.NAME, reason="姓名与户籍登记不一致（社保系统）"),
    )
    v = verdict(
        *insured,
        pid=p,
        missing=(RegistrationItem.PHONE,),
        inaccurate=inaccurate,
        identity_conflict=True,
    )
    assert v.survey_reasons == (
        SurveyReason.MISSING_INFO,
        SurveyReason.INACCURATE_INFO,
        SurveyReason.IDENTITY_CONFLICT,
    )
    assert v.registration is RegistrationState.NEEDS_SURVEY


# -- Collections: resolved reasons and verified statuses -------------------------------------------

APPROVED = OBSERVED + timedelta(days=1)


def test_a_survey_verifying_an_emigrant_waiting_to_leave_as_93_confirms_the_registration() -> None:
    """ "a survey that verifies a person as legitimately uninsured records the verified reason
    and confirms the registration (counts under 'verified and registered')"."""
    p = pid()
    medical = enrolled(p, S.RESIDENT_MEDICAL)
    verified = Collection(
        APPROVED,
        verified_statuses=(VerifiedStatus(insurance=P, status=S.UNINSURED_MILITARY_ABROAD_PRISON),),
    )
    before = verdict(medical)
    after = verdict(medical, collections=(verified,))
    assert before.survey_reasons == (SurveyReason.UNINSURED,)
    assert codes(after)[P] is S.UNINSURED_MILITARY_ABROAD_PRISON
    assert (after.registration, after.needs_survey) == (RegistrationState.VERIFIED, False)


def test_a_verified_individual_refusal_stays_91_but_needs_no_more_survey() -> None:
    p = pid()
    verified = Collection(
        APPROVED, verified_statuses=(VerifiedStatus(insurance=P, status=S.UNINSURED_INDIVIDUAL),)
    )
    v = verdict(enrolled(p, S.RESIDENT_MEDICAL), collections=(verified,))
    assert codes(v)[P] is S.UNINSURED_INDIVIDUAL
    assert v.registration is RegistrationState.VERIFIED


def test_a_collection_removes_the_reasons_it_resolves_and_only_those() -> None:
    p = pid()
    collection = Collection(APPROVED, resolved_reasons=(SurveyReason.MISSING_INFO,))
    v = verdict(
        enrolled(p, S.RESIDENT_PENSION, SUSPENDED),
        enrolled(p, S.RESIDENT_MEDICAL),
        missing=(RegistrationItem.PHONE,),
        collections=(collection,),
    )
    assert v.survey_reasons == (SurveyReason.INTERRUPTED,)
    unresolved = verdict(missing=(RegistrationItem.PHONE,), birth_date=date(2015, 1, 1))
    assert SurveyReason.MISSING_INFO in unresolved.survey_reasons


def test_a_resolution_counts_until_a_business_system_reports_something_newer() -> None:
    p = pid()
    later = OBSERVED + timedelta(days=2)
    collection = Collection(APPROVED, resolved_reasons=(SurveyReason.INTERRUPTED,))
    resolved = verdict(
        enrolled(p, S.RESIDENT_PENSION, SUSPENDED),
        enrolled(p, S.RESIDENT_MEDICAL),
        collections=(collection,),
    )
    renewed = verdict(
        enrolled(p, S.RESIDENT_PENSION, SUSPENDED, observed_at=later),
        enrolled(p, S.RESIDENT_MEDICAL),
        collections=(collection,),
    )
    assert resolved.registration is RegistrationState.VERIFIED
    assert renewed.survey_reasons == (SurveyReason.INTERRUPTED,)


def test_an_enrolment_found_by_the_systems_outranks_a_verified_reason() -> None:
    p = pid()
    verified = Collection(
        APPROVED, verified_statuses=(VerifiedStatus(insurance=P, status=S.UNINSURED_INDIVIDUAL),)
    )
    v = verdict(
        enrolled(p, S.RESIDENT_PENSION), enrolled(p, S.RESIDENT_MEDICAL), collections=(verified,)
    )
    assert codes(v)[P] is S.RESIDENT_PENSION


# -- The scheduled re-check ------------------------------------------------------------------------


def test_next_recheck_is_the_16th_birthday_or_a_date_the_rules_compare_with() -> None:
    p = pid()
    child = Situation(person=person(p, birth_date=date(2012, 5, 4)))
    assert next_recheck(child, TODAY) == date(2028, 5, 4)
    prisoner = Situation(person=person(p), facts=(custody(p, released=date(2027, 1, 5)),))
    assert next_recheck(prisoner, TODAY) == date(2027, 1, 5)
    adult = Situation(person=person(p), facts=(custody(p, released=date(2025, 1, 5)),))
    assert next_recheck(adult, TODAY) is None


def test_the_verdict_does_not_depend_on_the_order_of_the_facts() -> None:
    p = pid()
    facts = (
        job(p),
        enrolled(p, S.URBAN_EMPLOYEE_PENSION, unit="U1"),
        enrolled(p, S.RESIDENT_PENSION),
        elsewhere(p, M, ComparisonScope.PROVINCE),
        benefit(p, S.RESIDENT_PENSION),
        household(p, HouseholdStatus.NORMAL),
    )
    forward = verdict(*facts, pid=p)
    backward = verdict(*reversed(facts), pid=p)
    assert forward == backward


def test_household_status_follows_the_newest_observation() -> None:
    p = pid()
    earlier = household(p, HouseholdStatus.MILITARY_SERVICE, observed_at=OBSERVED)
    later = household(p, HouseholdStatus.NORMAL, observed_at=datetime(2026, 11, 21, tzinfo=UTC))
    assert codes(verdict(later, earlier))[P] is S.UNINSURED_INDIVIDUAL


def test_a_verified_reason_does_not_hide_an_interruption_the_systems_report() -> None:
    p = pid()
    verified = Collection(
        APPROVED, verified_statuses=(VerifiedStatus(insurance=P, status=S.UNINSURED_INDIVIDUAL),)
    )
    v = verdict(
        enrolled(p, S.RESIDENT_PENSION, SUSPENDED),
        enrolled(p, S.RESIDENT_MEDICAL),
        collections=(verified,),
    )
    assert codes(v)[P] is S.INTERRUPTED
    assert v.survey_reasons == (SurveyReason.INTERRUPTED,)
    assert v.registration is RegistrationState.NEEDS_SURVEY
