"""Matching's rules alone: µs to evaluate one person (domain.md §5 in canbao_matching.rules), the
Python the evaluator spends per person between reading them and saving the verdict.

    uv run --frozen python -m bench.rules [--people 300] [--repeats 15]

Three kinds of person, a third each, built with the tests' fact helpers (tests/matching/people.py):
a resident with two resident schemes and a household status; an employee with a job, employee
pension and medical and the three employment-linked insurances; a person with nothing but the
registry's state (a survey target). Prints the median and best of `--repeats` passes over
`--people`, so that base and new can be run alternately on a noisy machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import date

from canbao_contracts.codes import HouseholdStatus
from canbao_contracts.codes import StatusCode as S
from canbao_contracts.events import Fact
from canbao_matching.rules import Situation, evaluate
from tests.matching.people import enrolled, household, job, person

TODAY = date(2026, 12, 1)
EMPLOYEE_CODES = (
    S.URBAN_EMPLOYEE_PENSION,
    S.EMPLOYEE_MEDICAL,
    S.INJURY_INSURED,
    S.UNEMPLOYMENT_INSURED,
    S.MATERNITY_INSURED,
)


def situations(people: int) -> list[Situation]:
    built = []
    for n in range(people):
        pid = uuid.uuid4()
        facts: tuple[Fact, ...]
        if n % 3 == 0:
            facts = (
                enrolled(pid, S.RESIDENT_MEDICAL),
                enrolled(pid, S.RESIDENT_PENSION),
                household(pid, HouseholdStatus.NORMAL),
            )
        elif n % 3 == 1:
            facts = (job(pid), *(enrolled(pid, code) for code in EMPLOYEE_CODES))
        else:
            facts = ()
        built.append(Situation(person=person(pid), facts=facts))
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    people = situations(args.people)
    passes = []
    for _ in range(args.repeats):
        # A new Situation each pass, as the evaluator reads each person afresh.
        fresh = [Situation(person=s.person, facts=s.facts) for s in people]
        started = time.perf_counter()
        for situation in fresh:
            evaluate(situation, TODAY)
        passes.append((time.perf_counter() - started) / len(fresh) * 1e6)
    print(
        f"evaluate: {statistics.median(passes):.1f} µs/person median, {min(passes):.1f} best "
        f"({args.repeats} passes over {args.people} people)"
    )


if __name__ == "__main__":
    main()
