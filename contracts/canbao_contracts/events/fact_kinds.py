"""The kinds of fact on `registry.facts`, each with what matching needs for domain.md §5 and no
more: no names, no numbers, no addresses, no school or prison names."""

from __future__ import annotations

from datetime import date
from hashlib import sha1
from typing import Annotated, Final, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, NonNegativeInt, StringConstraints, model_validator

from canbao_contracts.codes import (
    BenefitPaymentStatus,
    HouseholdStatus,
    Insurance,
    ResidencePermitStatus,
    StatusCode,
    StudentStatus,
)
from canbao_contracts.events.base import ContractModel, RegionCode, SourceId
from canbao_contracts.events.vocabulary import ComparisonScope, EnrolmentState, StudyLevel

# Fixed forever: changing it would give every fact a new id, and consumers would hold each twice.
FACT_ID_NAMESPACE: Final = UUID("6f3c1a52-8e0b-5d47-9a51-2c4e7b0d9f13")
# uuid5 (RFC 4122 §4.3) spelt out: the namespace's bytes once, and the version and variant bits
# set on the digest's integer (uuid.UUID's `version=` path costs as much as the hash). Computed
# by the producer for every fact of every rebuild, and checked by every consumer.
_NAMESPACE_BYTES: Final = FACT_ID_NAMESPACE.bytes
_VERSION_AND_VARIANT: Final = (0xF000 << 64) | (0xC000 << 48)
_VERSION_5: Final = (5 << 76) | (0x8000 << 48)

_Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]


class FactSource(ContractModel):
    """The record a fact was read from: provenance for a clerk, and what makes `fact_id` stable."""

    system: _Name
    """The source system (sources.md schema: si_core, medical, hukou…) or "collection"."""
    table: _Name
    """The table (ac02, insured…); for a collection, its channel."""
    record_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """The row's primary key as `column=value` pairs joined by "," in key order
    (`aac001=P0001,aae140=110,aab301=520102`); for a collection, its collection_id. A key that is
    a citizen ID number (hukou.person.sfzh) is identity's keyed blind index, never the number."""


def fact_id_for(person_id: UUID, kind: str, source: FactSource) -> UUID:
    """The id of the `kind` fact that `source` states about `person_id`: the same record always
    gives the same id, so asserting it again replaces it (architecture.md "exactly-once effect").

    The person is part of it: when identity re-resolves a record to another person, the old
    person's fact is retracted and the new person's is a different fact, so a consumer can key
    what it keeps by `fact_id` alone."""
    name = f"{person_id}|{kind}|{source.system}.{source.table}|{source.record_key}"
    digest = int.from_bytes(sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    return UUID(int=digest & ~_VERSION_AND_VARIANT | _VERSION_5)  # uuid5(FACT_ID_NAMESPACE, name)


class FactBase(ContractModel):
    fact_id: UUID
    """fact_id_for(person_id, kind, source): stable per source record and person."""
    source: FactSource
    observed_at: AwareDatetime
    """When the source committed the change (Debezium source.ts_ms)."""
    revision: NonNegativeInt
    """Higher is newer, per fact_id: the source's change position (for a PostgreSQL source,
    LSN × 2, + 1 for a streamed change, the order of canbao_contracts.debezium.ChangePosition)."""
    retracted: bool = False
    """The source row was deleted: the fact no longer holds."""


def _insurance_of(insurance: Insurance, scheme: StatusCode) -> None:
    if scheme.insurance is not insurance:
        raise ValueError(f"scheme {scheme.value} is not a {insurance.value} scheme (domain.md §4)")


class EnrolmentFact(FactBase):
    """Enrolled in one scheme of one insurance in one local region (si_core.ac02,
    medical.insured): domain.md §5 rules 1 and 3, and the unit for rule 92."""

    kind: Literal["enrolment"] = "enrolment"
    insurance: Insurance
    scheme: StatusCode
    """The scheme code an active enrolment gives (domain.md §7)."""
    state: EnrolmentState
    region_code: RegionCode | None
    """None where the source's value is missing or not a valid division (so for every fact)."""
    unit_id: SourceId | None
    """AAB001 / emp_no; None for residents and flexible workers."""
    first_enrolled_on: date | None = None
    period_start: date | None = None
    period_end: date | None = None

    @model_validator(mode="after")
    def _scheme_of_insurance(self) -> Self:
        _insurance_of(self.insurance, self.scheme)
        return self


class BenefitFact(FactBase):
    """A benefit of one insurance paid in one region (si_core.ac60): duplicate benefits, benefit
    after death, and rule 95 for people receiving a pension."""

    kind: Literal["benefit"] = "benefit"
    insurance: Insurance
    scheme: StatusCode
    state: BenefitPaymentStatus
    region_code: RegionCode | None
    period_start: date | None = None
    period_end: date | None = None

    @model_validator(mode="after")
    def _scheme_of_insurance(self) -> Self:
        _insurance_of(self.insurance, self.scheme)
        return self


class EmploymentFact(FactBase):
    """Employed by a unit (employment.job_registration, or an employment status collected):
    rules 92 and 95."""

    kind: Literal["employment"] = "employment"
    unit_id: SourceId | None
    unit_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    """AAB004."""
    region_code: RegionCode | None
    started_on: date | None = None
    ended_on: date | None = None
    """None while employed."""


class StudyFact(FactBase):
    """A student (education.student): pension not required for full-time students (rule 95)."""

    kind: Literal["study"] = "study"
    level: StudyLevel | None
    state: StudentStatus
    region_code: RegionCode | None
    enrolled_on: date | None = None
    graduated_on: date | None = None


class CustodyFact(FactBase):
    """In custody (justice.inmate): not insured for prison, code 93 (rule 4)."""

    kind: Literal["custody"] = "custody"
    admitted_on: date | None
    released_on: date | None
    """None while in custody."""
    region_code: RegionCode | None = None
    """The prison's region."""


class HouseholdStatusFact(FactBase):
    """The person's state in the household register (hukou.person.ryzt): military service and
    settled abroad give 93; deceased leaves the scope; moved out leaves the local population."""

    kind: Literal["household_status"] = "household_status"
    status: HouseholdStatus
    region_code: RegionCode | None
    """hjdz_xzqh."""
    cancelled_on: date | None = None
    """zxrq: when the registration was cancelled."""


class ResidencePermitFact(FactBase):
    """A residence permit (hukou.resident_permit, 居住证) of someone whose household is registered
    elsewhere: a non-local long-term resident (domain.md §1), in scope where they live while the
    permit is current (valid, and not past its end date)."""

    kind: Literal["residence_permit"] = "residence_permit"
    status: ResidencePermitStatus
    region_code: RegionCode | None
    """jzdz_xzqh: where they live."""
    issued_on: date | None = None
    valid_until: date | None = None
    """yxqz."""


class CrossRegionEnrolmentFact(FactBase):
    """Insured elsewhere, as the provincial or national registry answered (national.cross_region):
    rule 2 (81, 82), duplicate insurance and duplicate benefits across regions."""

    kind: Literal["cross_region_enrolment"] = "cross_region_enrolment"
    insurance: Insurance
    scope: Literal[ComparisonScope.PROVINCE, ComparisonScope.NATIONAL]
    region_code: RegionCode | None
    """Where insured."""
    state: EnrolmentState
    receiving_benefit: bool
    reported_at: AwareDatetime | None = None


class DeathFact(FactBase):
    """A death record (civil.cremation, a health death record): leaves the scope of "should be
    insured", and a benefit paid after it is a risk flag (domain.md §5)."""

    kind: Literal["death"] = "death"
    died_on: date | None
