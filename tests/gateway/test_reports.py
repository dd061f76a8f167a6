"""Reports through the gateway (api.md "Reports"; report_routes.py): an analyst reads the
quarterly basic-data table of their region — a province's analyst every city and the total, a
city's analyst its own row — as JSON or as a CSV Excel opens; reporting's problems reach them as
the gateway's; the other roles may not. Reporting runs for real on its own database."""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from urllib.parse import unquote
from uuid import UUID

import httpx
import openpyxl
import pytest

from canbao_contracts.codes import StatusCode
from canbao_contracts.id_numbers import mask
from canbao_gateway.staff import Role
from canbao_platform.db import Database
from canbao_platform.service import create_app
from canbao_reporting.app import SERVICE, ReportingSettings
from canbao_reporting.quarterly_table import COLUMNS
from canbao_reporting.routes import clock as reporting_clock
from tests.gateway.conftest import Clock, assert_problem, bearer
from tests.gateway.services import gateway_over, identity_app
from tests.gateway.test_authorisation import audit_rows
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.identity.test_writeback import NUMBER, ac01
from tests.reporting.conftest import Reporting
from tests.reporting.conftest import reporting as reporting  # reporting's fixtures
from tests.reporting.conftest import reporting_database as reporting_database
from tests.reporting.people import UNINSURED, ZUNYI, needing_survey, verdict
from tests.reporting.test_projection import Q3_END, changed

TABLE = "/api/v1/reports/quarterly/2026Q3"
BEIJING = "110101"  # where tests/identity/test_writeback.py's person lives
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
async def gateway(
    gateway_url: str, test_clock: Clock, reporting: Reporting
) -> AsyncIterator[httpx.AsyncClient]:
    await reporting.apply(
        changed(uuid.uuid4(), verdict()), changed(uuid.uuid4(), needing_survey(region_code=ZUNYI))
    )
    reporting.clock.now = Q3_END + timedelta(days=3)
    definition = dataclasses.replace(SERVICE, components=lambda _: ())
    app = create_app(definition, ReportingSettings(database_url=reporting.database.url))
    app.dependency_overrides[reporting_clock] = lambda: reporting.clock
    async with app.router.lifespan_context(app):
        async for client in gateway_over(gateway_url, test_clock, reporting=app):
            yield client


async def test_an_analyst_reads_the_table_of_their_region(
    gateway: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    province = bearer(token_for(Role.ANALYST, "52"))
    body = (await gateway.get(TABLE, headers=province)).json()
    assert [row["city"] for row in body["rows"]] == ["5201", "5203", "total"]
    assert body["rows"][2]["columns"]["1"] == 2 and body["provisional"] is False
    assert all(check["passed"] for check in body["checks"])
    zunyi = bearer(token_for(Role.ANALYST, "5203", username="zunyi-analyst"))
    body = (await gateway.get(TABLE, headers=zunyi)).json()
    assert [(row["city"], row["columns"]["7"]) for row in body["rows"]] == [("5203", 1)]

    exported = await gateway.get(TABLE, params={"format": "csv"}, headers=province)
    assert exported.status_code == 200 and exported.content.startswith(b"\xef\xbb\xbf")
    disposition = exported.headers["content-disposition"]
    assert unquote(disposition.split("''")[1]) == "全民参保登记基础数据情况表-2026Q3-52.csv"
    lines = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert lines[0][2] == "(1) 户籍人口数" and [line[0] for line in lines[1:4]] == [
        "5201",
        "5203",
        "total",
    ]


async def test_a_quarter_that_is_not_one_is_reportings_problem_and_others_may_not_read(
    gateway: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    analyst = bearer(token_for(Role.ANALYST, "52"))
    assert_problem(
        await gateway.get("/api/v1/reports/quarterly/2026Q5", headers=analyst),
        422,
        "invalid-quarter",
    )
    assert_problem(
        await gateway.get("/api/v1/reports/quarterly/2099Q1", headers=analyst),
        422,
        "future-quarter",
    )
    for odd in ("%03%F1%9C%99%B9U", "0", "2026Q0"):  # what a fuzzer sends
        assert_problem(
            await gateway.get(f"/api/v1/reports/quarterly/{odd}", headers=analyst),
            422,
            "invalid-quarter",
        )


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
async def test_only_analysts_read_the_reports(
    gateway: httpx.AsyncClient, token_for: Callable[..., str], role: Role
) -> None:
    """The report routes' row of the authorisation matrix (test_authorisation.REPORT_ROUTES)."""
    # Column 6 of Guiyang counts no one: the list is empty, identity is not asked.
    paths = (
        TABLE,
        f"{TABLE}/people?city=5201&column=6",
        "/api/v1/reports/coverage",
        "/api/v1/reports/targets/2026",
        "/api/v1/reports/lists",
        "/api/v1/reports/lists/selective",
        f"{TABLE}/filing",
        "/api/v1/reports/employers",
        "/api/v1/reports/employers/U-NONE",
    )
    for path in paths:
        answer = await gateway.get(path, headers=bearer(token_for(role, "52")))
        if role is Role.ANALYST:
            assert answer.status_code == 200, answer.text
        else:
            assert_problem(answer, 403, "role-not-allowed")
        assert_problem(await gateway.get(path), 401, "unauthenticated")


async def test_an_analyst_reads_the_people_behind_a_number_masked_and_audited(
    gateway_url: str,
    gateway_db: Database,
    test_clock: Clock,
    token_for: Callable[..., str],
    reporting: Reporting,
    harness: Harness,
) -> None:
    await harness.apply([ac01()])  # 王伟, household in Dongcheng, Beijing
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    await reporting.apply(
        changed(person_id, needing_survey(region_code=BEIJING)),
        changed(uuid.uuid4(), needing_survey(region_code=BEIJING)),
    )
    reporting.clock.now = Q3_END + timedelta(days=3)
    definition = dataclasses.replace(SERVICE, components=lambda _: ())
    app = create_app(definition, ReportingSettings(database_url=reporting.database.url))
    app.dependency_overrides[reporting_clock] = lambda: reporting.clock
    beijing = bearer(token_for(Role.ANALYST, "11"))
    async with app.router.lifespan_context(app):
        async for gateway in gateway_over(
            gateway_url, test_clock, reporting=app, identity=identity_app(harness)
        ):
            first = await gateway.get(
                f"{TABLE}/people", headers=beijing, params={"city": "1101", "column": 7, "limit": 1}
            )
            assert first.status_code == 200, first.text
            body = first.json()
            assert (body["count"], body["column_name"]) == (2, "需调查核实人数")
            cursor = body["next_cursor"]
            second = await gateway.get(
                f"{TABLE}/people",
                headers=beijing,
                params={"city": "1101", "column": 7, "limit": 1, "cursor": cursor},
            )
            both = body["people"] + second.json()["people"]
            assert second.json()["next_cursor"] is None
            (known,) = [p for p in both if p["person_id"] == str(person_id)]
            assert (known["name"], known["id_number"]) == ("王*", mask(NUMBER))
            assert NUMBER not in first.text + second.text and "王伟" not in first.text
            (unknown,) = [p for p in both if p["person_id"] != str(person_id)]
            assert (unknown["name"], unknown["id_number"]) == (None, None)  # identity lacks them

            guizhou = await gateway.get(
                f"{TABLE}/people", headers=beijing, params={"city": "5201", "column": 7}
            )
            assert_problem(guizhou, 403, "city-out-of-scope")
    read = [row for row in await audit_rows(gateway_db) if row["purpose"] == "analysis"]
    assert {row["person_id"] for row in read} == {UUID(p["person_id"]) for p in both}
    assert all(row["staff"] == "test-analyst" and row["outcome"] == "ok" for row in read)
    assert [row["id_number_hash"] is None for row in read].count(True) == 1


async def test_an_analyst_reads_the_coverage_of_their_region(
    gateway: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    province = bearer(token_for(Role.ANALYST, "52"))
    body = (await gateway.get("/api/v1/reports/coverage", headers=province)).json()
    assert [d["region"] for d in body["divisions"]] == ["5201", "5203"]
    assert body["total"]["insurances"]["pension"] == {
        "should": 2,
        "insured": 1,
        "rate": 0.5,
        "goal": 0.9,
        "target": 0.9,
        "gap": -0.4,
    }
    assert body["total"]["survey"]["needing"] == 1
    zunyi = bearer(token_for(Role.ANALYST, "5203", username="zunyi-analyst"))
    mine = await gateway.get(
        "/api/v1/reports/coverage", headers=zunyi, params={"insurance": "medical"}
    )
    assert [d["region"] for d in mine.json()["divisions"]] == [ZUNYI]
    assert list(mine.json()["total"]["insurances"]) == ["medical"]
    theirs = await gateway.get("/api/v1/reports/coverage", headers=zunyi, params={"region": "5201"})
    assert_problem(theirs, 403, "region-out-of-scope")


async def test_a_city_enters_its_targets_and_sees_its_progress(
    gateway: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    zunyi = bearer(token_for(Role.ANALYST, "5203", username="zunyi-analyst"))
    entered = await gateway.put(
        "/api/v1/reports/targets/2026",
        headers=zunyi,
        json={"region": ZUNYI, "rates": {"pension": 0.5}},
    )
    assert entered.status_code == 200, entered.text
    assert [(t["region"], t["set_by"]) for t in entered.json()["targets"]] == [
        (ZUNYI, "zunyi-analyst")
    ]
    body = (
        await gateway.get("/api/v1/reports/coverage", headers=zunyi, params={"quarter": "2026Q3"})
    ).json()
    assert body["divisions"][0]["insurances"]["pension"]["target"] == 0.5
    assert body["slowest"]["pension"] == [ZUNYI]
    refused = await gateway.put(
        "/api/v1/reports/targets/2026",
        headers=zunyi,
        json={"region": "5201", "rates": {"pension": 0.5}},
    )
    assert_problem(refused, 403, "region-out-of-scope")
    for role in (Role.COUNTER, Role.COUNTY):
        other = bearer(token_for(role, "52"))
        put = await gateway.put(
            "/api/v1/reports/targets/2026",
            headers=other,
            json={"region": "52", "rates": {"pension": 0.5}},
        )
        assert_problem(put, 403, "role-not-allowed")


async def test_an_analyst_exports_a_list_of_the_plans_masked_and_audited(
    gateway_url: str,
    gateway_db: Database,
    test_clock: Clock,
    token_for: Callable[..., str],
    reporting: Reporting,
    harness: Harness,
) -> None:
    await harness.apply([ac01()])  # 王伟, household in Dongcheng, Beijing
    person_id = await harness.person_of(NUMBER)
    assert person_id is not None
    others = [uuid.uuid4() for _ in range(3)]
    owed = needing_survey(
        region_code=BEIJING,
        employers=("U0001",),
        statuses=UNINSURED.model_copy(update={"injury": StatusCode.UNINSURED_BY_EMPLOYER}),
    )
    await reporting.apply(
        changed(person_id, owed),
        *(changed(p, needing_survey(region_code=BEIJING)) for p in others),
        changed(uuid.uuid4(), verdict(region_code=BEIJING)),
    )
    definition = dataclasses.replace(SERVICE, components=lambda _: ())
    app = create_app(definition, ReportingSettings(database_url=reporting.database.url))
    app.dependency_overrides[reporting_clock] = lambda: reporting.clock
    beijing = bearer(token_for(Role.ANALYST, "11"))
    async with app.router.lifespan_context(app):
        async for gateway in gateway_over(
            gateway_url, test_clock, reporting=app, identity=identity_app(harness)
        ):
            summary = (await gateway.get("/api/v1/reports/lists", headers=beijing)).json()
            uninsured = next(x for x in summary["lists"] if x["name"] == "uninsured")
            assert uninsured["divisions"] == {"1101": 4} and uninsured["total"] == 4
            page = await gateway.get(
                "/api/v1/reports/lists/uninsured", headers=beijing, params={"limit": 3}
            )
            assert page.json()["count"] == 4 and len(page.json()["people"]) == 3
            exported = await gateway.get(
                "/api/v1/reports/lists/uninsured", headers=beijing, params={"format": "csv"}
            )
            assert exported.status_code == 200, exported.text
            name = unquote(exported.headers["content-disposition"].split("''")[1])
            assert name == "未参保人员名单-11.csv"
            lines = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
            assert lines[0][:3] == ["姓名", "公民身份号码", "行政区划代码"] and len(lines) == 5
            (known,) = [line for line in lines[1:] if line[0] == "王*"]
            assert known[1] == mask(NUMBER) and known[6] == "91 个人原因未参保"
            assert NUMBER not in exported.text
            refused = await gateway.get(
                "/api/v1/reports/lists/uninsured",
                headers=beijing,
                params={"region": "5201", "format": "csv"},
            )
            assert_problem(refused, 403, "region-out-of-scope")

            units = (await gateway.get("/api/v1/reports/employers", headers=beijing)).json()
            assert [(u["unit_id"], u["people"]) for u in units["employers"]] == [("U0001", 1)]
            owed = await gateway.get("/api/v1/reports/employers/U0001", headers=beijing)
            (employee,) = owed.json()["people"]
            assert (employee["name"], employee["id_number"]) == ("王*", mask(NUMBER))
    read = [row for row in await audit_rows(gateway_db) if row["purpose"] == "analysis"]
    assert len(read) == 3 + 4 + 1  # the page, the whole list as exported, the unit's employee


async def test_an_analyst_downloads_the_form_as_a_workbook_and_as_a_pdf(
    gateway: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    province = bearer(token_for(Role.ANALYST, "52"))
    body = (await gateway.get(TABLE, headers=province)).json()
    workbook = await gateway.get(TABLE, params={"format": "xlsx"}, headers=province)
    assert workbook.status_code == 200, workbook.text
    assert workbook.headers["content-type"] == XLSX
    disposition = workbook.headers["content-disposition"]
    assert disposition.startswith("attachment; ")
    assert unquote(disposition.split("''")[1]) == "全民参保登记基础数据情况表-2026Q3-52.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).worksheets[0]
    shown = [[sheet.cell(r, c).value for c in range(2, 20)] for r in range(6, 6 + 3)]
    assert shown == [
        [row["name"], *(row["columns"][str(n)] for n in COLUMNS)] for row in body["rows"]
    ]

    pdf = await gateway.get(TABLE, params={"format": "pdf"}, headers=province)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    name = unquote(pdf.headers["content-disposition"].split("''")[1])
    assert name == "全民参保登记基础数据情况表-2026Q3-52.pdf"


async def test_a_city_files_its_quarter_and_downloads_what_it_signed(
    gateway: httpx.AsyncClient, token_for: Callable[..., str]
) -> None:
    zunyi = bearer(token_for(Role.ANALYST, "5203", username="zunyi-analyst"))
    signed = {
        "filled_by": "李明",
        "section_head": "王芳",
        "unit_head": "赵强",
        "report_date": "2026-10-02",
    }
    filed = await gateway.post(f"{TABLE}/filing", headers=zunyi, json=signed)
    assert filed.status_code == 201, filed.text
    assert filed.json()["filed_by"] == "zunyi-analyst" and filed.json()["late"] is False
    again = await gateway.post(f"{TABLE}/filing", headers=zunyi, json=signed)
    assert_problem(again, 409, "already-filed")
    pdf = await gateway.get(f"{TABLE}/filing", headers=zunyi, params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    name = unquote(pdf.headers["content-disposition"].split("''")[1])
    assert name == "全民参保登记基础数据情况表-2026Q3-5203-报送.pdf"
    province = bearer(token_for(Role.ANALYST, "52"))
    state = (await gateway.get(f"{TABLE}/filing", headers=province)).json()
    assert state["state"] == "open" and state["due"] == "2026-10-25"
    assert [(c["region"], c["state"]) for c in state["cities"]] == [
        ("5201", "open"),
        ("5203", "filed"),
    ]
    county = bearer(token_for(Role.ANALYST, ZUNYI, username="county-analyst"))
    refused = await gateway.post(f"{TABLE}/filing", headers=county, json=signed)
    assert_problem(refused, 403, "not-a-filing-division")
