"""`registry.statuses`: matching's verdict on a person (domain.md §5), published when it changes.

A verdict carries what survey and reporting need without asking anyone. The quarterly table
(domain.md §6) is computed from the newest verdict per person (living people only), one row per
city from `region_code`, column by column:
   1 household population       household_registered_locally
   2 data obtained              household_data_obtained
   3 local, registered directly registration = confirmed, confirmed_by = local, in each city of
                                enrolment_cities ("local" is relative to each city)
   4 of which non-local         (3) in a city not the person's household city
   5 in-province, confirmed     (1) and registration = confirmed, confirmed_by = province
   6 out-of-province, confirmed (1) and registration = confirmed, confirmed_by = national
   7 to be surveyed             (1) and registration = needs_survey or verified
   8 verified and registered    (1) and registration = verified
   9-17 per insurance           statuses (91, 92: should be insured, not insured) and flags
Columns 5-8 count household-registered people and 7 counts the verified too: the table's check
(1) = (3) − (4) + (5) + (6) + (7) holds only if every household person not confirmed by a
comparison is in (7), and (8) is "of which" (tests/contracts/test_events.py proves it).
registry.persons adds the masked names and numbers of the detail lists (报表及对应人员明细).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any, Final, Self
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, model_validator

from canbao_contracts.codes import (
    FlagType,
    Gender,
    Insurance,
    RegistrationState,
    StatusCode,
    SurveyReason,
)
from canbao_contracts.events.base import (
    ContractModel,
    Event,
    RegionCode,
    SourceId,
    canonical_order,
    table_position,
)
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_contracts.topics import STATUSES

_INSURANCES: Final = tuple(Insurance)  # iterating the Enum class itself is slower


class Statuses(ContractModel):
    """One status code per insurance (domain.md §4), null for all five when the person is dead."""

    pension: StatusCode | None
    medical: StatusCode | None
    injury: StatusCode | None
    unemployment: StatusCode | None
    maternity: StatusCode | None

    def __getitem__(self, insurance: Insurance) -> StatusCode | None:
        code: StatusCode | None = getattr(self, insurance.value)
        return code

    def items(self) -> Iterator[tuple[Insurance, StatusCode | None]]:
        return ((insurance, getattr(self, insurance.value)) for insurance in _INSURANCES)

    @model_validator(mode="after")
    def _codes_of_their_insurance(self) -> Self:
        for insurance, code in self.items():
            if code is not None and insurance not in code.insurances:
                raise ValueError(
                    f"{code.value} is not a status of {insurance.value} (domain.md §4)"
                )
        return self


class Flag(ContractModel):
    type: FlagType
    insurance: Insurance


def _flags(flags: tuple[Flag, ...]) -> tuple[Flag, ...]:
    return canonical_order(flags, key=_flag_position, what="flags")


def _flag_position(flag: Flag) -> tuple[int, int]:
    return table_position(flag.type), table_position(flag.insurance)


def _reasons(reasons: tuple[SurveyReason, ...]) -> tuple[SurveyReason, ...]:
    return canonical_order(reasons, key=table_position, what="survey_reasons")


# A city (地市): the first four digits of a GB/T 2260 division.
CityCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


def _cities(cities: tuple[str, ...]) -> tuple[str, ...]:
    return canonical_order(cities, key=str, what="enrolment_cities")


def _employers(units: tuple[str, ...]) -> tuple[str, ...]:
    return canonical_order(units, key=str, what="employers")


class Verdict(ContractModel):
    """Everything a StatusesChanged says about the person; `previous` is the same shape."""

    region_code: RegionCode | None
    """The person's region_code (registry.persons): the quarterly table's city row."""
    birth_date: date | None = None
    """Not published: always null (read `birth_year`). Kept so that verdicts published before
    it was withdrawn still parse; the day of birth is matching's alone (the 16th birthday)."""
    birth_year: int | None = None
    """The year of birth: the age band reporting counts by, without the day that would, with
    a person's region and gender, narrow their ID number to a handful."""
    gender: Gender | None
    household_registered_locally: bool
    household_data_obtained: bool
    deceased: bool
    statuses: Statuses
    """One code per insurance (domain.md §4); null for all five exactly when deceased."""
    flags: Annotated[tuple[Flag, ...], AfterValidator(_flags)] = ()
    needs_survey: bool
    survey_reasons: Annotated[tuple[SurveyReason, ...], AfterValidator(_reasons)] = ()
    registration: RegistrationState
    confirmed_by: ComparisonScope | None = None
    """Which comparison confirmed the registration (§6 columns 3, 5, 6); set when confirmed."""
    enrolment_cities: Annotated[tuple[CityCode, ...], AfterValidator(_cities)] = ()
    """The cities of the person's paying enrolments in the province's own systems, sorted:
    "local" in §6 is relative to each city (column 3 where enrolled, column 5 of the household
    city when enrolled only in other cities of the province)."""
    employers: Annotated[tuple[SourceId, ...], AfterValidator(_employers)] = ()
    """The units (AAB001 / emp_no) that employ the person now, sorted: the employer a code 92
    ("employed by a unit but not enrolled") is owed to, for labour inspection (40号 三(一)2)."""
    interrupted_since: date | None = None
    """When payments stopped (断保): the earliest end of the paid period among the suspended
    local enrolments; None when nothing is interrupted or the sources give no period end. The
    plans' long-interrupted list counts from it."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.deceased != all(code is None for _, code in self.statuses.items()):
            raise ValueError("statuses are null for all five insurances exactly when deceased")
        if self.needs_survey != bool(self.survey_reasons):
            raise ValueError("needs_survey is true exactly when there are survey_reasons")
        if self.needs_survey != (self.registration is RegistrationState.NEEDS_SURVEY):
            raise ValueError("registration is needs_survey exactly when needs_survey")
        confirmed = self.registration is RegistrationState.CONFIRMED
        if self.confirmed_by is not None and not confirmed:
            raise ValueError("confirmed_by is set but registration is not confirmed")
        if confirmed and self.confirmed_by is None and not self.deceased:
            raise ValueError("a confirmed registration says which comparison confirmed it")
        return self


def _changed_fields(data: dict[str, Any]) -> tuple[str, ...]:
    current, previous = data.get("verdict"), data.get("previous")
    if not isinstance(current, Verdict):
        return ()  # the verdict failed validation; that error is reported instead
    fields = tuple(Verdict.model_fields)
    if previous is None:
        return fields
    return tuple(f for f in fields if getattr(current, f) != getattr(previous, f))


class StatusesChanged(Event):
    """The person's verdict changed (or is new: `previous` is None). Published only on a change,
    including a change of region or birth date that reporting counts by."""

    type = "cn.canbao.registry.statuses.changed.v1"
    topic = STATUSES

    person_id: UUID
    verdict: Verdict
    previous: Verdict | None
    """The verdict before this change; None for the person's first verdict."""
    changed: tuple[str, ...] = Field(default_factory=_changed_fields)
    """The names of the verdict's fields that differ from `previous` (all of them for a first
    verdict); derived, so a producer need not pass it and a reader can trust it."""
    evaluated_at: AwareDatetime
    source_observed_at: AwareDatetime | None = None
    """When the source change that led here was committed (the fact's `observed_at`), for the
    source-to-verdict delay the benches measure; None for a scheduled re-check (a birthday)."""

    @property
    def subject(self) -> str:
        return str(self.person_id)

    @model_validator(mode="after")
    def _changed_is_the_difference(self) -> Self:
        expected = _changed_fields({"verdict": self.verdict, "previous": self.previous})
        if self.changed != expected:
            raise ValueError(f"changed is {list(self.changed)}, the difference is {list(expected)}")
        if not expected:
            raise ValueError("nothing changed: a StatusesChanged is published only on a change")
        return self


class StatusesWithdrawn(Event):
    """A living person left the registry's scope (moved their household out of the province,
    settled abroad, no local enrolment any more: matching's `in_scope`): the verdict last
    published for them no longer counts. Reporting takes them out of the quarterly table and the
    coverage figures; survey drops their open tasks. Should they come back into scope, their next
    verdict is a StatusesChanged with `previous` None, as for a first verdict."""

    type = "cn.canbao.registry.statuses.withdrawn.v1"
    topic = STATUSES

    person_id: UUID
    previous: Verdict
    """The verdict last published, now withdrawn."""
    evaluated_at: AwareDatetime
    source_observed_at: AwareDatetime | None = None
    """When the source change that took them out of scope was committed, as in StatusesChanged."""

    @property
    def subject(self) -> str:
        return str(self.person_id)
