"""People and facts for matching's tests, built from a few words a clerk would use: a person as
identity publishes them, and the facts identity derives from the business systems (each with the
id `fact_id_for` gives it, so the same builders serve the rules and the consumer)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

from canbao_contracts.codes import (
    BenefitPaymentStatus,
    Gender,
    HouseholdStatus,
    Insurance,
    RegistrationItem,
    ResidencePermitStatus,
    StatusCode,
    StudentStatus,
)
from canbao_contracts.events import (
    BenefitFact,
    CrossRegionEnrolmentFact,
    CustodyFact,
    DeathFact,
    EmploymentFact,
    EnrolmentFact,
    EnrolmentState,
    FactSource,
    HouseholdStatusFact,
    PersonRegistered,
    ResidencePermitFact,
    StudyFact,
    fact_id_for,
)
from canbao_contracts.events.vocabulary import ComparisonScope

TODAY = date(2026, 11, 23)
ADULT = date(1980, 5, 1)
REGION, OTHER_REGION = "520102", "520302"
OBSERVED = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
_rows = itertools.count(1)


def person(person_id: UUID | None = None, **fields: Any) -> PersonRegistered:
    """A living adult registered in the local household register, with nothing wrong."""
    base: dict[str, Any] = {
        "person_id": person_id or uuid4(),
        "masked_name": "张*",
        "birth_date": ADULT,
        "gender": Gender.MALE,
        "household_type": None,
        "household_region_code": REGION,
        "region_code": REGION,
        "household_registered_locally": True,
        "household_data_obtained": True,
    }
    return PersonRegistered(**(base | fields))


def _base(person_id: UUID, kind: str, system: str, table: str, **fields: Any) -> dict[str, Any]:
    source = FactSource(system=system, table=table, record_key=f"id={next(_rows)}")
    return {
        "fact_id": fact_id_for(person_id, kind, source),
        "source": source,
        "observed_at": fields.pop("observed_at", OBSERVED),
        "revision": fields.pop("revision", 1),
        **fields,
    }


def enrolled(
    pid: UUID,
    scheme: StatusCode,
    state: EnrolmentState = EnrolmentState.PAYING,
    *,
    region: str = REGION,
    unit: str | None = None,
    **fields: Any,
) -> EnrolmentFact:
    assert scheme.insurance is not None
    return EnrolmentFact(
        **_base(pid, "enrolment", "si_core", "ac02", **fields),
        insurance=scheme.insurance,
        scheme=scheme,
        state=state,
        region_code=region,
        unit_id=unit,
    )


def elsewhere(
    pid: UUID,
    insurance: Insurance,
    scope: ComparisonScope,
    state: EnrolmentState = EnrolmentState.PAYING,
    *,
    region: str = "440103",
    benefit: bool = False,
) -> CrossRegionEnrolmentFact:
    return CrossRegionEnrolmentFact(
        **_base(pid, "cross_region_enrolment", "national", "cross_region"),
        insurance=insurance,
        scope=scope,
        region_code=region,
        state=state,
        receiving_benefit=benefit,
    )


def benefit(
    pid: UUID,
    scheme: StatusCode,
    state: BenefitPaymentStatus = BenefitPaymentStatus.PAYING,
    *,
    region: str = REGION,
) -> BenefitFact:
    assert scheme.insurance is not None
    return BenefitFact(
        **_base(pid, "benefit", "si_core", "ac60"),
        insurance=scheme.insurance,
        scheme=scheme,
        state=state,
        region_code=region,
    )


def job(
    pid: UUID, *, started: date | None = date(2020, 1, 1), ended: date | None = None, **fields: Any
) -> EmploymentFact:
    return EmploymentFact(
        **_base(pid, "employment", "employment", "job_registration", **fields),
        unit_id="U0001",
        region_code=REGION,
        started_on=started,
        ended_on=ended,
    )


def study(
    pid: UUID, state: StudentStatus = StudentStatus.ENROLLED, *, graduated: date | None = None
) -> StudyFact:
    return StudyFact(
        **_base(pid, "study", "education", "student"),
        level=None,
        state=state,
        region_code=REGION,
        enrolled_on=date(2023, 9, 1),
        graduated_on=graduated,
    )


def custody(
    pid: UUID, *, admitted: date = date(2024, 3, 1), released: date | None = None
) -> CustodyFact:
    return CustodyFact(
        **_base(pid, "custody", "justice", "inmate"), admitted_on=admitted, released_on=released
    )


def household(pid: UUID, status: HouseholdStatus, **fields: Any) -> HouseholdStatusFact:
    return HouseholdStatusFact(
        **_base(pid, "household_status", "hukou", "person", **fields),
        status=status,
        region_code=REGION,
    )


def permit(
    pid: UUID,
    status: ResidencePermitStatus = ResidencePermitStatus.VALID,
    *,
    until: date | None = date(2029, 3, 1),
) -> ResidencePermitFact:
    """A residence permit (居住证) for living in REGION."""
    return ResidencePermitFact(
        **_base(pid, "residence_permit", "hukou", "resident_permit"),
        status=status,
        region_code=REGION,
        issued_on=date(2024, 3, 1),
        valid_until=until,
    )


def death(pid: UUID, died: date = date(2026, 10, 1)) -> DeathFact:
    return DeathFact(**_base(pid, "death", "civil", "cremation"), died_on=died)


MISSING_PHONE = (RegistrationItem.PHONE,)
