"""Employers leaving employees out (domain.md §5 code 92; 40号 三(一)2, 三(二)2): per unit the
region's employees not enrolled in each insurance, the units leaving out the most first, named as
si_core.ab01 names them (registry.units), and the people behind each unit's number, on a real
database through the internal API."""

from __future__ import annotations

import uuid

import httpx

from canbao_contracts.codes import StatusCode
from canbao_contracts.events import UnitChanged, UnitDeleted
from tests.reporting.conftest import Reporting
from tests.reporting.people import INSURED, ZUNYI, deceased, verdict
from tests.reporting.test_projection import changed

S = StatusCode
CREDIT_CODE = "91520102MA6DK3XC4L"
NO_INJURY = INSURED.model_copy(update={"injury": S.UNINSURED_BY_EMPLOYER})
NOTHING_BUT_MEDICAL = INSURED.model_copy(
    update={
        "pension": S.UNINSURED_BY_EMPLOYER,
        "injury": S.UNINSURED_BY_EMPLOYER,
        "unemployment": S.UNINSURED_BY_EMPLOYER,
        "maternity": S.UNINSURED_BY_EMPLOYER,
    }
)


async def test_the_units_leaving_out_the_most_come_first_with_their_people(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    a = [uuid.uuid4() for _ in range(3)]
    await reporting.apply(
        *(changed(p, verdict(statuses=NO_INJURY, employers=("U-A",))) for p in a[:2]),
        changed(a[2], verdict(statuses=NOTHING_BUT_MEDICAL, employers=("U-A", "U-B"))),
        changed(uuid.uuid4(), verdict(statuses=NO_INJURY, employers=("U-C",), region_code=ZUNYI)),
        changed(uuid.uuid4(), verdict(employers=("U-D",))),  # enrolled in everything it owes
        changed(uuid.uuid4(), deceased(employers=("U-A",))),
    )
    body = (await client.get("/internal/v1/reports/employers", params={"region": "52"})).json()
    assert [(e["unit_id"], e["people"]) for e in body["employers"]] == [
        ("U-A", 3),
        ("U-B", 1),
        ("U-C", 1),
    ]
    assert body["employers"][0]["insurances"] == {
        "pension": 1,
        "medical": 0,
        "injury": 3,
        "unemployment": 1,
        "maternity": 1,
    }
    assert body["units"] == 3
    guiyang = (
        await client.get("/internal/v1/reports/employers", params={"region": "5201", "limit": 1})
    ).json()
    assert [e["unit_id"] for e in guiyang["employers"]] == ["U-A"] and guiyang["units"] == 2

    listed, params = [], {"region": "52", "limit": 2}
    while True:
        page = (await client.get("/internal/v1/reports/employers/U-A", params=params)).json()
        assert page["count"] == 3 and page["label"] == "单位应参保未参保职工名单（U-A）"
        listed += [p["person_id"] for p in page["people"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert sorted(listed) == sorted(str(p) for p in a)
    zunyi = await client.get("/internal/v1/reports/employers/U-A", params={"region": "5203"})
    assert zunyi.json()["count"] == 0 and zunyi.json()["people"] == []


async def test_a_unit_is_named_as_the_core_system_last_held_it(
    reporting: Reporting, client: httpx.AsyncClient
) -> None:
    """registry.units names the units of si_core.ab01; the newest revision wins whatever the
    order of arrival; a deleted unit and a unit only medical knows (its emp_no) are unnamed."""
    await reporting.apply(
        *(
            changed(uuid.uuid4(), verdict(statuses=NO_INJURY, employers=(unit,)))
            for unit in ("U-A", "U-A", "U-B", "E-MED")
        ),
        UnitChanged(
            unit_id="U-A",
            revision=20,
            credit_code=CREDIT_CODE,
            unit_name="贵阳黔盛建设集团有限公司",
            unit_type="10",
            region_code="520102",
        ),
        UnitChanged(unit_id="U-A", revision=10, unit_name="贵阳黔盛建筑工程有限公司"),  # late
        UnitChanged(unit_id="U-B", revision=10, unit_name="贵阳筑城商贸有限公司"),
        UnitDeleted(unit_id="U-B", revision=11),
    )
    body = (await client.get("/internal/v1/reports/employers", params={"region": "52"})).json()
    assert [(e["unit_id"], e["name"], e["credit_code"]) for e in body["employers"]] == [
        ("U-A", "贵阳黔盛建设集团有限公司", CREDIT_CODE),
        ("E-MED", None, None),
        ("U-B", None, None),
    ]
    named = (await client.get("/internal/v1/reports/employers/U-A", params={"region": "52"})).json()
    assert named["label"] == "单位应参保未参保职工名单（贵阳黔盛建设集团有限公司，U-A）"
    unnamed = await client.get("/internal/v1/reports/employers/E-MED", params={"region": "52"})
    assert unnamed.json()["label"] == "单位应参保未参保职工名单（E-MED）"
