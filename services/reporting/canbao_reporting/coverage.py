"""Coverage and progress (domain.md §1 goals, §2.6 "statistics on coverage, registration rate"):
per division, of its living household-registered people (the table's column 1, the population
the documents' goals are set on), for each insurance the coverage rate, and the registration and
survey rates. Pure: the counts come from the database (store.coverage_counts).

Our definitions where the documents leave room:
* **Coverage of an insurance** = insured / should be insured. Insured: a scheme code of the
  insurance or 81/82 (insured elsewhere in or outside the province, domain.md §5 rule 2). Should
  be insured: the insured, the uninsured who should join (91, 92) and the interrupted (94); not
  93 (military service, settled abroad, prison) nor 95 (not required: a child for pension,
  anyone without an employer for work injury, unemployment and maternity).
* **Registration rate** = registered (confirmed or verified) / the population.
* **Survey rate** = verified / people needing a survey or verification (§6: (8) / (7)).
* **Goals** (the documents'): pension 90 % (domain.md §1; a province sets its own, e.g.
  Chongqing 95 %, through its targets), medical everyone (100 %), work injury, unemployment and
  maternity 80 % (Chongqing's plan), survey rate 90 % (Qinghai). A rate with nobody to count
  is null, not 0 or 100 %.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from canbao_contracts.codes import Insurance, StatusCode

INSURED_CODES: Final = tuple(code.value for code in StatusCode if code.is_insured)
SHOULD_CODES: Final = (
    *INSURED_CODES,
    StatusCode.UNINSURED_INDIVIDUAL.value,
    StatusCode.UNINSURED_BY_EMPLOYER.value,
    StatusCode.INTERRUPTED.value,
)
GOALS: Final = {
    Insurance.PENSION: 0.90,
    Insurance.MEDICAL: 1.00,
    Insurance.INJURY: 0.80,
    Insurance.UNEMPLOYMENT: 0.80,
    Insurance.MATERNITY: 0.80,
}
SURVEY_GOAL: Final = 0.90


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


@dataclass(frozen=True, slots=True)
class InsuranceCounts:
    should: int
    insured: int

    @property
    def rate(self) -> float | None:
        return rate(self.insured, self.should)


@dataclass(frozen=True, slots=True)
class DivisionCounts:
    """What one division's coverage is computed from."""

    people: int
    registered: int
    needing: int  # needing a survey or verification, including those since verified: (7)
    verified: int  # (8)
    insurances: dict[Insurance, InsuranceCounts]

    def __add__(self, other: DivisionCounts) -> DivisionCounts:
        return DivisionCounts(
            self.people + other.people,
            self.registered + other.registered,
            self.needing + other.needing,
            self.verified + other.verified,
            {
                i: InsuranceCounts(
                    self.insurances[i].should + other.insurances[i].should,
                    self.insurances[i].insured + other.insurances[i].insured,
                )
                for i in Insurance
            },
        )


NOBODY: Final = DivisionCounts(0, 0, 0, 0, {i: InsuranceCounts(0, 0) for i in Insurance})


@dataclass(frozen=True, slots=True)
class TargetRate:
    rate: float
    set_by: str
    set_at: datetime


Target = dict[Insurance, TargetRate]  # a division's targets for a year


def target_of(division: str, insurance: Insurance, targets: Mapping[str, Target]) -> float:
    """The division's target: its own for the year, else that of the nearest division containing
    it (a province's target holds in its cities until a city sets its own), else the goal."""
    for length in range(len(division), 1, -2):
        found = targets.get(division[:length], {}).get(insurance)
        if found is not None:
            return found.rate
    return GOALS[insurance]


def slowest_first(rates: Mapping[str, tuple[float | None, float]]) -> list[str]:
    """The divisions by how far their rate falls short of their target, the furthest first (the
    通报 of the slowest divisions); divisions with nobody to count last."""
    return sorted(rates, key=lambda d: (rates[d][0] is None, (rates[d][0] or 0) - rates[d][1], d))
