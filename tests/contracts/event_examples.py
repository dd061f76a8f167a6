"""One representative instance of every event and of every kind of fact, as a clerk would meet
them: 张伟 of Guiyang (520102), employed, insured, with a missing phone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from canbao_contracts.codes import (
    BenefitPaymentStatus,
    FlagType,
    Gender,
    HouseholdStatus,
    HouseholdType,
    Insurance,
    PersonalIdentity,
    RegistrationItem,
    RegistrationState,
    ResidencePermitStatus,
    StatusCode,
    StudentStatus,
    SurveyReason,
    UnitType,
)
from canbao_contracts.events import (
    BenefitFact,
    Channel,
    CollectionApproved,
    ComparisonScope,
    CrossRegionEnrolmentFact,
    CustodyFact,
    DeathFact,
    EmploymentFact,
    EnrolmentFact,
    EnrolmentState,
    Event,
    Fact,
    FactAsserted,
    FactsAsserted,
    FactSource,
    FeedbackChange,
    FeedbackOutcome,
    FeedbackReplied,
    FeedbackRequested,
    Flag,
    HouseholdStatusFact,
    InaccurateItem,
    PersonDeceased,
    PersonRegistered,
    PersonsMerged,
    PersonUpdated,
    ResidencePermitFact,
    Statuses,
    StatusesChanged,
    StatusesWithdrawn,
    StudyFact,
    StudyLevel,
    UnitChanged,
    UnitDeleted,
    Verdict,
    VerifiedStatus,
    fact_id_for,
)

PERSON_ID = UUID("0b6f5c7e-3c55-4f0e-9d63-7a1f1e2f9a01")
OTHER_PERSON_ID = UUID("5d2a8f3b-1e4c-4b7a-8f60-2c9d0e1a7b02")
COLLECTION_ID = UUID("9e1c7d24-6a3b-4f85-b0d2-3e4f5a6b7c03")
FEEDBACK_ID = UUID("5b0f2c18-7d4e-4a9b-8c61-2f3e4d5a6b04")
AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

PERSON: dict[str, Any] = {
    "person_id": PERSON_ID,
    "masked_name": "张*",
    "masked_id_number": "5201**********123X",
    "birth_date": date(1990, 3, 7),
    "gender": Gender.MALE,
    "household_type": HouseholdType.LOCAL_URBAN,
    "household_region_code": "520102",
    "region_code": "520102",
    "household_registered_locally": True,
    "household_data_obtained": True,
    "personal_identity": PersonalIdentity.WORKER,
    "missing": (RegistrationItem.PHONE,),
    "inaccurate": (
        InaccurateItem(
            item=RegistrationItem.NAME, reason="姓名与户籍登记不一致（社保系统）", source="si_core"
        ),
    ),
}


def source(system: str, table: str, record_key: str) -> FactSource:
    return FactSource(system=system, table=table, record_key=record_key)


def fact_fields(kind: str, fact_source: FactSource, person_id: UUID = PERSON_ID) -> dict[str, Any]:
    """What every fact needs besides its kind's own fields."""
    return {
        "fact_id": fact_id_for(person_id, kind, fact_source),
        "source": fact_source,
        "observed_at": AT,
        "revision": 2 * 26362096 + 1,
    }


ENROLMENT_SOURCE = source("si_core", "ac02", "aac001=P0001,aae140=110,aab301=520102")
FACTS: dict[str, Fact] = {
    "enrolment": EnrolmentFact(
        **fact_fields("enrolment", ENROLMENT_SOURCE),
        insurance=Insurance.PENSION,
        scheme=StatusCode.URBAN_EMPLOYEE_PENSION,
        state=EnrolmentState.PAYING,
        region_code="520102",
        unit_id="U0001",
        first_enrolled_on=date(2015, 3, 1),
        period_start=date(2026, 1, 1),
    ),
    "benefit": BenefitFact(
        **fact_fields("benefit", source("si_core", "ac60", "id=42")),
        insurance=Insurance.PENSION,
        scheme=StatusCode.RESIDENT_PENSION,
        state=BenefitPaymentStatus.PAYING,
        region_code="520103",
        period_start=date(2024, 7, 1),
    ),
    "employment": EmploymentFact(
        **fact_fields("employment", source("employment", "job_registration", "id=7")),
        unit_id="U0001",
        unit_name="贵阳市某某机械有限公司",
        region_code="520102",
        started_on=date(2015, 3, 1),
    ),
    "study": StudyFact(
        **fact_fields("study", source("education", "student", "xh=G2024000123")),
        level=StudyLevel.HIGHER,
        state=StudentStatus.GRADUATED,
        region_code="520100",
        enrolled_on=date(2008, 9, 1),
        graduated_on=date(2012, 6, 30),
    ),
    "custody": CustodyFact(
        **fact_fields("custody", source("justice", "inmate", "id=3")),
        admitted_on=date(2019, 5, 1),
        released_on=date(2021, 4, 30),
        region_code="520111",
    ),
    "household_status": HouseholdStatusFact(
        **fact_fields("household_status", source("hukou", "person", "sfzh=hmac:3f9a0c")),
        status=HouseholdStatus.NORMAL,
        region_code="520102",
    ),
    "cross_region_enrolment": CrossRegionEnrolmentFact(
        **fact_fields("cross_region_enrolment", source("national", "cross_region", "id=11")),
        insurance=Insurance.MEDICAL,
        scope=ComparisonScope.NATIONAL,
        region_code="440305",
        state=EnrolmentState.PAYING,
        receiving_benefit=False,
        reported_at=AT - timedelta(days=3),
    ),
    "death": DeathFact(
        **fact_fields("death", source("civil", "cremation", "id=5"), OTHER_PERSON_ID),
        died_on=date(2026, 10, 1),
    ),
    "residence_permit": ResidencePermitFact(
        **fact_fields("residence_permit", source("hukou", "resident_permit", "jzzh=GZ52010200017")),
        status=ResidencePermitStatus.VALID,
        region_code="520102",
        issued_on=date(2024, 3, 1),
        valid_until=date(2029, 3, 1),
    ),
}

VERDICT = Verdict(
    region_code="520102",
    birth_date=date(1990, 3, 7),
    gender=Gender.MALE,
    household_registered_locally=True,
    household_data_obtained=True,
    deceased=False,
    statuses=Statuses(
        pension=StatusCode.URBAN_EMPLOYEE_PENSION,
        medical=StatusCode.EMPLOYEE_MEDICAL,
        injury=StatusCode.INJURY_INSURED,
        unemployment=StatusCode.UNINSURED_BY_EMPLOYER,
        maternity=StatusCode.MATERNITY_INSURED,
    ),
    flags=(Flag(type=FlagType.DUPLICATE_BENEFITS, insurance=Insurance.PENSION),),
    needs_survey=True,
    survey_reasons=(SurveyReason.PARTIALLY_INSURED, SurveyReason.MISSING_INFO),
    registration=RegistrationState.NEEDS_SURVEY,
)
CONFIRMED = VERDICT.model_copy(
    update={
        "statuses": VERDICT.statuses.model_copy(
            update={"unemployment": StatusCode.UNEMPLOYMENT_INSURED}
        ),
        "needs_survey": False,
        "survey_reasons": (),
        "registration": RegistrationState.CONFIRMED,
        "confirmed_by": ComparisonScope.LOCAL,
    }
)


def _fact_event(fact: Fact) -> FactAsserted:
    person = OTHER_PERSON_ID if fact.kind == "death" else PERSON_ID
    return FactAsserted(person_id=person, fact=fact)


EVENTS: dict[str, Event] = {
    "person registered": PersonRegistered(**PERSON),
    "person updated": PersonUpdated(**{**PERSON, "missing": ()}, changed=("missing",)),
    "persons merged": PersonsMerged(
        merged_person_id=OTHER_PERSON_ID, surviving_person_id=PERSON_ID
    ),
    "person deceased": PersonDeceased(**PERSON, deceased=True, death_date=date(2026, 10, 1)),
    **{f"fact asserted: {kind}": _fact_event(fact) for kind, fact in FACTS.items()},
    "facts asserted: a rebuild's, one retracted": FactsAsserted(
        person_id=PERSON_ID,
        facts=tuple(
            fact.model_copy(update={"retracted": True}) if kind == "study" else fact
            for kind, fact in FACTS.items()
            if kind != "death"
        ),
    ),
    "statuses changed: first verdict": StatusesChanged(
        person_id=PERSON_ID, verdict=VERDICT, previous=None, evaluated_at=AT
    ),
    "statuses changed: confirmed after collection": StatusesChanged(
        person_id=PERSON_ID,
        verdict=CONFIRMED,
        previous=VERDICT,
        evaluated_at=AT + timedelta(seconds=2),
        source_observed_at=AT,
    ),
    "statuses withdrawn: moved out of the province": StatusesWithdrawn(
        person_id=PERSON_ID,
        previous=CONFIRMED,
        evaluated_at=AT + timedelta(days=30),
        source_observed_at=AT + timedelta(days=29),
    ),
    "collection approved: counter": CollectionApproved(
        collection_id=COLLECTION_ID,
        person_id=PERSON_ID,
        channel=Channel.COUNTER,
        items={RegistrationItem.PHONE: "13812345678", RegistrationItem.NAME: "张伟"},
        resolved_reasons=(SurveyReason.MISSING_INFO, SurveyReason.INACCURATE_INFO),
        handler="clerk-0042",
        handled_at=AT,
        reviewer="reviewer-0007",
        reviewed_at=AT + timedelta(hours=2),
    ),
    "collection approved: survey of a new person": CollectionApproved(
        collection_id=COLLECTION_ID,
        person_id=None,
        channel=Channel.SURVEY,
        items={
            RegistrationItem.ID_NUMBER: "52010219900307123X",
            RegistrationItem.BIRTH_DATE: "19900307",
            RegistrationItem.GENDER: "1",
        },
        verified_statuses=(
            VerifiedStatus(insurance=Insurance.PENSION, status=StatusCode.UNINSURED_INDIVIDUAL),
            VerifiedStatus(
                insurance=Insurance.MEDICAL,
                status=StatusCode.INSURED_IN_ANOTHER_PROVINCE,
                region_code="440305",
            ),
        ),
        handler="surveyor-7",
        handled_at=AT,
        first_reviewer="platform-3",
        first_reviewed_at=AT + timedelta(days=1),
        reviewer="county-1",
        reviewed_at=AT + timedelta(days=2),
    ),
    "feedback requested: si_core's phone": FeedbackRequested(
        feedback_id=FEEDBACK_ID,
        collection_id=COLLECTION_ID,
        person_id=PERSON_ID,
        system="si_core",
        table="ac01",
        record_key="aac001=5201000042",
        changes=(
            FeedbackChange(item=RegistrationItem.PHONE, column="aae005", value="13812345678"),
        ),
        channel=Channel.COUNTER,
        handler="clerk-0042",
        handled_at=AT,
        reviewer="reviewer-0007",
        reviewed_at=AT + timedelta(hours=2),
        requested_at=AT + timedelta(hours=2, seconds=3),
    ),
    "feedback replied: refused by the card system": FeedbackReplied(
        feedback_id=FEEDBACK_ID,
        system="card",
        outcome=FeedbackOutcome.REFUSED,
        reason="持卡人已注销",
        replied_at=AT + timedelta(days=1),
    ),
    "unit changed: 张伟's employer": UnitChanged(
        unit_id="520102000420001",
        revision=2_345_678,
        credit_code="91520102MA6DK3XC4L",
        unit_name="贵阳黔盛建筑工程有限公司",
        unit_type=UnitType.ENTERPRISE,
        region_code="520102",
    ),
    "unit deleted": UnitDeleted(unit_id="520102000420002", revision=2_345_690),
}
