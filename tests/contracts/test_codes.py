"""The code tables of domain.md §4 and §7, the API's words (api.md) and the source systems' codes
(sources.md)."""

from __future__ import annotations

import re
from enum import StrEnum

import pytest
from pydantic import BaseModel

from canbao_contracts import codes
from canbao_contracts.codes import (
    SCHEME_TIER,
    CertificateType,
    FlagType,
    Gender,
    HouseholdStatus,
    HouseholdType,
    Insurance,
    MedicalInsuredStatus,
    Participation,
    PersonalIdentity,
    RegistrationItem,
    RegistrationState,
    SchemeTier,
    SourceInsuranceType,
    StatusCode,
    StudentStatus,
    SurveyReason,
    UnitType,
    codes_for,
    highest_ranked_scheme,
)

CODE_TABLES = [
    table
    for table in vars(codes).values()
    if isinstance(table, type) and issubclass(table, StrEnum) and len(table) > 0
]
CHINESE = re.compile(r"[\u4e00-\u9fff]")
SHARED = ["81", "82", "91", "92", "93", "94", "95"]


def values(table: type[StrEnum]) -> list[str]:
    return [member.value for member in table]


def spelled(table: type[StrEnum]) -> str:
    """The codes of a table as domain.md lists them: "10 30 50 …"."""
    return " ".join(values(table))


def values_of(status_codes: tuple[StatusCode, ...]) -> list[str]:
    return [code.value for code in status_codes]


@pytest.mark.parametrize("table", CODE_TABLES, ids=lambda table: table.__name__)
def test_every_code_has_a_chinese_label(table: type[StrEnum]) -> None:
    for member in table:
        label = getattr(member, "label", "")
        assert CHINESE.search(label), f"{table.__name__}.{member.name} has no Chinese label"


@pytest.mark.parametrize("table", CODE_TABLES, ids=lambda table: table.__name__)
def test_labels_are_distinct_within_a_table(table: type[StrEnum]) -> None:
    labels = [getattr(member, "label", "") for member in table]
    assert len(set(labels)) == len(labels)


def test_person_and_unit_tables_hold_the_codes_of_section_4() -> None:
    assert values(Gender) == ["1", "2"]
    assert spelled(UnitType) == "10 30 50 55 56 57 70 80 81 82 83 84 85 86 90 91 93 94 95 96 99"
    assert spelled(PersonalIdentity) == "11 12 13 17 21 24 27 31 37 51 54 70 80 90"
    assert spelled(HouseholdType) == "10 11 12 20 21 22 30 31 32 33 34 40 41 42 50 51 52"


def test_labels_use_the_official_terms() -> None:
    assert Gender.MALE.label == "男" and Gender.FEMALE.label == "女"
    assert UnitType.INDIVIDUAL_BUSINESS_WITH_EMPLOYEES.label == "有雇工的个体工商户"
    assert PersonalIdentity.MANAGED_AS_CIVIL_SERVANT.label == "参照公务员法管理人员"
    assert StatusCode("11").label == "城镇企业职工基本养老保险"
    assert StatusCode("27").label == "城乡居民基本医疗保险"


def test_shared_status_codes_use_the_documents_wording() -> None:
    assert {code: StatusCode(code).label for code in SHARED} == {
        "81": "省内异地参保",
        "82": "省外参保",
        "91": "个人原因未参保",
        "92": "单位未参保",
        "93": "因服兵役、出国定居、服刑等原因未参保",
        "94": "中断缴费",
        "95": "不需参加该险种",
    }


def test_each_insurance_names_the_field_of_its_status_code() -> None:
    assert {insurance.value: insurance.status_field for insurance in Insurance} == {
        "pension": "AIC003",
        "medical": "AKC003",
        "injury": "ALC003",
        "unemployment": "AJC003",
        "maternity": "AMC003",
    }


def test_pension_has_five_schemes_and_the_shared_codes() -> None:
    assert values_of(codes_for(Insurance.PENSION)) == ["11", "12", "13", "14", "15", *SHARED]


def test_medical_has_seven_schemes_and_the_shared_codes() -> None:
    assert values_of(codes_for(Insurance.MEDICAL)) == [
        *["21", "22", "23", "24", "25", "26", "27"],
        *SHARED,
    ]


def test_injury_unemployment_and_maternity_have_one_insured_code_each() -> None:
    assert values_of(codes_for(Insurance.INJURY)) == ["30", *SHARED]
    assert values_of(codes_for(Insurance.UNEMPLOYMENT)) == ["40", *SHARED]
    assert values_of(codes_for(Insurance.MATERNITY)) == ["50", *SHARED]


def test_every_status_code_belongs_to_an_insurance() -> None:
    assert StatusCode("24").insurances == {Insurance.MEDICAL}
    assert StatusCode("94").insurances == set(Insurance)
    assert StatusCode("94").insurance is None


def test_insured_locally_or_elsewhere_counts_as_insured() -> None:
    insured = [code.value for code in StatusCode if code.is_insured]
    assert " ".join(insured) == "11 12 13 14 15 21 22 23 24 25 26 27 30 40 50 81 82"


def test_should_be_insured_but_uninsured_is_91_and_92() -> None:
    assert {code.value for code in StatusCode if code.is_uninsured_but_should_be} == {"91", "92"}


@pytest.mark.parametrize(
    ("aae140", "status_code", "insurance"),
    [
        ("110", "11", Insurance.PENSION),
        ("120", "13", Insurance.PENSION),
        ("140", "14", Insurance.PENSION),
        ("150", "15", Insurance.PENSION),
        ("170", "12", Insurance.PENSION),
        ("210", "40", Insurance.UNEMPLOYMENT),
        ("310", "21", Insurance.MEDICAL),
        ("360", "24", Insurance.MEDICAL),
        ("390", "27", Insurance.MEDICAL),
        ("410", "30", Insurance.INJURY),
        ("510", "50", Insurance.MATERNITY),
    ],
)
def test_source_insurance_type_gives_the_status_code_of_section_7(
    aae140: str, status_code: str, insurance: Insurance
) -> None:
    source_type = SourceInsuranceType(aae140)
    assert source_type.status_code == status_code
    assert source_type.insurance is insurance


def test_section_7_lists_eleven_source_insurance_types() -> None:
    assert len(SourceInsuranceType) == 11


def test_employee_scheme_outranks_government_institution_resident_and_other() -> None:
    pension = [StatusCode("15"), StatusCode("12"), StatusCode("13"), StatusCode("11")]
    assert highest_ranked_scheme(pension) is StatusCode.URBAN_EMPLOYEE_PENSION
    assert highest_ranked_scheme(pension[:3]) is StatusCode.GOVERNMENT_INSTITUTION_PENSION
    assert highest_ranked_scheme(pension[:2]) is StatusCode.RESIDENT_PENSION


def test_employee_medical_outranks_public_funded_which_outranks_resident_medical() -> None:
    assert highest_ranked_scheme([StatusCode("27"), StatusCode("21")]) == "21"
    assert highest_ranked_scheme([StatusCode("27"), StatusCode("24")]) == "24"
    assert highest_ranked_scheme([StatusCode("26"), StatusCode("23")]) == "23"


def test_the_ranking_does_not_depend_on_arrival_order() -> None:
    schemes = [StatusCode("22"), StatusCode("23"), StatusCode("27")]  # three resident schemes
    assert highest_ranked_scheme(schemes) == highest_ranked_scheme(reversed(schemes)) == "22"


def test_every_scheme_code_has_a_rank_and_no_shared_code_has_one() -> None:
    assert {code for code in StatusCode if code.insurance is not None} == set(SCHEME_TIER)
    assert all(StatusCode(code).scheme_tier is None for code in SHARED)
    assert StatusCode("13").scheme_tier is SchemeTier.GOVERNMENT_INSTITUTION


def test_ranking_refuses_a_shared_code_or_nothing() -> None:
    with pytest.raises(ValueError, match="scheme codes"):
        highest_ranked_scheme([StatusCode("11"), StatusCode("81")])
    with pytest.raises(ValueError, match="scheme codes"):
        highest_ranked_scheme([])


def test_registration_items_carry_their_indicator_code_and_label() -> None:
    assert (RegistrationItem.PHONE.code, RegistrationItem.PHONE.label) == ("AAE005", "联系电话")
    assert (RegistrationItem.NAME.code, RegistrationItem.NAME.label) == ("AAC003", "姓名")
    assert RegistrationItem("id_number").code == "AAC002"
    assert RegistrationItem.HOUSEHOLD_PLACE.label == "户籍所在地"


def test_required_registration_items_are_the_tables_y_column_and_the_phone() -> None:
    required = {item.code for item in RegistrationItem if item.required}
    assert required == {"AAC003", "AAC004", "AAC002", "AAC006", "AAC010", "AAE006", "AAE005"}


def test_api_words_are_exactly_those_of_api_md() -> None:
    assert values(Insurance) == ["pension", "medical", "injury", "unemployment", "maternity"]
    assert values(SurveyReason) == [
        "uninsured",
        "partially_insured",
        "interrupted",
        "missing_info",
        "inaccurate_info",
        "identity_conflict",
    ]
    assert values(FlagType) == ["duplicate_insurance", "duplicate_benefits", "benefit_after_death"]
    assert values(RegistrationState) == ["confirmed", "needs_survey", "verified"]


def test_source_system_codes_are_those_of_sources_md() -> None:
    assert values(Participation) == ["1", "2", "3"]
    assert values(HouseholdStatus) == ["0", "1", "2", "3", "4", "9"]
    assert values(MedicalInsuredStatus) == ["1", "2", "4"]
    assert values(CertificateType) == ["01", "02", "03", "04"]
    assert values(StudentStatus) == ["1", "2", "3"]
    assert HouseholdStatus.DECEASED.label == "死亡"


class _Popup(BaseModel):
    pension: StatusCode
    reasons: list[SurveyReason]


def test_codes_travel_in_event_models_as_their_bare_values() -> None:
    popup = _Popup.model_validate_json('{"pension": "11", "reasons": ["uninsured"]}')

    assert popup.pension is StatusCode.URBAN_EMPLOYEE_PENSION
    assert popup.model_dump_json() == '{"pension":"11","reasons":["uninsured"]}'
    schema = _Popup.model_json_schema()["$defs"]["StatusCode"]
    assert schema["enum"] == values(StatusCode)
