"""The plans' lists (plan_lists.py), person by person: which lists a clerk would put each kind of
person on; then on a real database through the internal API, per division and page by page."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx

from canbao_contracts.codes import StatusCode
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_reporting.plan_lists import PlanList, lists_of
from tests.reporting.conftest import Reporting
from tests.reporting.people import (
    INSURED,
    ZUNYI,
    deceased,
    insured_elsewhere,
    needing_survey,
    verdict,
)
from tests.reporting.test_people import YUNYAN
from tests.reporting.test_projection import changed

S = StatusCode
L = PlanList


def statuses(**codes: StatusCode) -> Any:
    return INSURED.model_copy(update=codes)


EMPLOYEE = statuses(
    pension=S.URBAN_EMPLOYEE_PENSION,
    medical=S.EMPLOYEE_MEDICAL,
    injury=S.INJURY_INSURED,
    unemployment=S.UNEMPLOYMENT_INSURED,
    maternity=S.MATERNITY_INSURED,
)


def test_a_resident_insured_at_home_is_on_the_local_list_only() -> None:
    assert lists_of(verdict()) == {L.INSURED_LOCALLY}


def test_insured_only_by_the_comparisons_is_insured_elsewhere() -> None:
    for scope in (ComparisonScope.PROVINCE, ComparisonScope.NATIONAL):
        assert lists_of(insured_elsewhere(scope)) == {L.INSURED_ELSEWHERE}


def test_insured_in_nothing_is_uninsured_whatever_the_reason() -> None:
    assert lists_of(needing_survey()) == {L.UNINSURED}
    soldier = statuses(
        pension=S.UNINSURED_MILITARY_ABROAD_PRISON, medical=S.UNINSURED_MILITARY_ABROAD_PRISON
    )
    assert lists_of(verdict(statuses=soldier)) == {L.UNINSURED}


def test_insured_in_one_and_not_joined_another_is_partly_insured() -> None:
    person = verdict(statuses=statuses(pension=S.UNINSURED_INDIVIDUAL))
    assert lists_of(person) == {L.INSURED_LOCALLY, L.PARTLY_INSURED}


def test_an_interrupted_payment_is_on_the_interrupted_list() -> None:
    person = verdict(statuses=statuses(pension=S.INTERRUPTED))
    assert lists_of(person) == {L.INSURED_LOCALLY, L.INTERRUPTED}
    assert L.UNINSURED in lists_of(
        verdict(statuses=statuses(pension=S.INTERRUPTED, medical=S.INTERRUPTED))
    )


def test_a_unit_that_enrols_in_some_insurances_only_is_selective() -> None:
    person = verdict(statuses=EMPLOYEE.model_copy(update={"unemployment": S.UNINSURED_BY_EMPLOYER}))
    assert lists_of(person) == {L.INSURED_LOCALLY, L.SELECTIVE}


def test_an_employee_left_to_the_residents_schemes_is_listed() -> None:
    left = statuses(
        injury=S.UNINSURED_BY_EMPLOYER,
        unemployment=S.UNINSURED_BY_EMPLOYER,
        maternity=S.UNINSURED_BY_EMPLOYER,
    )
    assert lists_of(verdict(statuses=left)) == {
        L.INSURED_LOCALLY,
        L.SELECTIVE,
        L.RESIDENT_SCHEME_EMPLOYEES,
    }


def test_the_dead_and_people_registered_elsewhere_are_on_no_list() -> None:
    assert lists_of(deceased()) == set()
    assert lists_of(needing_survey(household_registered_locally=False)) == set()


async def test_the_lists_per_division_and_their_people(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    people = {
        uuid.uuid4(): v
        for v in [
            verdict(),
            verdict(region_code=YUNYAN),
            needing_survey(),
            needing_survey(region_code=YUNYAN),
            needing_survey(region_code=ZUNYI),
            verdict(statuses=statuses(pension=S.INTERRUPTED)),
        ]
    }
    await reporting.apply(*(changed(pid, v) for pid, v in people.items()))
    summary = (await client.get("/internal/v1/reports/lists", params={"region": "52"})).json()
    uninsured = next(x for x in summary["lists"] if x["name"] == "uninsured")
    assert uninsured == {
        "name": "uninsured",
        "label": "未参保人员名单",
        "divisions": {"5201": 2, "5203": 1},
        "total": 3,
    }
    assert [x["name"] for x in summary["lists"]] == [name.value for name in PlanList]

    city = (await client.get("/internal/v1/reports/lists", params={"region": "5201"})).json()
    assert next(x for x in city["lists"] if x["name"] == "uninsured")["divisions"] == {
        "520102": 1,
        YUNYAN: 1,
    }

    listed, params = [], {"region": "52", "division": "5201", "limit": 1}
    while True:
        page = (await client.get("/internal/v1/reports/lists/uninsured", params=params)).json()
        assert page["count"] == 2
        listed += [p["person_id"] for p in page["people"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    expected = {
        str(pid)
        for pid, v in people.items()
        if L.UNINSURED in lists_of(v) and v.region_code.startswith("5201")
    }
    assert sorted(listed) == sorted(expected)

    refused = await client.get(
        "/internal/v1/reports/lists/uninsured", params={"region": "5203", "division": "5201"}
    )
    assert refused.json()["type"] == "/problems/region-out-of-scope"
    unknown = await client.get("/internal/v1/reports/lists/everyone", params={"region": "52"})
    assert unknown.status_code == 422


async def test_the_long_interrupted_are_those_stopped_a_year_before_the_day_counted(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    """The clock is 15 August 2026: stopped on 31 July 2025 is more than a year; 31 March 2026
    is not, until April 2027."""
    long_ago, lately = uuid.uuid4(), uuid.uuid4()
    stopped = statuses(pension=S.INTERRUPTED)
    await reporting.apply(
        changed(long_ago, verdict(statuses=stopped, interrupted_since=date(2025, 7, 31))),
        changed(lately, verdict(statuses=stopped, interrupted_since=date(2026, 3, 31))),
        changed(uuid.uuid4(), verdict(statuses=stopped)),  # no period end: not dated
    )

    async def long_interrupted() -> list[str]:
        page = (
            await client.get("/internal/v1/reports/lists/long_interrupted", params={"region": "52"})
        ).json()
        summary = (await client.get("/internal/v1/reports/lists", params={"region": "52"})).json()
        total = next(x["total"] for x in summary["lists"] if x["name"] == "long_interrupted")
        assert total == page["count"] == len(page["people"])
        return [p["person_id"] for p in page["people"]]

    assert await long_interrupted() == [str(long_ago)]
    reporting.clock.now = datetime(2027, 4, 2, tzinfo=UTC)
    assert sorted(await long_interrupted()) == sorted([str(long_ago), str(lately)])
