"""domain.md §6, the quarterly basic-data table (全民参保登记基础数据情况表), in Python: the
people as reporting holds them → 17 columns per city, the total row and the logical checks. Pure:
no database, no clock. `cells_of` says which cells one person counts in, so that the people
behind every number (报表及对应人员明细) are the same predicate as the number.

Read it next to §6 and the column map in canbao_contracts.events.statuses. Our decisions where
§6 leaves room:
* A city (地市) is the first four digits of the person's `region_code` (identity: the household
  region when household-registered locally, else residence or insurance). A person without one
  is counted in a row of their own, "unknown", so that the total still covers everyone and the
  detail list shows whom to correct.
* Deceased people are counted nowhere (§5: they leave the scope of "should be insured").
* The table covers household-registered people (its note 本地户籍参保登记信息情况) plus column 4:
  columns 1-2 and 5-17 count the city's living household-registered people; only columns 3-4
  count people registered elsewhere.
* "Local" is relative to each city (§6): matching's `confirmed_by = local` means the province's
  own systems. A person so confirmed counts in column 3 of every city where they hold a paying
  enrolment (the verdict's `enrolment_cities`), and in column 4 there too when their household
  is not in that city; a household person with enrolments only in other cities of the province
  counts in their own city's column 5. When they have no paying enrolment (nothing is insured:
  a prisoner, a child not required to join — matching confirms them "by the local systems"),
  column 3 is the person's own city. Each row then satisfies (1) = (3) − (4) + (5) +
  (6) + (7): a household person is in exactly one of 3-without-4, 5, 6 and 7 of their city, and
  every other count in 3 is also in 4.
* Columns 9, 12, 15-17 ("should be insured, not insured", 应参保未参保) are status codes 91 and
  92 (§5); 10, 11, 13, 14 are the flags duplicate_insurance and duplicate_benefits.
* The checks are those §6 lists, each per row, plus (1) = (2), the condition of the row
  identity: it fails while public security has not sent every household record; the identity
  is checked only in the rows where (1) = (2), as §6 says.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from canbao_contracts.codes import FlagType, Insurance, RegistrationState, StatusCode
from canbao_contracts.events import Verdict
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_contracts.report_columns import COLUMN_NAMES_ZH

# The form's columns, 1 to 17 (canbao_contracts.report_columns names them for every export).
COLUMNS: Final = tuple(COLUMN_NAMES_ZH)
TOTAL: Final = "total"
UNKNOWN_CITY: Final = "unknown"
UNINSURED: Final = frozenset({StatusCode.UNINSURED_INDIVIDUAL, StatusCode.UNINSURED_BY_EMPLOYER})
# Columns 9-17 by insurance (§6): should be insured but not, duplicate insurance, duplicate
# benefits; only pension and medical have the last two.
UNINSURED_COLUMN: Final = {Insurance.PENSION: 9, Insurance.MEDICAL: 12, Insurance.INJURY: 15,
                           Insurance.UNEMPLOYMENT: 16, Insurance.MATERNITY: 17}  # fmt: skip
FLAG_COLUMN: Final = {
    (FlagType.DUPLICATE_INSURANCE, Insurance.PENSION): 10,
    (FlagType.DUPLICATE_BENEFITS, Insurance.PENSION): 11,
    (FlagType.DUPLICATE_INSURANCE, Insurance.MEDICAL): 13,
    (FlagType.DUPLICATE_BENEFITS, Insurance.MEDICAL): 14,
}

Row = dict[int, int]  # column number → people
Cell = tuple[str, int]  # (city, column)


def city_of(region_code: str | None) -> str:
    return region_code[:4] if region_code else UNKNOWN_CITY


def cells_of(verdict: Verdict) -> set[Cell]:
    """The (city, column) cells one person counts in (the cities of their paying local
    enrolments decide column 3 against 5: module docstring, "Local")."""
    if verdict.deceased:
        return set()
    city = city_of(verdict.region_code)
    home = verdict.household_registered_locally
    enrolled_in = set(verdict.enrolment_cities)
    cells: set[Cell] = set()
    if verdict.confirmed_by is ComparisonScope.LOCAL:
        for enrolment_city in enrolled_in or {city}:
            cells.add((enrolment_city, 3))
            if not (home and enrolment_city == city):
                cells.add((enrolment_city, 4))
    if not home:
        return cells
    cells.add((city, 1))
    if verdict.household_data_obtained:
        cells.add((city, 2))
    elsewhere_in_province = verdict.confirmed_by is ComparisonScope.LOCAL and bool(enrolled_in)
    if verdict.confirmed_by is ComparisonScope.PROVINCE or (
        elsewhere_in_province and city not in enrolled_in
    ):
        cells.add((city, 5))
    if verdict.confirmed_by is ComparisonScope.NATIONAL:
        cells.add((city, 6))
    if verdict.registration is not RegistrationState.CONFIRMED:
        cells.add((city, 7))
    if verdict.registration is RegistrationState.VERIFIED:
        cells.add((city, 8))
    for insurance, code in verdict.statuses.items():
        if code in UNINSURED:
            cells.add((city, UNINSURED_COLUMN[insurance]))
    for flag in verdict.flags:
        column = FLAG_COLUMN.get((flag.type, flag.insurance))
        if column is not None:
            cells.add((city, column))
    return cells


def cell_names(cells: Iterable[Cell]) -> list[str]:
    """The cells as the projection stores them, "5201:7", sorted."""
    return sorted(f"{city}:{column}" for city, column in cells)


def cell_of(name: str) -> Cell:
    city, column = name.rsplit(":", 1)
    return city, int(column)


def city_rows(people: Iterable[Verdict]) -> dict[str, Row]:
    """The city rows, ordered by city code (the unknown city last)."""
    counts: dict[Cell, int] = defaultdict(int)
    for person in people:
        for cell in cells_of(person):
            counts[cell] += 1
    return rows_of(counts)


def rows_of(counts: Mapping[Cell, int]) -> dict[str, Row]:
    """The city rows from the people counted in each cell, ordered by city code (the unknown
    city last)."""
    rows: dict[str, Row] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
    for (city, column), people in counts.items():
        rows[city][column] += people
    return {city: rows[city] for city in sorted(rows, key=lambda c: (c == UNKNOWN_CITY, c))}


def total_row(rows: Mapping[str, Row]) -> Row:
    return {column: sum(row[column] for row in rows.values()) for column in COLUMNS}


@dataclass(frozen=True, slots=True)
class Check:
    rule: str
    city: str
    passed: bool


def checks(rows: Mapping[str, Row], total: Row) -> list[Check]:
    """§6 "Logical checks the table must pass", row by row; the total against the city rows."""
    found = [
        Check(
            f"合计 = 各市之和 ({column})",
            TOTAL,
            total[column] == sum(row[column] for row in rows.values()),
        )
        for column in COLUMNS
    ]
    for city, row in [*rows.items(), (TOTAL, total)]:
        found += [
            Check("(2) ≤ (1)", city, row[2] <= row[1]),
            Check("(4) ≤ (3)", city, row[4] <= row[3]),
            Check("(8) ≤ (7)", city, row[8] <= row[7]),
            Check("(1) = (2)", city, row[1] == row[2]),
        ]
        if row[1] == row[2]:
            identity = row[1] == row[3] - row[4] + row[5] + row[6] + row[7]
            found.append(Check("(1) = (3) − (4) + (5) + (6) + (7)", city, identity))
    return found


@dataclass(frozen=True, slots=True)
class QuarterlyTable:
    rows: dict[str, Row]
    total: Row
    checks: list[Check]


def quarterly_table(people: Iterable[Verdict]) -> QuarterlyTable:
    return table_of(city_rows(people))


def table_of(rows: dict[str, Row]) -> QuarterlyTable:
    total = total_row(rows)
    return QuarterlyTable(rows, total, checks(rows, total))
