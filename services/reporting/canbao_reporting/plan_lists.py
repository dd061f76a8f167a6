"""The lists the plans ask for (44号 Art.29-30; Qinghai plan 四(二)(三); 40号 三(二)3): who, among
a division's living household-registered people, is insured locally or elsewhere, not insured,
partly insured, interrupted, selectively enrolled by a unit, or an employee enrolled only in a
resident scheme — each with the people behind it, so that a county can act on it. Pure: which
lists one verdict belongs to; the projection stores them with each state (tables.person_states).

Our definitions (the documents name the lists, not their rules), over the status codes of
domain.md §5:
* insured_locally: a scheme code in at least one insurance (an enrolment in the province's own
  business systems).
* insured_elsewhere: no scheme code, and 81 or 82 in at least one insurance (the provincial or
  national comparison found the enrolment).
* uninsured: insured in no insurance at all; the codes say why (91 individual, 92 employer, 93
  military/abroad/prison, 94 interrupted, 95 not required).
* partly_insured (未参全): insured in at least one insurance, and 91 in another (the person has
  not joined an insurance they should).
* interrupted (断保): 94 in at least one insurance.
* long_interrupted (长期断保): interrupted, payments stopped (the verdict's interrupted_since)
  more than a year before the day counted — a list time alone fills, so the database applies
  it as of the day asked (store._LISTS_AS_OF), not this module as a state is applied.
* selective (选择性参保): insured in at least one insurance, and 92 in another (the unit enrols
  the employee in some insurances only).
* resident_scheme_employees: 92 in at least one insurance (employed by a unit) while the
  pension or the medical insurance is a resident scheme (12; 22, 23, 27) — employees whose unit
  leaves them to the residents' schemes (40号 三(二)3).
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from typing import Final, Self

from canbao_contracts.codes import Insurance, StatusCode
from canbao_contracts.events import Verdict

S = StatusCode
ELSEWHERE: Final = frozenset({S.INSURED_ELSEWHERE_IN_PROVINCE, S.INSURED_IN_ANOTHER_PROVINCE})
RESIDENT_SCHEMES: Final = {
    Insurance.PENSION: frozenset({S.RESIDENT_PENSION}),
    Insurance.MEDICAL: frozenset({S.URBAN_RESIDENT_MEDICAL, S.NEW_RURAL_COOPERATIVE_MEDICAL,
                                  S.RESIDENT_MEDICAL}),
}  # fmt: skip


LONG_INTERRUPTION: Final = timedelta(days=365)


def long_interruption_cutoff(day: date) -> date:
    """The long-interrupted, counted on `day`, stopped paying before this."""
    return day - LONG_INTERRUPTION


class PlanList(StrEnum):
    label: str

    def __new__(cls, value: str, label: str = "") -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    INSURED_LOCALLY = "insured_locally", "户籍人员本地参保名单"
    INSURED_ELSEWHERE = "insured_elsewhere", "户籍人员异地参保名单"
    UNINSURED = "uninsured", "未参保人员名单"
    PARTLY_INSURED = "partly_insured", "未参全险种人员名单"
    INTERRUPTED = "interrupted", "断保人员名单"
    LONG_INTERRUPTED = "long_interrupted", "长期断保人员名单"
    SELECTIVE = "selective", "单位选择性参保人员名单"
    RESIDENT_SCHEME_EMPLOYEES = "resident_scheme_employees", "单位职工参加居民保险人员名单"


def lists_of(verdict: Verdict) -> set[PlanList]:
    """The lists one person is on (none for the dead or those not household-registered here)."""
    if verdict.deceased or not verdict.household_registered_locally:
        return set()
    codes = {insurance: code for insurance, code in verdict.statuses.items() if code is not None}
    local = any(code.insurance is not None for code in codes.values())
    insured = any(code.is_insured for code in codes.values())
    found: set[PlanList] = set()
    if local:
        found.add(PlanList.INSURED_LOCALLY)
    elif any(code in ELSEWHERE for code in codes.values()):
        found.add(PlanList.INSURED_ELSEWHERE)
    if not insured:
        found.add(PlanList.UNINSURED)
    if insured and S.UNINSURED_INDIVIDUAL in codes.values():
        found.add(PlanList.PARTLY_INSURED)
    if S.INTERRUPTED in codes.values():
        found.add(PlanList.INTERRUPTED)
    employed = S.UNINSURED_BY_EMPLOYER in codes.values()
    if insured and employed:
        found.add(PlanList.SELECTIVE)
    if employed and any(codes.get(i) in schemes for i, schemes in RESIDENT_SCHEMES.items()):
        found.add(PlanList.RESIDENT_SCHEME_EMPLOYEES)
    return found
