"""domain.md §5 as the generator's ground truth reads it (simulators/expected.py): one small
scenario per rule, including the rule order and the "our convention" decisions the matching
service must share."""

from __future__ import annotations

from datetime import date

from canbao_contracts.codes import (
    FlagType,
    HouseholdStatus,
    Insurance,
    RegistrationState,
    StatusCode,
    SurveyReason,
)
from canbao_stack.simulators.expected import (
    BenefitFact,
    CrossRegionFact,
    EnrolmentFact,
    Facts,
    Outcome,
    State,
    outcome,
)

TODAY = date(2026, 11, 23)
ADULT = date(1980, 5, 1)
REGION, OTHER_REGION = "520102", "520302"
P, M, INJ, U, MAT = (
    Insurance.PENSION,
    Insurance.MEDICAL,
    Insurance.INJURY,
    Insurance.UNEMPLOYMENT,
    Insurance.MATERNITY,
)


def person(**facts: object) -> Facts:
    """A living local resident with a household registration and nothing else, unless told."""
    base: dict[str, object] = {
        "birth_date": ADULT,
        "household_registered": True,
        "household_status": HouseholdStatus.NORMAL,
        "death_recorded": False,
        "in_custody": False,
        "employment_registered": False,
        "studying": False,
    }
    return Facts(**(base | facts))  # type: ignore[arg-type]


def enrolled(
    scheme: StatusCode, state: State = "paying", *, region: str = REGION, by_unit: bool = False
) -> EnrolmentFact:
    assert scheme.insurance is not None
    return EnrolmentFact(scheme.insurance, scheme, region, state, by_unit)


def unit_employee(*schemes: StatusCode, state: State = "paying") -> Facts:
    return person(
        employment_registered=True,
        enrolments=tuple(enrolled(s, state, by_unit=True) for s in schemes),
    )


def statuses(facts: Facts, on: date = TODAY) -> dict[Insurance, StatusCode | None]:
    return outcome(facts, on).statuses


ALL_FIVE = (StatusCode.URBAN_EMPLOYEE_PENSION, StatusCode.EMPLOYEE_MEDICAL,
            StatusCode.INJURY_INSURED, StatusCode.UNEMPLOYMENT_INSURED,
            StatusCode.MATERNITY_INSURED)  # fmt: skip


# -- Rule 1: active local enrolment --------------------------------------------------------------


def test_fully_insured_unit_employee_is_confirmed_directly() -> None:
    result = outcome(unit_employee(*ALL_FIVE), TODAY)
    assert list(result.statuses.values()) == list(ALL_FIVE)
    assert result.registration is RegistrationState.CONFIRMED
    assert not result.needs_survey and result.flags == ()


def test_employee_and_resident_pension_together_are_a_duplicate_shown_as_employee_pension() -> None:
    facts = person(
        enrolments=(
            enrolled(StatusCode.RESIDENT_PENSION),
            enrolled(StatusCode.URBAN_EMPLOYEE_PENSION),
        )
    )
    result = outcome(facts, TODAY)
    assert result.statuses[P] == StatusCode.URBAN_EMPLOYEE_PENSION
    assert (FlagType.DUPLICATE_INSURANCE, P) in result.flags


def test_resident_medical_in_two_cities_is_a_duplicate() -> None:
    facts = person(
        enrolments=(
            enrolled(StatusCode.RESIDENT_MEDICAL),
            enrolled(StatusCode.RESIDENT_MEDICAL, region=OTHER_REGION),
        )
    )
    result = outcome(facts, TODAY)
    assert result.statuses[M] == StatusCode.RESIDENT_MEDICAL
    assert result.flags == ((FlagType.DUPLICATE_INSURANCE, M),)


def test_the_same_enrolment_seen_twice_is_not_a_duplicate() -> None:
    """Our convention: local enrolments count once per (scheme, region)."""
    same = enrolled(StatusCode.RESIDENT_MEDICAL)
    assert outcome(person(enrolments=(same, same)), TODAY).flags == ()


def test_land_expropriated_and_resident_pension_show_the_resident_scheme() -> None:
    facts = person(
        enrolments=(
            enrolled(StatusCode.LAND_EXPROPRIATED_FARMERS_PENSION),
            enrolled(StatusCode.RESIDENT_PENSION),
        )
    )
    assert statuses(facts)[P] == StatusCode.RESIDENT_PENSION  # resident > other


# -- Rule 2: enrolment reported elsewhere ---------------------------------------------------------


def migrant(
    scope: str, *insurances: Insurance, state: str = "paying"
) -> tuple[CrossRegionFact, ...]:
    return tuple(CrossRegionFact(i, scope, "440106", state, False) for i in insurances)  # type: ignore[arg-type]


def test_migrant_worker_insured_in_guangdong_is_82() -> None:
    facts = person(cross_region=migrant("national", P, M, INJ, U, MAT))
    assert set(statuses(facts).values()) == {StatusCode.INSURED_IN_ANOTHER_PROVINCE}


def test_insured_in_another_city_of_the_province_is_81() -> None:
    assert statuses(person(cross_region=migrant("province", P)))[P] == StatusCode("81")


def test_local_resident_medical_and_medical_in_guangdong_are_a_duplicate() -> None:
    facts = person(
        enrolments=(enrolled(StatusCode.RESIDENT_MEDICAL),), cross_region=migrant("national", M)
    )
    result = outcome(facts, TODAY)
    assert result.statuses[M] == StatusCode.RESIDENT_MEDICAL  # rule 1 before rule 2
    assert result.flags == ((FlagType.DUPLICATE_INSURANCE, M),)


# -- Rule 3: suspended ----------------------------------------------------------------------------


def test_employer_in_arrears_makes_every_insurance_interrupted() -> None:
    result = outcome(unit_employee(*ALL_FIVE, state="suspended"), TODAY)
    assert set(result.statuses.values()) == {StatusCode.INTERRUPTED}
    assert result.survey_reasons == (SurveyReason.INTERRUPTED,)


def test_terminated_enrolment_is_no_enrolment() -> None:
    facts = person(enrolments=(enrolled(StatusCode.RESIDENT_PENSION, "terminated"),))
    assert statuses(facts)[P] == StatusCode.UNINSURED_INDIVIDUAL


def test_suspended_pension_of_a_prisoner_is_94_not_93() -> None:
    """Rule 3 comes before rule 4: the interruption is what the registry shows."""
    facts = person(
        in_custody=True, enrolments=(enrolled(StatusCode.RESIDENT_PENSION, "suspended"),)
    )
    result = statuses(facts)
    assert result[P] == StatusCode.INTERRUPTED
    assert result[M] == StatusCode.UNINSURED_MILITARY_ABROAD_PRISON


def test_suspended_elsewhere_is_interrupted() -> None:
    facts = person(cross_region=migrant("national", P, state="suspended"))
    assert statuses(facts)[P] == StatusCode.INTERRUPTED


# -- Rule 4: not insured --------------------------------------------------------------------------


def test_prisoner_soldier_and_emigrant_are_93_in_every_insurance() -> None:
    for facts in (
        person(in_custody=True),
        person(household_status=HouseholdStatus.MILITARY_SERVICE),
        person(household_status=HouseholdStatus.SETTLED_ABROAD),
    ):
        result = outcome(facts, TODAY)
        assert set(result.statuses.values()) == {StatusCode.UNINSURED_MILITARY_ABROAD_PRISON}
        assert not result.needs_survey


def test_prisoner_under_16_is_93_not_95() -> None:
    """Our convention: rule 4's reasons are tried in the order §5 lists them."""
    facts = person(in_custody=True, birth_date=date(2012, 1, 1))
    assert statuses(facts)[P] == StatusCode.UNINSURED_MILITARY_ABROAD_PRISON


def test_student_is_not_required_to_join_pension() -> None:
    facts = person(
        studying=True,
        birth_date=date(2006, 3, 1),
        enrolments=(enrolled(StatusCode.RESIDENT_MEDICAL),),
    )
    result = outcome(facts, TODAY)
    assert result.statuses == {
        P: StatusCode("95"),
        M: StatusCode("27"),
        INJ: StatusCode("95"),
        U: StatusCode("95"),
        MAT: StatusCode("95"),
    }
    assert result.registration is RegistrationState.CONFIRMED


def test_child_under_16_is_not_required_to_join_pension_but_must_have_medical() -> None:
    result = outcome(person(birth_date=date(2015, 6, 1)), TODAY)
    assert result.statuses[P] == StatusCode.NOT_REQUIRED
    assert result.statuses[M] == StatusCode.UNINSURED_INDIVIDUAL
    assert result.survey_reasons == (SurveyReason.UNINSURED,)


def test_turning_16_makes_pension_required() -> None:
    facts = person(birth_date=date(2010, 11, 23), enrolments=(enrolled(StatusCode("27")),))
    assert statuses(facts, date(2026, 11, 22))[P] == StatusCode.NOT_REQUIRED
    assert statuses(facts, date(2026, 11, 23))[P] == StatusCode.UNINSURED_INDIVIDUAL


def test_graduated_student_must_join_pension() -> None:
    assert statuses(person(studying=False, birth_date=date(2003, 7, 1)))[P] == StatusCode("91")


def test_retiree_receiving_a_pension_is_not_required_in_unemployment_injury_maternity() -> None:
    facts = person(
        enrolments=(
            enrolled(StatusCode.URBAN_EMPLOYEE_PENSION),
            enrolled(StatusCode.EMPLOYEE_MEDICAL),
        ),
        benefits=(BenefitFact(P, REGION, True),),
    )
    result = outcome(facts, TODAY)
    assert [result.statuses[i] for i in (INJ, U, MAT)] == [StatusCode.NOT_REQUIRED] * 3
    assert result.registration is RegistrationState.CONFIRMED


def test_retiree_employed_by_a_unit_is_still_not_required_in_unemployment() -> None:
    """95 ("receiving a pension") comes before 92 ("employed by a unit")."""
    facts = person(
        employment_registered=True,
        enrolments=(enrolled(StatusCode.URBAN_EMPLOYEE_PENSION),),
        benefits=(BenefitFact(P, REGION, True),),
    )
    assert statuses(facts)[U] == StatusCode.NOT_REQUIRED


def test_farmer_not_enrolled_is_91_in_pension_and_95_in_unemployment() -> None:
    facts = person(enrolments=(enrolled(StatusCode.RESIDENT_MEDICAL),))
    result = outcome(facts, TODAY)
    assert result.statuses[P] == StatusCode.UNINSURED_INDIVIDUAL
    assert result.statuses[U] == StatusCode.NOT_REQUIRED
    assert result.survey_reasons == (SurveyReason.UNINSURED,)


def test_employer_enrolling_only_pension_and_medical_leaves_92_in_the_others() -> None:
    result = outcome(unit_employee(StatusCode("11"), StatusCode("21")), TODAY)
    assert [result.statuses[i] for i in (INJ, U, MAT)] == [StatusCode.UNINSURED_BY_EMPLOYER] * 3
    assert result.survey_reasons == (SurveyReason.PARTIALLY_INSURED,)


def test_unit_enrolment_in_another_insurance_counts_as_employed_by_a_unit() -> None:
    """92's definition: "or the unit enrols him in another insurance" (no job registration)."""
    facts = person(enrolments=(enrolled(StatusCode.INJURY_INSURED, by_unit=True),))
    result = statuses(facts)
    assert result[P] == result[M] == result[U] == StatusCode.UNINSURED_BY_EMPLOYER


def test_unit_employee_not_enrolled_at_all_is_uninsured_and_partially_insured() -> None:
    """Our convention: pension 92 is both reasons."""
    result = outcome(person(employment_registered=True), TODAY)
    assert set(result.statuses.values()) == {StatusCode.UNINSURED_BY_EMPLOYER}
    assert result.survey_reasons == (SurveyReason.UNINSURED, SurveyReason.PARTIALLY_INSURED)


# -- Flags, deaths, scope, survey reasons ---------------------------------------------------------


def test_employee_and_resident_pension_paid_together_are_duplicate_benefits() -> None:
    facts = person(
        enrolments=(enrolled(StatusCode("11")), enrolled(StatusCode("12"))),
        benefits=(BenefitFact(P, REGION, True), BenefitFact(P, REGION, True)),
    )
    flags = outcome(facts, TODAY).flags
    assert (FlagType.DUPLICATE_BENEFITS, P) in flags
    assert (FlagType.DUPLICATE_INSURANCE, P) in flags


def test_deceased_person_has_no_statuses_and_a_pension_still_paid_is_a_risk() -> None:
    facts = person(
        household_status=HouseholdStatus.DECEASED,
        enrolments=(enrolled(StatusCode("12"), "terminated"),),
        benefits=(BenefitFact(P, REGION, True),),
    )
    result = outcome(facts, TODAY)
    assert result == Outcome(
        False, True, dict.fromkeys(Insurance), ((FlagType.BENEFIT_AFTER_DEATH, P),), (), None
    )


def test_cremation_record_alone_means_deceased() -> None:
    result = outcome(person(death_recorded=True), TODAY)
    assert result.deceased and set(result.statuses.values()) == {None}
    assert not result.needs_survey and result.flags == ()


def test_non_local_worker_whose_enrolments_ended_is_out_of_scope() -> None:
    facts = person(
        household_registered=False,
        household_status=None,
        enrolments=(enrolled(StatusCode("11"), "terminated"),),
    )
    result = outcome(facts, TODAY)
    assert not result.in_scope and result.registration is None and not result.needs_survey


def test_passport_holder_insured_here_is_in_scope() -> None:
    facts = person(
        household_registered=False,
        household_status=None,
        enrolments=(enrolled(StatusCode.RESIDENT_MEDICAL),),
        missing=("household_place", "residence_address", "phone"),
    )
    result = outcome(facts, TODAY)
    assert result.in_scope
    assert result.survey_reasons == (SurveyReason.UNINSURED, SurveyReason.MISSING_INFO)


def test_gaps_and_identity_conflict_need_a_survey_even_when_fully_insured() -> None:
    facts = unit_employee(*ALL_FIVE)._replace(
        missing=("phone",), inaccurate=("name",), identity_conflict=True
    )
    result = outcome(facts, TODAY)
    assert result.survey_reasons == (
        SurveyReason.MISSING_INFO,
        SurveyReason.INACCURATE_INFO,
        SurveyReason.IDENTITY_CONFLICT,
    )
    assert result.registration is RegistrationState.NEEDS_SURVEY


# -- Non-local residents on a residence permit (domain.md §1 "other long-term residents") ---------


def test_uninsured_resident_permit_holder_is_in_scope_and_should_be_insured() -> None:
    result = outcome(
        person(
            household_registered=False, household_status=None, permit_valid_until=date(2029, 3, 1)
        ),
        TODAY,
    )
    assert result.in_scope
    assert result.statuses[Insurance.PENSION] is StatusCode.UNINSURED_INDIVIDUAL
    assert result.statuses[Insurance.MEDICAL] is StatusCode.UNINSURED_INDIVIDUAL
    assert result.statuses[Insurance.INJURY] is StatusCode.NOT_REQUIRED
    assert result.needs_survey


def test_a_permit_past_its_end_date_keeps_no_uninsured_person_in_scope() -> None:
    facts = person(household_registered=False, household_status=None, permit_valid_until=TODAY)
    assert outcome(facts, TODAY).in_scope
    assert not outcome(facts, date(TODAY.year + 1, 1, 1)).in_scope
    assert not outcome(person(household_registered=False, household_status=None), TODAY).in_scope
