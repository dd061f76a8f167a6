"""domain.md §6 column by column, each with a scenario a clerk would recognise, and the logical
checks: they hold on any people, and fail on a table that breaks them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from canbao_contracts.codes import FlagType, Insurance, StatusCode
from canbao_contracts.events import Verdict
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_reporting.quarterly_table import (
    COLUMNS,
    Row,
    checks,
    quarterly_table,
    total_row,
)
from tests.reporting.people import (
    GUIYANG,
    INSURED,
    ZUNYI,
    deceased,
    flagged,
    insured_elsewhere,
    needing_survey,
    verdict,
    verified,
)

S = StatusCode


def counts(*people: Verdict) -> dict[str, dict[int, int]]:
    """The table's rows, city → only the non-zero columns, the total as "total"."""
    table = quarterly_table(people)
    rows = table.rows | {"total": table.total}
    return {city: {c: n for c, n in row.items() if n} for city, row in rows.items()}


def test_a_household_person_confirmed_by_the_citys_own_records_is_in_1_2_and_3() -> None:
    assert counts(verdict()) == {"5201": {1: 1, 2: 1, 3: 1}, "total": {1: 1, 2: 1, 3: 1}}


def test_a_household_person_whose_data_public_security_has_not_sent_is_not_in_2() -> None:
    assert counts(verdict(household_data_obtained=False))["5201"] == {1: 1, 3: 1}


def test_a_non_local_household_insured_here_is_in_3_and_4_only() -> None:
    migrant = verdict(household_registered_locally=False, household_data_obtained=False)
    assert counts(migrant)["5201"] == {3: 1, 4: 1}


def test_insured_in_another_city_of_the_province_counts_in_the_home_citys_5() -> None:
    # A Guiyang household whose enrolment the province's systems hold in Zunyi (§6 "local is
    # relative to each city"): Guiyang's column 5; Zunyi's records confirm a non-local household.
    table = counts(verdict(enrolment_cities=("5203",)))
    assert table["5201"] == {1: 1, 2: 1, 5: 1}
    assert table["5203"] == {3: 1, 4: 1}


def test_enrolled_at_home_and_in_another_city_is_local_at_home() -> None:
    table = counts(verdict(enrolment_cities=("5201", "5203")))
    assert table["5201"] == {1: 1, 2: 1, 3: 1}
    assert table["5203"] == {3: 1, 4: 1}


def test_confirmed_by_the_provincial_comparison_is_in_5() -> None:
    assert counts(insured_elsewhere(ComparisonScope.PROVINCE))["5201"] == {1: 1, 2: 1, 5: 1}


def test_confirmed_by_the_national_comparison_is_in_6() -> None:
    assert counts(insured_elsewhere(ComparisonScope.NATIONAL))["5201"] == {1: 1, 2: 1, 6: 1}


def test_a_person_needing_survey_is_in_7_and_the_uninsured_columns() -> None:
    assert counts(needing_survey())["5201"] == {1: 1, 2: 1, 7: 1, 9: 1, 12: 1}


def test_a_person_verified_after_survey_stays_in_7_and_is_in_8() -> None:
    assert counts(verified())["5201"] == {1: 1, 2: 1, 7: 1, 8: 1}


def test_should_be_insured_means_91_and_92_in_each_insurance() -> None:
    employee = INSURED.model_copy(
        update={
            "pension": S.UNINSURED_BY_EMPLOYER,
            "injury": S.UNINSURED_BY_EMPLOYER,
            "unemployment": S.UNINSURED_INDIVIDUAL,
            "maternity": S.UNINSURED_BY_EMPLOYER,
        }
    )
    row = counts(needing_survey(statuses=employee))["5201"]
    assert {c for c in row if c >= 9} == {9, 15, 16, 17}


def test_a_soldier_or_a_child_not_required_to_join_is_not_should_be_insured() -> None:
    excused = INSURED.model_copy(
        update={"pension": S.UNINSURED_MILITARY_ABROAD_PRISON, "medical": S.NOT_REQUIRED}
    )
    assert counts(verdict(statuses=excused))["5201"] == {1: 1, 2: 1, 3: 1}


def test_duplicate_insurance_and_benefits_of_pension_and_medical() -> None:
    person = flagged(
        (FlagType.DUPLICATE_INSURANCE, Insurance.PENSION),
        (FlagType.DUPLICATE_INSURANCE, Insurance.MEDICAL),
        (FlagType.DUPLICATE_BENEFITS, Insurance.PENSION),
        (FlagType.DUPLICATE_BENEFITS, Insurance.MEDICAL),
    )
    assert {c for c in counts(person)["5201"] if c >= 9} == {10, 11, 13, 14}


def test_the_deceased_are_counted_nowhere() -> None:
    assert counts(deceased(), verdict()) == counts(verdict())


def test_each_city_has_its_row_and_the_total_sums_them() -> None:
    table = counts(verdict(), verdict(region_code=ZUNYI), needing_survey(region_code=ZUNYI))
    assert list(table) == ["5201", "5203", "total"]
    assert table["5203"] == {1: 2, 2: 2, 3: 1, 7: 1, 9: 1, 12: 1}
    assert table["total"] == {1: 3, 2: 3, 3: 2, 7: 1, 9: 1, 12: 1}


def test_a_person_without_a_region_has_a_row_of_their_own() -> None:
    assert list(counts(verdict(region_code=None), verdict(region_code=GUIYANG))) == [
        "5201",
        "unknown",
        "total",
    ]


# -- The logical checks ---------------------------------------------------------------------------

SCOPES = st.sampled_from([None, *ComparisonScope])


@st.composite
def people(draw: st.DrawFn) -> Verdict:
    kind = draw(st.sampled_from(["confirmed", "survey", "verified", "elsewhere", "dead"]))
    fields = dict(
        region_code=draw(st.sampled_from([GUIYANG, ZUNYI, "520402", None])),
        household_registered_locally=draw(st.booleans()),
        household_data_obtained=draw(st.booleans()),
    )
    person = {
        "confirmed": verdict,
        "survey": needing_survey,
        "verified": verified,
        "dead": deceased,
        "elsewhere": lambda **f: insured_elsewhere(
            draw(st.sampled_from([ComparisonScope.PROVINCE, ComparisonScope.NATIONAL])), **f
        ),
    }[kind](**fields)
    cities = draw(st.lists(st.sampled_from(["5201", "5203", "5204"]), unique=True, max_size=2))
    return person.model_copy(update={"enrolment_cities": tuple(sorted(cities))})


@given(st.lists(people(), max_size=40))
def test_the_checks_pass_on_any_people(crowd: list[Verdict]) -> None:
    table = quarterly_table(crowd)
    failed = [c for c in table.checks if not c.passed and c.rule != "(1) = (2)"]
    assert failed == []
    for city, row in [*table.rows.items(), ("total", table.total)]:
        obtained = next(c for c in table.checks if c.city == city and c.rule == "(1) = (2)")
        assert obtained.passed == (row[1] == row[2])


def _failed(rows: dict[str, Row], total: Row | None = None) -> set[tuple[str, str]]:
    return {(c.city, c.rule) for c in checks(rows, total or total_row(rows)) if not c.passed}


def _row(**columns: int) -> Row:
    return dict.fromkeys(COLUMNS, 0) | {int(c[1:]): n for c, n in columns.items()}


def test_each_check_fails_on_a_row_that_breaks_it() -> None:
    consistent = _row(c1=5, c2=5, c3=3, c4=1, c5=1, c7=2, c8=1)
    assert _failed({"5201": consistent}) == set()
    assert ("5201", "(8) ≤ (7)") in _failed({"5201": consistent | {8: 3}})
    assert ("5201", "(4) ≤ (3)") in _failed({"5201": consistent | {4: 4, 5: 4}})
    assert ("5201", "(2) ≤ (1)") in _failed({"5201": consistent | {2: 6}})
    assert _failed({"5201": consistent | {6: 1}}) == {
        ("5201", "(1) = (3) − (4) + (5) + (6) + (7)"),
        ("total", "(1) = (3) − (4) + (5) + (6) + (7)"),
    }


def test_the_row_identity_is_checked_only_where_1_equals_2() -> None:
    incomplete = _row(c1=5, c2=4, c3=9)
    assert _failed({"5201": incomplete}) == {("5201", "(1) = (2)"), ("total", "(1) = (2)")}


def test_a_total_that_is_not_the_sum_of_the_cities_fails() -> None:
    rows = {"5201": _row(c1=1, c2=1, c3=1), "5203": _row(c1=1, c2=1, c7=1)}
    wrong = total_row(rows) | {7: 2}
    assert ("total", "合计 = 各市之和 (7)") in _failed(rows, wrong)
