"""What the reporting service answers and the gateway passes on (api.md "Reports"): one shape
for both, so that the public API says what reporting computes. The definitions behind the
numbers are reporting's (services/reporting: coverage.py, quarterly_table.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Report(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)


class TableRow(_Report):
    city: str
    """The city's GB/T 2260 code (four digits), `total`, or `unknown` (no division known)."""
    region: str
    """The division whose people the row counts: the city, or for a county's analyst the county
    (six digits: its people's share of the city's row; the cells of its people stay the city's,
    so the people behind a number are still asked by `city`)."""
    name: str
    columns: dict[str, int]
    """Columns "1" to "17" of domain.md §6: people."""


class TableCheck(_Report):
    rule: str
    city: str
    passed: bool


class QuarterlyTable(_Report):
    """全民参保登记基础数据情况表 (domain.md §6) of the rows a region sees."""

    quarter: str
    as_of: datetime
    """The table counts every state applied before the quarter's end, or, for the current one,
    every state applied so far (this moment)."""
    provisional: bool
    """True for the current quarter: as of now, it changes until the quarter ends; a past
    quarter never changes (events arriving later count in the quarter they arrive in)."""
    rows: list[TableRow]
    checks: list[TableCheck]
    """The logical checks of domain.md §6, for the rows shown."""


class InsuranceCoverage(_Report):
    should: int
    """Should be insured: insured, 91, 92 or 94 (coverage.py)."""
    insured: int
    rate: float | None
    """insured / should; null when nobody should be."""
    goal: float
    """The documents' goal (pension 90 %, medical 100 %, the others 80 %)."""
    target: float
    """The division's target for the year (the annual expansion plan), else that of the division
    containing it, else the goal."""
    gap: float | None
    """rate − target: how far ahead (positive) or behind (negative)."""


class Registration(_Report):
    people: int
    registered: int
    rate: float | None


class SurveyProgress(_Report):
    needing: int
    verified: int
    rate: float | None
    goal: float


class Coverage(_Report):
    people: int
    """Living household-registered people (the table's column 1)."""
    insurances: dict[str, InsuranceCoverage]
    registration: Registration
    survey: SurveyProgress


class DivisionCoverage(Coverage):
    region: str
    name: str


class CoverageResponse(_Report):
    quarter: str
    as_of: datetime
    provisional: bool
    region: str
    """The division reported on; `divisions` are its cities (a province), counties (a city) or
    itself (a county)."""
    divisions: list[DivisionCoverage]
    total: Coverage
    slowest: dict[str, list[str]]
    """Per insurance, the divisions furthest behind their target first (the 通报 of the slowest);
    those with nobody to count last."""


class TargetEntry(_Report):
    region: str
    insurance: str
    rate: float
    set_by: str
    set_at: datetime


class Targets(_Report):
    year: int
    targets: list[TargetEntry]


class SetTargets(_Report):
    """A division's targets for the year, per insurance (0-1): the annual expansion plan."""

    region: str
    rates: dict[str, float]


class PlanListCount(_Report):
    name: str
    """insured_locally, insured_elsewhere, uninsured, partly_insured, interrupted, selective,
    resident_scheme_employees (reporting's plan_lists.py defines each)."""
    label: str
    divisions: dict[str, int]
    """People on the list per division of the region (cities of a province, counties of a
    city)."""
    total: int


class PlanLists(_Report):
    quarter: str
    as_of: datetime
    provisional: bool
    region: str
    lists: list[PlanListCount]


class Signatures(_Report):
    """Who signs the table off and what they say with it (domain.md §6: 填表人, 处(科)负责人,
    单位负责人, 报出日期, and the explanatory note 相关情况说明)."""

    filled_by: str = Field(min_length=1, max_length=40)
    """填表人."""
    section_head: str = Field(min_length=1, max_length=40)
    """处(科)负责人."""
    unit_head: str = Field(min_length=1, max_length=40)
    """单位负责人."""
    report_date: date
    """报出日期."""
    note: str = Field(default="", max_length=4000)
    """相关情况说明: required when a logical check fails (it says why)."""


class Filing(_Report):
    """A filed table: immutable; its xlsx and PDF are the files that were signed."""

    quarter: str
    region: str
    """The filing division: the province (52) or a city (5201)."""
    due: date
    """The 25th of the month after the quarter (domain.md §6)."""
    filed_at: datetime
    filed_by: str
    """The analyst who filed it."""
    late: bool
    """Filed after its due date (China time)."""
    signatures: Signatures
    table: QuarterlyTable


class DivisionFiling(_Report):
    region: str
    state: Literal["filed", "open", "overdue"]
    """filed; open: not yet, the due date not passed; overdue: not filed by its due date."""
    filed_at: datetime | None


class FilingState(_Report):
    quarter: str
    region: str
    due: date
    state: Literal["filed", "open", "overdue"]
    filing: Filing | None
    cities: list[DivisionFiling]
    """For the province: each city's filing of the quarter (the cities with people counted)."""


class EmployerGap(_Report):
    unit_id: str
    """AAB001 (si_core) or emp_no (medical): the unit as the business systems know it."""
    name: str | None = None
    """AAB004, the unit's name in si_core.ab01 (registry.units); null for a unit it lacks
    (medical's emp_no of a unit the core system does not hold) or has deleted."""
    credit_code: str | None = None
    """AAB003, its unified social credit code, where si_core holds a valid one."""
    people: int
    """Its employees in the region not enrolled in at least one insurance (code 92)."""
    insurances: dict[str, int]
    """Of them, those with 92 in each insurance."""


class Employers(_Report):
    """Employers leaving employees out (domain.md §5 code 92), the most first: for labour
    inspection (劳动监察, 40号 三(一)2 and 三(二)2)."""

    quarter: str
    as_of: datetime
    provisional: bool
    region: str
    employers: list[EmployerGap]
    units: int
    """How many employers leave someone out in all (the list shows the first `limit`)."""


class PersonBehind(_Report):
    """One person behind a number or on a list, as the verdict counted them. Reporting holds no
    names or numbers: the gateway adds them from identity, masked (api.md)."""

    person_id: UUID
    name: str | None = None
    """张*; null while no source gives a name."""
    id_number: str | None = None
    """5201**********123X; null for a person known without a citizen number."""
    city: str
    """The row they count in (in the total row, once per city they count in)."""
    region_code: str | None
    gender: str | None
    birth_year: int | None
    registration: str
    statuses: dict[str, str | None]
    survey_reasons: list[str]


class _Page(_Report):
    quarter: str
    as_of: datetime
    provisional: bool
    count: int
    """How many in all: every page together lists this many."""
    people: list[PersonBehind]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last."""


class CellPeople(_Page):
    """The people behind a cell of the quarterly table (报表及对应人员明细)."""

    city: str
    column: int
    column_name: str


class ListPeople(_Page):
    """The people on one of the plans' lists, or a unit's employees left out (92)."""

    region: str
    name: str
    label: str
