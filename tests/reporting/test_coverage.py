"""Coverage and progress on a real database through the internal API (coverage.py): per city of
the province, per county of a city; the rates as coverage.py defines them, counted over the
living household-registered people; the total sums the divisions; a scope stays a scope."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from canbao_contracts.codes import StatusCode
from tests.reporting.conftest import Reporting
from tests.reporting.people import (
    GUIYANG,
    INSURED,
    ZUNYI,
    deceased,
    needing_survey,
    verdict,
    verified,
)
from tests.reporting.test_people import YUNYAN
from tests.reporting.test_projection import Q3_END, changed

COVERAGE = "/internal/v1/reports/coverage"
S = StatusCode


async def coverage(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(COVERAGE, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def province(reporting: Reporting) -> None:
    """Guiyang: 3 insured in pension (one in another province), 1 needing survey (91), a child
    not required to join pension (95), someone verified as in prison (93); a dead person and a
    non-local resident, counted nowhere. Zunyi: one insured, one interrupted (94)."""
    child = INSURED.model_copy(update={"pension": S.NOT_REQUIRED})
    prisoner = INSURED.model_copy(
        update={
            "pension": S.UNINSURED_MILITARY_ABROAD_PRISON,
            "medical": S.UNINSURED_MILITARY_ABROAD_PRISON,
        }
    )
    elsewhere = INSURED.model_copy(update={"pension": S.INSURED_IN_ANOTHER_PROVINCE})
    interrupted = INSURED.model_copy(update={"pension": S.INTERRUPTED})
    people = [
        verdict(),
        verdict(region_code=YUNYAN),
        verdict(statuses=elsewhere),
        needing_survey(region_code=YUNYAN),
        verdict(statuses=child),
        verified(statuses=prisoner),
        deceased(),
        verdict(household_registered_locally=False),
        verdict(region_code=ZUNYI),
        needing_survey(region_code=ZUNYI, statuses=interrupted),
    ]
    await reporting.apply(*(changed(uuid.uuid4(), v) for v in people))


async def test_the_rates_of_each_city_and_the_province(
    province: None, client: httpx.AsyncClient
) -> None:
    body = await coverage(client, region="52")
    assert body["region"] == "52" and body["provisional"] is True
    guiyang, zunyi = body["divisions"]
    assert (guiyang["region"], zunyi["region"]) == ("5201", "5203")
    assert guiyang["people"] == 6 and zunyi["people"] == 2
    pension = guiyang["insurances"]["pension"]
    assert (pension["insured"], pension["should"], pension["rate"]) == (3, 4, 0.75)
    assert pension["goal"] == 0.9
    medical = guiyang["insurances"]["medical"]
    assert (medical["insured"], medical["should"], medical["rate"]) == (4, 5, 0.8)
    assert guiyang["insurances"]["injury"] == {
        "should": 0,
        "insured": 0,
        "rate": None,
        "goal": 0.8,
        "target": 0.8,
        "gap": None,
    }
    assert guiyang["registration"] == {"people": 6, "registered": 5, "rate": 0.8333}
    assert guiyang["survey"] == {"needing": 2, "verified": 1, "rate": 0.5, "goal": 0.9}
    assert zunyi["insurances"]["pension"]["rate"] == 0.5  # 94 should be insured
    total = body["total"]
    assert total["people"] == 8 and total["insurances"]["pension"]["should"] == 6
    assert total["survey"] == {"needing": 3, "verified": 1, "rate": 0.3333, "goal": 0.9}


async def test_a_city_sees_its_counties_and_they_sum_to_it(
    province: None, client: httpx.AsyncClient
) -> None:
    city = await coverage(client, region="5201")
    assert [d["region"] for d in city["divisions"]] == [GUIYANG, YUNYAN]
    assert city["total"]["people"] == 6 == sum(d["people"] for d in city["divisions"])
    province = await coverage(client, region="52")
    assert city["total"] == {
        k: v for k, v in province["divisions"][0].items() if k not in ("region", "name")
    }
    county = await coverage(client, region="52", division=YUNYAN, insurance="pension")
    assert [d["region"] for d in county["divisions"]] == [YUNYAN]
    assert list(county["total"]["insurances"]) == ["pension"]
    assert county["total"]["insurances"]["pension"]["rate"] == 0.5


async def test_a_past_quarter_is_as_of_its_end(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    pid = uuid.uuid4()
    await reporting.apply(changed(pid, needing_survey()))
    reporting.clock.now = Q3_END + timedelta(days=1)
    await reporting.apply(changed(pid, verdict(), needing_survey(), at=Q3_END + timedelta(hours=1)))
    q3 = await coverage(client, region="52", quarter="2026Q3")
    q4 = await coverage(client, region="52")
    assert q3["provisional"] is False and q4["quarter"] == "2026Q4"
    assert q3["total"]["insurances"]["pension"]["rate"] == 0.0
    assert q4["total"]["insurances"]["pension"]["rate"] == 1.0


@pytest.mark.parametrize(
    ("params", "status", "problem"),
    [
        ({"region": "5201", "division": "5203"}, 403, "region-out-of-scope"),
        ({"region": "5201", "division": "52"}, 403, "region-out-of-scope"),
        ({"region": "52", "division": "5x"}, 422, "invalid-region"),
        ({"region": "52", "insurance": "dental"}, 422, "invalid-request"),
        ({"region": "52", "quarter": "2099Q1"}, 422, "future-quarter"),
    ],
)
async def test_outside_the_scope_or_malformed_is_a_problem(
    client: httpx.AsyncClient, params: dict[str, Any], status: int, problem: str
) -> None:
    response = await client.get(COVERAGE, params=params)
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"/problems/{problem}"


async def test_targets_entered_by_the_province_and_a_city_rank_the_slowest(
    province: None, client: httpx.AsyncClient
) -> None:
    """Guiyang's pension is 75 %, Zunyi's 50 %. The province plans 80 % for all, Zunyi 45 %:
    Guiyang is the furthest behind its target; medical has no target: the goal holds."""
    entered = await client.put(
        "/internal/v1/reports/targets/2026",
        params={"region": "52"},
        json={"region": "52", "rates": {"pension": 0.8}},
    )
    assert entered.status_code == 200, entered.text
    await client.put(
        "/internal/v1/reports/targets/2026",
        params={"region": "52"},
        json={"region": "5203", "rates": {"pension": 0.45}},
    )
    body = await coverage(client, region="52")
    guiyang, zunyi = (d["insurances"]["pension"] for d in body["divisions"])
    assert (guiyang["target"], guiyang["gap"]) == (0.8, -0.05)
    assert (zunyi["target"], zunyi["gap"]) == (0.45, 0.05)
    assert body["slowest"]["pension"] == ["5201", "5203"]
    assert body["divisions"][0]["insurances"]["medical"]["target"] == 1.0
    listed = (
        await client.get("/internal/v1/reports/targets/2026", params={"region": "5203"})
    ).json()
    assert [(t["region"], t["rate"], t["set_by"]) for t in listed["targets"]] == [
        ("52", 0.8, "test-analyst"),
        ("5203", 0.45, "test-analyst"),
    ]
    # Revised: the newest entry holds.
    await client.put(
        "/internal/v1/reports/targets/2026",
        params={"region": "5203"},
        json={"region": "5203", "rates": {"pension": 0.6}},
    )
    zunyi = (await coverage(client, region="52"))["divisions"][1]["insurances"]["pension"]
    assert (zunyi["target"], zunyi["gap"]) == (0.6, -0.1)


@pytest.mark.parametrize(
    ("params", "body", "problem"),
    [
        ({"region": "5203"}, {"region": "5201", "rates": {"pension": 0.9}}, "region-out-of-scope"),
        ({"region": "5203"}, {"region": "52", "rates": {"pension": 0.9}}, "region-out-of-scope"),
        ({"region": "52"}, {"region": "5201", "rates": {"pension": 1.5}}, "invalid-target"),
        ({"region": "52"}, {"region": "5201", "rates": {"dental": 0.5}}, "invalid-target"),
    ],
)
async def test_a_target_outside_the_scope_or_not_a_rate_is_refused(
    client: httpx.AsyncClient, params: dict[str, str], body: dict[str, Any], problem: str
) -> None:
    response = await client.put("/internal/v1/reports/targets/2026", params=params, json=body)
    assert response.json()["type"] == f"/problems/{problem}"
    assert (await client.get("/internal/v1/reports/targets/2026")).json()["targets"] == []
