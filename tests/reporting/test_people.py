"""The people behind every number of the table (domain.md §1 "reports with the list of people
behind every number"; api.md "Reports"), on a real database through the internal API: each cell
of every row and of the total lists exactly the people it counts, page after page; a county's
people sum to its city's row; a past quarter's lists are frozen like its numbers."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from canbao_contracts.codes import FlagType, Insurance
from canbao_contracts.events import Verdict
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_reporting.quarterly_table import TOTAL, cells_of
from tests.reporting.conftest import Reporting
from tests.reporting.people import (
    GUIYANG,
    ZUNYI,
    deceased,
    flagged,
    insured_elsewhere,
    needing_survey,
    verdict,
    verified,
)
from tests.reporting.test_projection import Q3_END, changed, table

NANMING = GUIYANG  # 南明区
YUNYAN = "520103"  # another district of 贵阳市
PEOPLE = "/internal/v1/reports/quarterly/{quarter}/people"


def crowd() -> list[Verdict]:
    """Every kind of person the table tells apart, in three districts of two cities."""
    kinds = [
        verdict,
        needing_survey,
        verified,
        deceased,
        lambda **f: insured_elsewhere(ComparisonScope.PROVINCE, **f),
        lambda **f: insured_elsewhere(ComparisonScope.NATIONAL, **f),
        lambda **f: flagged(
            (FlagType.DUPLICATE_INSURANCE, Insurance.PENSION),
            (FlagType.DUPLICATE_BENEFITS, Insurance.MEDICAL),
            **f,
        ),
        lambda **f: verdict(household_registered_locally=False, **f),
        lambda **f: needing_survey(household_data_obtained=False, **f),
    ]
    regions = [NANMING, YUNYAN, ZUNYI, None]
    return [kind(region_code=region) for kind, region in itertools.product(kinds, regions)]


async def listed(
    client: httpx.AsyncClient,
    quarter: str,
    city: str,
    column: int,
    *,
    region: str | None = None,
    limit: int = 3,
) -> tuple[int, list[tuple[UUID, str]]]:
    """The cell's count and everyone its pages list, (person_id, city), following next_cursor."""
    params: dict[str, Any] = {"city": city, "column": column, "limit": limit}
    if region is not None:
        params["region"] = region
    entries: list[tuple[UUID, str]] = []
    while True:
        response = await client.get(PEOPLE.format(quarter=quarter), params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["people"]) <= limit
        entries += [(UUID(p["person_id"]), p["city"]) for p in page["people"]]
        if page["next_cursor"] is None:
            return page["count"], entries
        params["cursor"] = page["next_cursor"]


async def test_every_cell_lists_exactly_the_people_it_counts(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    people = {uuid.uuid4(): v for v in crowd()}
    await reporting.apply(*(changed(pid, v) for pid, v in people.items()))
    reporting.clock.now = Q3_END + timedelta(days=2)
    body = await table(client)
    expected: dict[tuple[str, int], set[UUID]] = {}
    for pid, person in people.items():
        for cell in cells_of(person):
            expected.setdefault(cell, set()).add(pid)
    nonzero = 0
    for row in body["rows"]:
        for column, number in ((int(c), n) for c, n in row["columns"].items()):
            count, entries = await listed(client, "2026Q3", row["city"], column)
            assert count == number == len(entries), (row["city"], column)
            assert len(set(entries)) == len(entries)  # no one twice
            if row["city"] == TOTAL:
                by_city = {r["city"]: r["columns"][str(column)] for r in body["rows"][:-1]}
                assert Counter(city for _, city in entries) == +Counter(by_city)
            else:
                assert {pid for pid, _ in entries} == expected.get((row["city"], column), set())
            nonzero += number > 0
    assert nonzero > 40  # the crowd fills most cells: the comparison covered them


async def test_a_countys_people_sum_to_its_citys_row(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    await reporting.apply(*(changed(uuid.uuid4(), v) for v in crowd()))
    reporting.clock.now = Q3_END + timedelta(days=2)
    city = (await table(client))["rows"][0]
    assert city["city"] == city["region"] == "5201"
    counties = []
    for county in (NANMING, YUNYAN):
        answer = (
            await client.get("/internal/v1/reports/quarterly/2026Q3", params={"region": county})
        ).json()
        assert [(row["city"], row["region"], row["name"]) for row in answer["rows"]] == [
            ("5201", county, county)
        ]
        counties.append(answer["rows"][0]["columns"])
        count, entries = await listed(client, "2026Q3", "5201", 7, region=county)
        assert count == answer["rows"][0]["columns"]["7"] == len(entries) > 0
    assert {c: counties[0][c] + counties[1][c] for c in city["columns"]} == city["columns"]


async def test_a_past_quarters_people_are_frozen(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    pid, other = uuid.uuid4(), uuid.uuid4()
    await reporting.apply(changed(pid, needing_survey()), changed(other, needing_survey()))
    reporting.clock.now = Q3_END + timedelta(hours=1)
    later = Q3_END + timedelta(minutes=30)
    await reporting.apply(changed(pid, verified(), needing_survey(), at=later))
    assert (await listed(client, "2026Q3", "5201", 8))[0] == 0
    assert await listed(client, "2026Q3", "5201", 7) == (
        2,
        sorted([(pid, "5201"), (other, "5201")]),
    )
    assert await listed(client, "2026Q4", "5201", 8) == (1, [(pid, "5201")])


async def test_each_person_says_how_the_verdict_counted_them(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    pid = uuid.uuid4()
    await reporting.apply(changed(pid, needing_survey(region_code=ZUNYI)))
    page = (
        await client.get(PEOPLE.format(quarter="2026Q3"), params={"city": "5203", "column": 9})
    ).json()
    assert page["provisional"] is True and page["column_name"] == "养老保险应参保未参保人数"
    assert page["people"] == [
        {
            "person_id": str(pid),
            "name": None,
            "id_number": None,
            "city": "5203",
            "region_code": ZUNYI,
            "gender": "1",
            "birth_year": 1990,
            "registration": "needs_survey",
            "statuses": {
                "pension": "91",
                "medical": "91",
                "injury": "95",
                "unemployment": "95",
                "maternity": "95",
            },
            "survey_reasons": ["uninsured"],
        }
    ]
    assert page["count"] == 1 and page["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "status", "problem"),
    [
        ({"city": "5203", "column": 7, "region": "5201"}, 403, "city-out-of-scope"),
        ({"city": TOTAL, "column": 7, "region": "5201"}, 403, "city-out-of-scope"),
        ({"city": "52", "column": 7}, 422, "invalid-cell"),
        ({"city": "5201", "column": 18}, 422, "invalid-request"),
        ({"city": "5201", "column": 7, "cursor": "not-a-cursor"}, 422, "invalid-cursor"),
        ({"city": "5201", "column": 7, "region": "5x"}, 422, "invalid-region"),
    ],
)
async def test_a_cell_not_of_the_table_or_not_yours_is_a_problem(
    client: httpx.AsyncClient, params: dict[str, Any], status: int, problem: str
) -> None:
    response = await client.get(PEOPLE.format(quarter="2026Q3"), params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{problem}"
