"""The code tables of domain.md §4 and §7, the API's vocabulary (api.md) and the source systems'
status codes (sources.md), as string enums.

A member's value is the official code, exactly as it travels in events, tables and the API
(`StatusCode("11")`, `Insurance("pension")`); `.label` is its Simplified Chinese name as the
registration documents print it. Only data lives here: the rules that choose a code are the
matching service's (domain.md §5).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Final, Self


class LabelledCode(StrEnum):
    """A code and its Chinese label: `MALE = "1", "男"`."""

    label: str

    # The defaults only let mypy accept the value lookup `Gender("1")`; Python never calls
    # `__new__` after the class is built, and every member below gives its label.
    def __new__(cls, code: str, label: str = "") -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.label = label
        return member


# -- Person and unit (domain.md §4, LD/T 92-2013) -------------------------------------------------


class Gender(LabelledCode):
    """AAC004, GB/T 2261.1 (its codes 0 "unknown" and 9 "unstated" are not used by the registry)."""

    MALE = "1", "男"
    FEMALE = "2", "女"


class UnitType(LabelledCode):
    """AAB019 unit type."""

    ENTERPRISE = "10", "企业"
    GOVERNMENT_ORGAN = "30", "机关"
    PUBLIC_INSTITUTION = "50", "事业单位"
    FULLY_FUNDED_INSTITUTION = "55", "全额拨款事业单位"
    PARTIALLY_FUNDED_INSTITUTION = "56", "差额拨款事业单位"
    SELF_FUNDED_INSTITUTION = "57", "自收自支事业单位"
    SOCIAL_GROUP = "70", "社会团体"
    SELF_DEFINED = "80", "自定义机构"
    INDIVIDUAL_BUSINESS_WITH_EMPLOYEES = "81", "有雇工的个体工商户"
    LAW_FIRM = "82", "律师事务所"
    ACCOUNTING_FIRM = "83", "会计师事务所"
    REPRESENTATIVE_OFFICE_IN_CHINA = "84", "驻华代表机构"
    FOREIGN_NEWS_AGENCY = "85", "外国驻华新闻机构"
    FOREIGN_COMPANY_REPRESENTATIVE_OFFICE = "86", "外国企业常驻代表机构"
    OTHER_ORGANISATION = "90", "其他组织机构"
    PRIVATE_NON_ENTERPRISE_UNIT = "91", "民办非企业单位"
    FOUNDATION = "93", "基金会"
    RELIGIOUS_VENUE = "94", "宗教活动场所"
    VILLAGE_COMMITTEE = "95", "村民委员会"
    URBAN_RESIDENTS_COMMITTEE = "96", "城市居民委员会"
    OTHER = "99", "其他"


class EmploymentStatus(LabelledCode):
    """就业状态 as the registration form asks it (经办规程 attachment 1): employed by a unit (then
    工作单位全称, the `unit_name` item), or without a unit: a preschool child, a student, retired or
    receiving a pension, other. The words are identity's (golden employment status)."""

    EMPLOYED = "employed", "单位就业"
    PRESCHOOL = "preschool", "学龄前儿童"
    STUDENT = "student", "在校学生"
    RETIRED = "retired", "退休或领取养老金"
    OTHER = "other", "其他"


class PersonalIdentity(LabelledCode):
    """AAC012 personal identity."""

    CIVIL_SERVANT = "11", "公务员"
    MANAGED_AS_CIVIL_SERVANT = "12", "参照公务员法管理人员"
    PROFESSIONAL_TECHNICAL_STAFF = "13", "专业技术人员"
    CLERK = "17", "办事人员和有关人员"
    ENTERPRISE_MANAGER = "21", "企业管理人员"
    WORKER = "24", "工人"
    FARMER = "27", "农民"
    STUDENT = "31", "学生"
    ACTIVE_SERVICEMAN = "37", "现役军人"
    FREELANCER = "51", "自由职业者"
    SELF_EMPLOYED = "54", "个体经营者"
    UNEMPLOYED = "70", "无业人员"
    RETIRED = "80", "退（离）休人员"
    OTHER = "90", "其他"


class HouseholdType(LabelledCode):
    """AAC009 household (hukou) type."""

    NON_AGRICULTURAL = "10", "非农业户口（城镇）"
    LOCAL_URBAN = "11", "本地非农业户口（本地城镇）"
    NON_LOCAL_URBAN = "12", "外地非农业户口（外地城镇）"
    AGRICULTURAL = "20", "农业户口（农村）"
    LOCAL_RURAL = "21", "本地农业户口（本地农村）"
    NON_LOCAL_RURAL = "22", "外地农业户口（外地农村）"
    HK_MACAO_TAIWAN_OVERSEAS_CHINESE = "30", "港澳台人员及华侨"
    HONG_KONG = "31", "香港特别行政区居民"
    MACAO = "32", "澳门特别行政区居民"
    TAIWAN = "33", "台湾地区居民"
    OVERSEAS_CHINESE = "34", "华侨"
    FOREIGNER = "40", "外籍人士"
    FOREIGNER_WITHOUT_PERMANENT_RESIDENCE = "41", "无永久居留权的外籍人士"
    FOREIGNER_WITH_PERMANENT_RESIDENCE = "42", "有永久居留权的外籍人士"
    RESIDENT = "50", "居民户口（城乡统一户口）"
    LOCAL_RESIDENT = "51", "本地居民户口"
    NON_LOCAL_RESIDENT = "52", "外地居民户口"


class RegistrationItem(StrEnum):
    """An item of the registration data (domain.md §4 table; 41号 attachment 1), as the popup names
    it (`{"item": "phone", "code": "AAE005", "label": "联系电话"}`, api.md).

    `required` is the table's Y column, plus the phone: the registration form (经办规程
    attachment 1) always asks for one (the person's own, else a family member's or a landline),
    and api.md shows a missing phone in the popup. Employment status is collected but not required.
    """

    code: str
    label: str
    required: bool

    def __new__(cls, item: str, code: str = "", label: str = "", required: bool = False) -> Self:
        member = str.__new__(cls, item)
        member._value_ = item
        member.code, member.label, member.required = code, label, required
        return member

    PERSON_NUMBER = "person_number", "AAC001", "个人编号", False
    NAME = "name", "AAC003", "姓名", True
    GENDER = "gender", "AAC004", "性别", True
    ID_NUMBER = "id_number", "AAC002", "公民身份号码", True
    BIRTH_DATE = "birth_date", "AAC006", "出生日期", True
    PERSONAL_IDENTITY = "personal_identity", "AAC012", "个人身份", False
    HOUSEHOLD_TYPE = "household_type", "AAC009", "户口性质", False
    HOUSEHOLD_PLACE = "household_place", "AAC010", "户籍所在地", True
    RESIDENCE_ADDRESS = "residence_address", "AAE006", "居住地址", True
    HOUSEHOLD_BOOK_NUMBER = "household_book_number", "AAB401", "户口簿编号", False
    FAMILY_NUMBER = "family_number", "AAB402", "家庭编号", False
    PHONE = "phone", "AAE005", "联系电话", True
    # AAC016 is the LD/T 92 indicator the core systems use for 就业状态; domain.md names none.
    EMPLOYMENT_STATUS = "employment_status", "AAC016", "就业状态", False
    # The registration form's 工作单位全称, for someone employed by a unit (AAB004, the unit
    # information's name, domain.md §4).
    UNIT_NAME = "unit_name", "AAB004", "工作单位全称", False


# -- Insurance and status (domain.md §4 "Insurance status") ---------------------------------------


class Insurance(StrEnum):
    """The five insurances; the values are the words of the API (`statuses.pension`, api.md)."""

    label: str
    status_field: str  # the indicator holding the person's status code in this insurance

    def __new__(cls, word: str, label: str = "", status_field: str = "") -> Self:
        member = str.__new__(cls, word)
        member._value_ = word
        member.label, member.status_field = label, status_field
        return member

    PENSION = "pension", "养老保险", "AIC003"
    MEDICAL = "medical", "医疗保险", "AKC003"
    INJURY = "injury", "工伤保险", "ALC003"
    UNEMPLOYMENT = "unemployment", "失业保险", "AJC003"
    MATERNITY = "maternity", "生育保险", "AMC003"


class StatusCode(StrEnum):
    """A person's status in one insurance: a scheme code of that insurance, or a shared code
    (8x insured elsewhere, 9x not insured) valid in all five."""

    label: str
    insurance: Insurance | None  # the insurance of a scheme code; None for a shared code
    insurances: frozenset[Insurance]  # the insurances in which this code may stand

    def __new__(cls, code: str, label: str = "", insurance: Insurance | None = None) -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.label, member.insurance = label, insurance
        # Kept on the member: every verdict's validation asks it of each of its five codes.
        member.insurances = frozenset(Insurance) if insurance is None else frozenset({insurance})
        return member

    URBAN_EMPLOYEE_PENSION = "11", "城镇企业职工基本养老保险", Insurance.PENSION
    RESIDENT_PENSION = "12", "城乡居民基本养老保险", Insurance.PENSION
    GOVERNMENT_INSTITUTION_PENSION = "13", "机关事业单位养老保险", Insurance.PENSION
    LAND_EXPROPRIATED_FARMERS_PENSION = "14", "被征地农民养老保障", Insurance.PENSION
    OTHER_PENSION = "15", "其他养老保险制度", Insurance.PENSION
    EMPLOYEE_MEDICAL = "21", "城镇职工基本医疗保险", Insurance.MEDICAL
    URBAN_RESIDENT_MEDICAL = "22", "城镇居民基本医疗保险", Insurance.MEDICAL
    NEW_RURAL_COOPERATIVE_MEDICAL = "23", "新型农村合作医疗", Insurance.MEDICAL
    PUBLIC_FUNDED_MEDICAL = "24", "公费医疗", Insurance.MEDICAL
    MIGRANT_WORKER_MEDICAL = "25", "农民工其他医疗保险", Insurance.MEDICAL
    OTHER_MEDICAL = "26", "其他医疗保障制度", Insurance.MEDICAL
    RESIDENT_MEDICAL = "27", "城乡居民基本医疗保险", Insurance.MEDICAL
    INJURY_INSURED = "30", "参加工伤保险", Insurance.INJURY
    UNEMPLOYMENT_INSURED = "40", "参加失业保险", Insurance.UNEMPLOYMENT
    MATERNITY_INSURED = "50", "参加生育保险", Insurance.MATERNITY
    INSURED_ELSEWHERE_IN_PROVINCE = "81", "省内异地参保"
    INSURED_IN_ANOTHER_PROVINCE = "82", "省外参保"
    UNINSURED_INDIVIDUAL = "91", "个人原因未参保"
    UNINSURED_BY_EMPLOYER = "92", "单位未参保"
    UNINSURED_MILITARY_ABROAD_PRISON = "93", "因服兵役、出国定居、服刑等原因未参保"
    INTERRUPTED = "94", "中断缴费"
    NOT_REQUIRED = "95", "不需参加该险种"

    @property
    def is_insured(self) -> bool:
        """Insured locally (a scheme code) or elsewhere (81 in the province, 82 outside it)."""
        return self.insurance is not None or self in _INSURED_ELSEWHERE

    @property
    def is_uninsured_but_should_be(self) -> bool:
        """应参保未参保: codes 91 and 92 (domain.md §5), the quarterly table's columns 9-17."""
        return self in _SHOULD_BE_INSURED

    @property
    def scheme_tier(self) -> SchemeTier | None:
        """The rank of a scheme code among duplicates; None for a shared code."""
        return SCHEME_TIER.get(self)


_INSURED_ELSEWHERE: Final = frozenset(
    {StatusCode.INSURED_ELSEWHERE_IN_PROVINCE, StatusCode.INSURED_IN_ANOTHER_PROVINCE}
)
_SHOULD_BE_INSURED: Final = frozenset(
    {StatusCode.UNINSURED_INDIVIDUAL, StatusCode.UNINSURED_BY_EMPLOYER}
)


def codes_for(insurance: Insurance) -> tuple[StatusCode, ...]:
    """Every status code valid in `insurance`: its scheme codes, then the shared ones."""
    return tuple(code for code in StatusCode if insurance in code.insurances)


class SchemeTier(IntEnum):
    """Ranks of schemes; a lower value wins."""

    EMPLOYEE = 1
    GOVERNMENT_INSTITUTION = 2
    RESIDENT = 3
    OTHER = 4


# domain.md §5 rule 1: two or more active enrolments in one insurance are a duplicate, and the
# code shown is the highest-ranked scheme: employee > government/institution > resident > other.
# Public-funded medical (24) is the government/institution staff's scheme; land-expropriated
# farmers' (14) and migrant workers' (25) schemes count as "other". Injury, unemployment and
# maternity have one (employee) scheme each.
SCHEME_TIER: Final[Mapping[StatusCode, SchemeTier]] = MappingProxyType(
    {
        StatusCode.URBAN_EMPLOYEE_PENSION: SchemeTier.EMPLOYEE,
        StatusCode.GOVERNMENT_INSTITUTION_PENSION: SchemeTier.GOVERNMENT_INSTITUTION,
        StatusCode.RESIDENT_PENSION: SchemeTier.RESIDENT,
        StatusCode.LAND_EXPROPRIATED_FARMERS_PENSION: SchemeTier.OTHER,
        StatusCode.OTHER_PENSION: SchemeTier.OTHER,
        StatusCode.EMPLOYEE_MEDICAL: SchemeTier.EMPLOYEE,
        StatusCode.PUBLIC_FUNDED_MEDICAL: SchemeTier.GOVERNMENT_INSTITUTION,
        StatusCode.URBAN_RESIDENT_MEDICAL: SchemeTier.RESIDENT,
        StatusCode.NEW_RURAL_COOPERATIVE_MEDICAL: SchemeTier.RESIDENT,
        StatusCode.RESIDENT_MEDICAL: SchemeTier.RESIDENT,
        StatusCode.MIGRANT_WORKER_MEDICAL: SchemeTier.OTHER,
        StatusCode.OTHER_MEDICAL: SchemeTier.OTHER,
        StatusCode.INJURY_INSURED: SchemeTier.EMPLOYEE,
        StatusCode.UNEMPLOYMENT_INSURED: SchemeTier.EMPLOYEE,
        StatusCode.MATERNITY_INSURED: SchemeTier.EMPLOYEE,
    }
)


def highest_ranked_scheme(codes: Iterable[StatusCode]) -> StatusCode:
    """The scheme code shown for duplicate enrolments (domain.md §5 rule 1); ties go to the lower
    code so the answer never depends on the order the enrolments arrived in."""
    schemes = list(codes)
    if not schemes or any(code.scheme_tier is None for code in schemes):
        raise ValueError(f"expected one or more scheme codes, got {[str(c) for c in schemes]}")
    return min(schemes, key=lambda code: (SCHEME_TIER[code], code.value))


class SourceInsuranceType(StrEnum):
    """AAE140 insurance type in the core system (si_core.ac02, ac60) and the medical system's
    `insutype` (310, 360, 390), with the status code an active enrolment gives (domain.md §7)."""

    label: str
    status_code: StatusCode

    def __new__(cls, code: str, label: str = "", status_code: StatusCode | None = None) -> Self:
        assert status_code is not None  # given by every member (see LabelledCode)
        member = str.__new__(cls, code)
        member._value_ = code
        member.label, member.status_code = label, status_code
        return member

    ENTERPRISE_EMPLOYEE_PENSION = "110", "企业职工基本养老保险", StatusCode.URBAN_EMPLOYEE_PENSION
    GOVERNMENT_INSTITUTION_PENSION = (
        "120",
        "机关事业单位养老保险",
        StatusCode.GOVERNMENT_INSTITUTION_PENSION,
    )
    LAND_EXPROPRIATED_FARMERS_PENSION = (
        "140",
        "被征地农民养老保障",
        StatusCode.LAND_EXPROPRIATED_FARMERS_PENSION,
    )
    OTHER_PENSION = "150", "其他养老保险", StatusCode.OTHER_PENSION
    RESIDENT_PENSION = "170", "城乡居民基本养老保险", StatusCode.RESIDENT_PENSION
    UNEMPLOYMENT = "210", "失业保险", StatusCode.UNEMPLOYMENT_INSURED
    EMPLOYEE_MEDICAL = "310", "职工基本医疗保险", StatusCode.EMPLOYEE_MEDICAL
    PUBLIC_FUNDED_MEDICAL = "360", "公费医疗", StatusCode.PUBLIC_FUNDED_MEDICAL
    RESIDENT_MEDICAL = "390", "城乡居民基本医疗保险", StatusCode.RESIDENT_MEDICAL
    INJURY = "410", "工伤保险", StatusCode.INJURY_INSURED
    MATERNITY = "510", "生育保险", StatusCode.MATERNITY_INSURED

    @property
    def insurance(self) -> Insurance:
        insurance = self.status_code.insurance
        assert insurance is not None  # every row of §7 maps to a scheme code
        return insurance


# -- The registry's own vocabulary (api.md) -------------------------------------------------------


class SurveyReason(LabelledCode):
    """Why a person needs a survey (domain.md §5 "Needs survey"); the words of api.md."""

    UNINSURED = "uninsured", "养老或医疗保险应参保未参保"
    PARTIALLY_INSURED = "partially_insured", "未参全险种"
    INTERRUPTED = "interrupted", "中断缴费"
    MISSING_INFO = "missing_info", "登记信息缺失"
    INACCURATE_INFO = "inaccurate_info", "登记信息不准确"
    IDENTITY_CONFLICT = "identity_conflict", "一号多人身份冲突"


class FlagType(LabelledCode):
    """Risk flags on a person's insurance (domain.md §5); the words of api.md."""

    DUPLICATE_INSURANCE = "duplicate_insurance", "重复参保"
    DUPLICATE_BENEFITS = "duplicate_benefits", "重复享受待遇"
    BENEFIT_AFTER_DEATH = "benefit_after_death", "死亡后继续领取待遇"


class RegistrationState(LabelledCode):
    """Where a person's registration stands (domain.md §2, §6 columns 3-8); the words of api.md."""

    CONFIRMED = "confirmed", "已确认参保登记"
    NEEDS_SURVEY = "needs_survey", "需调查登记"
    VERIFIED = "verified", "已核实登记"


# -- Source systems' codes (sources.md) -----------------------------------------------------------


class Participation(LabelledCode):
    """si_core.ac02.aac008: the state of an enrolment."""

    PAYING = "1", "参保缴费"
    SUSPENDED = "2", "暂停缴费"
    TERMINATED = "3", "终止参保"


class BenefitPaymentStatus(LabelledCode):
    """si_core.ac60.aae116: the state of a benefit."""

    PAYING = "1", "正常发放"
    SUSPENDED = "2", "暂停发放"
    STOPPED = "3", "终止发放"


class MedicalInsuredStatus(LabelledCode):
    """medical.insured.psn_insu_stas (the medical platform has no code 3)."""

    NORMAL = "1", "正常参保"
    SUSPENDED = "2", "暂停参保"
    TERMINATED = "4", "终止参保"


class CertificateType(LabelledCode):
    """medical.insured.psn_cert_type: the documents a person may register with (domain.md §3)."""

    CITIZEN_ID = "01", "居民身份证"
    PASSPORT = "02", "护照"
    HK_MACAO_TAIWAN_RESIDENCE_PERMIT = "03", "港澳台居民居住证"
    FOREIGNER_PERMANENT_RESIDENCE_ID = "04", "外国人永久居留身份证"


class HouseholdStatus(LabelledCode):
    """hukou.person.ryzt: a person's state in the household registry."""

    NORMAL = "0", "正常"
    DECEASED = "1", "死亡"
    MOVED_OUT = "2", "迁出"
    MILITARY_SERVICE = "3", "服兵役"
    SETTLED_ABROAD = "4", "出国（境）定居"
    CANCELLED_OTHER = "9", "其他原因注销"


class ResidencePermitStatus(LabelledCode):
    """hukou.resident_permit.zt: the state of a residence permit (居住证)."""

    VALID = "1", "有效"
    EXPIRED = "2", "过期"
    CANCELLED = "3", "注销"


class StudentStatus(LabelledCode):
    """education.student.xjzt: a student's enrolment state."""

    ENROLLED = "1", "在籍"
    GRADUATED = "2", "毕业"
    LEFT = "3", "离校"


class ChangeDocument(LabelledCode):
    """The documents a grass-roots platform sees for a change registration (变更登记, 44号 Art.21:
    the change is recorded on the evidence presented). Our convention: 44号 names no code table,
    so the codes are words and the labels the documents' official names."""

    ID_CARD = "id_card", "居民身份证"
    HOUSEHOLD_REGISTER = "household_register", "户口簿"
    SOCIAL_SECURITY_CARD = "social_security_card", "社会保障卡"
    RESIDENCE_PERMIT = "residence_permit", "居住证"
    LABOUR_CONTRACT = "labour_contract", "劳动合同"
    EMPLOYER_CERTIFICATE = "employer_certificate", "单位证明"
    MARRIAGE_CERTIFICATE = "marriage_certificate", "结婚证"
    DEATH_CERTIFICATE = "death_certificate", "死亡证明"
    OTHER = "other", "其他"


class SourceSystem(LabelledCode):
    """Where a value of a person's record comes from: a business system of sources.md (the schema
    of its change feed, `cdc.<system>.<table>`) or a collection the agency approved (信息采集).
    The labels are what staff read beside a value (an inaccurate item's reason, the history)."""

    SI_CORE = "si_core", "社保系统"
    MEDICAL = "medical", "医保系统"
    HUKOU = "hukou", "户籍"
    CIVIL = "civil", "民政系统"
    EDUCATION = "education", "教育系统"
    JUSTICE = "justice", "司法系统"
    EMPLOYMENT = "employment", "就业系统"
    CARD = "card", "社保卡系统"
    NATIONAL = "national", "全国比对"
    COLLECTION = "collection", "信息采集"


SOURCE_LABELS: Final[Mapping[str, str]] = MappingProxyType({s.value: s.label for s in SourceSystem})
"""System (`si_core`, `collection`) → its label; a plain mapping for `.get` on stored text."""
