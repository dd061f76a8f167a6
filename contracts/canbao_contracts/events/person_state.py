"""What every event of `registry.persons` but a merge carries: the person as identity now knows
them, masked.

Identity alone holds names and numbers in clear (architecture.md). Here a person is an opaque
`person_id` with what matching, survey and reporting need: birth date and gender (the 16th
birthday ends pension's "not required", domain.md §5, to the day), regions (the quarterly
table's rows and columns 1-4, §6), the registration data's gaps (the "missing / inaccurate /
identity conflict" survey reasons, §5) and the masked name for lists. Never the ID number, not
even masked: see `masked_id_number`. Who holds what is listed in contracts/README.md. A gap's
reason says what is wrong and where, never the values: "姓名与户籍登记不一致（社保系统）", not the
two names; the gateway asks identity for the values when a clerk opens the popup, and that read
is audited.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Self
from uuid import UUID

from pydantic import AfterValidator, StringConstraints, model_validator

from canbao_contracts.codes import (
    CertificateType,
    Gender,
    HouseholdType,
    PersonalIdentity,
    RegistrationItem,
)
from canbao_contracts.events.base import (
    ContractModel,
    Event,
    MaskedIdNumber,
    MaskedName,
    Reason,
    RegionCode,
    canonical_order,
    table_position,
)


class InaccurateItem(ContractModel):
    """An item whose value is wrong or disputed (domain.md §5: invalid ID, ID disagreeing with
    birth date or gender, sources disagreeing on the name, malformed phone)."""

    item: RegistrationItem
    reason: Reason
    """For a clerk, without the values: "姓名与户籍登记不一致（社保系统）"."""
    source: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")] | None = None
    """The system whose record is at fault (sources.md schema), when one is."""


def _missing(items: tuple[RegistrationItem, ...]) -> tuple[RegistrationItem, ...]:
    optional = [item.value for item in items if not item.required]
    if optional:
        raise ValueError(f"only required items can be missing (domain.md §4), not {optional}")
    return canonical_order(items, key=table_position, what="missing")


def _inaccurate(items: tuple[InaccurateItem, ...]) -> tuple[InaccurateItem, ...]:
    return canonical_order(items, key=_inaccurate_position, what="inaccurate")


def _inaccurate_position(item: InaccurateItem) -> tuple[int, str]:
    return table_position(item.item), item.reason


class PersonState(Event):
    """A person as identity now knows them (the golden record, masked)."""

    person_id: UUID
    masked_name: MaskedName | None
    """"张*" (api.md); None while no source gives a name."""
    masked_id_number: MaskedIdNumber | None = None
    """Not published: always null. The masked number's last four characters with the household
    region and the birth date below are the whole number (GB 11643: region, birth date,
    sequence, check), and these events are compacted and kept for ever. A consumer that shows a
    masked number asks identity for it when a user asks (audited), or keeps its own sealed copy
    (architecture.md "Identity is the registry of names and numbers")."""
    document_type: CertificateType = CertificateType.CITIZEN_ID
    """Special groups may register with another document (domain.md §3)."""
    birth_date: date | None
    gender: Gender | None
    household_type: HouseholdType | None
    """AAC009."""
    household_region_code: RegionCode | None
    """AAC010, the household registration place, as a GB/T 2260 code."""
    region_code: RegionCode | None
    """The division the registry counts the person under: the quarterly table's city row, survey
    lists, a clerk's scope. The household region when household-registered locally, else the
    region of residence or insurance (identity's precedence rule decides)."""
    household_registered_locally: bool
    """In this province's household register (domain.md §6 column 1; false: column 4)."""
    household_data_obtained: bool
    """Public security's register has sent this person's record (§6 column 2)."""
    personal_identity: PersonalIdentity | None = None
    """AAC012."""
    deceased: bool = False
    death_date: date | None = None
    missing: Annotated[tuple[RegistrationItem, ...], AfterValidator(_missing)] = ()
    """Required items (domain.md §4) that no source gives: the survey reason missing_info."""
    inaccurate: Annotated[tuple[InaccurateItem, ...], AfterValidator(_inaccurate)] = ()
    """Items whose value is wrong or disputed: the survey reason inaccurate_info."""
    identity_conflict: bool = False
    """One number carried by two different people: the survey reason
    identity_conflict."""
    registered_by_collection: bool = False
    """Some of the person's record came from an approved collection (a counter, a survey team,
    self-service): they came forward, or were found where they live. Without a household record
    here, that makes them one of domain.md §1's "other long-term residents" (matching's scope).
    Added after v1; consumers read it as false when absent."""

    @property
    def subject(self) -> str:
        return str(self.person_id)

    @model_validator(mode="after")
    def _death_date_only_when_deceased(self) -> Self:
        if self.death_date is not None and not self.deceased:
            raise ValueError("death_date is set but deceased is false")
        return self


# The fields a PersonUpdated may name as changed: every field of the state but its key.
PERSON_FIELDS = frozenset(PersonState.model_fields) - {"person_id"}
