"""The analyst's page (统计分析, report_page.py) as the gateway serves it — the page, its script
and style sheet with the headers that keep it to its own script, the column names of the
contracts, plotly.js from the installed package under its version — and at work in a real
browser (Debian's chromium, headless, driven by Playwright) against the gateway and reporting
running for real on their databases: an analyst logs in, reads the quarterly basic-data table
of domain.md §6 with the numbers the JSON API answers and its logical checks, a failed one
marked in the table, changes quarter, downloads the table, files a past quarter (报送) and
downloads the signed PDF, opens the people on a plan's list and downloads it, reads the
employers leaving employees out by name, enters the year's targets; a city's analyst
sees their city only; another role is not let in.
Screenshots of each step are kept in `artifacts/report-page/` (CANBAO_ARTIFACTS moves them)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import ConsoleMessage, Page, async_playwright, expect

from canbao_contracts.codes import FlagType, Insurance, RegistrationState, StatusCode
from canbao_contracts.events import UnitChanged
from canbao_contracts.events.vocabulary import ComparisonScope
from canbao_contracts.id_numbers import mask
from canbao_contracts.report_columns import COLUMN_GROUPS_ZH, COLUMN_NAMES_ZH
from canbao_gateway.app import create
from canbao_gateway.clock import clock
from canbao_gateway.report_page import plotly_file, plotly_path, plotly_version
from canbao_gateway.staff import Role
from canbao_platform.local.postgres import free_port
from canbao_platform.service import create_app
from canbao_reporting.app import SERVICE, ReportingSettings
from canbao_reporting.routes import clock as reporting_clock
from tests.gateway.conftest import Clock, bearer, settings_for
from tests.gateway.people import NANMING, citizen
from tests.gateway.services import hukou, identity_app
from tests.identity.conftest import Harness
from tests.identity.conftest import harness as harness  # identity's fixtures
from tests.identity.conftest import identity_db as identity_db
from tests.reporting.conftest import Reporting
from tests.reporting.conftest import reporting as reporting  # reporting's fixtures
from tests.reporting.conftest import reporting_database as reporting_database
from tests.reporting.people import (
    ZUNYI,
    flagged,
    insured_elsewhere,
    needing_survey,
    verdict,
    verified,
)
from tests.reporting.test_employers import CREDIT_CODE, NO_INJURY
from tests.reporting.test_projection import changed
from tests.stack.counter_browser import CHROMIUM, CHROMIUM_ARGS

LABELS = re.compile(r'<script type="application/json" id="labels">(.*?)</script>', re.S)
FILES = (
    ("/reports", "text/html"),
    ("/reports/reports.js", "text/javascript"),
    ("/reports/reports.css", "text/css"),
)
TABLE = "/api/v1/reports/quarterly/{}"
COVERAGE = "/api/v1/reports/coverage"
# Two people of Guiyang whom identity knows by name and number: one needing a survey, one verified.
ZHANG, LI = citizen(NANMING, "19850312", "021"), citizen(NANMING, "19920704", "042")


async def labels_of_page(client: httpx.AsyncClient) -> dict[str, Any]:
    found = LABELS.search((await client.get("/reports")).text)
    assert found is not None
    labels: dict[str, Any] = json.loads(found.group(1))
    return labels


# -- The page as served -------------------------------------------------------------------------


async def test_the_page_is_the_analysts_in_chinese(client: httpx.AsyncClient) -> None:
    response = await client.get("/reports")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<html lang="zh-CN">' in page
    assert "<title>全民参保登记 · 统计分析</title>" in page
    for words in (
        "全民参保登记基础数据情况表",
        "逻辑校验",
        "人员明细",
        "加载更多",
        "参保覆盖情况",
        "下载报表（CSV）",
        "下载报表（Excel）",
        "下载报表（PDF）",
    ):
        assert words in page, words
    for control in re.findall(r'<(?:input|select|textarea) id="([a-z-]+)"', page):
        assert f'<label for="{control}">' in page, control
    assert page.count('aria-live="polite"') >= 2


async def test_the_labels_are_the_contracts(client: httpx.AsyncClient) -> None:
    labels = await labels_of_page(client)
    assert labels["columns"] == {str(n): name for n, name in COLUMN_NAMES_ZH.items()}
    assert labels["columns"]["4"] == "其中：非本地户籍人数"
    assert [(g["label"], tuple(g["columns"])) for g in labels["groups"]] == list(COLUMN_GROUPS_ZH)
    assert labels["insurances"] == [{"key": i.value, "label": i.label} for i in Insurance]
    assert labels["statuses"] == {code.value: code.label for code in StatusCode}
    assert labels["registration"] == {s.value: s.label for s in RegistrationState}
    assert labels["genders"] == {"1": "男", "2": "女"}
    assert labels["roles"]["analyst"] == "统计分析"
    assert labels["survey_goal"] == 0.9  # domain.md §1
    assert labels["plotly"] == f"/reports/plotly-{plotly_version()}.min.js"


async def test_the_page_runs_only_its_own_script(client: httpx.AsyncClient) -> None:
    for path, kind in FILES:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy, path
        assert "style-src 'self'" in policy and "connect-src 'self'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
        assert "frame-ancestors 'none'" in policy, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert response.headers["cache-control"] == "no-cache", path
    page = (await client.get("/reports")).text
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert [attributes for attributes, body in scripts if body.strip()] == [
        ' type="application/json" id="labels"'
    ]
    assert [attributes for attributes, body in scripts if not body.strip()] == [
        ' src="/reports/reports.js" defer'
    ]
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers either
    assert "<style" not in page and " style=" not in page
    script = (await client.get("/reports/reports.js")).text
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "document.write"):
        assert unsafe not in script, unsafe


async def test_the_chart_library_is_plotlys_served_here_under_its_version(
    client: httpx.AsyncClient,
) -> None:
    """plotly.js from the installed package: nothing from outside; cached a year under a name
    that changes with the version; gzipped for a browser that takes it."""
    path = f"/reports/plotly-{plotly_version()}.min.js"
    shipped = plotly_file().read_bytes()
    plain = await client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.content == shipped
    assert plain.headers["content-type"].startswith("text/javascript")
    assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "script-src 'self'" in plain.headers["content-security-policy"]
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert f"plotly.js v{plotly_version()}".encode() in shipped[:200]
    packed = await client.get(path, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) < len(shipped) / 2
    assert packed.content == shipped  # httpx undoes the gzip
    assert (await client.get("/reports/plotly-0.0.1.min.js")).status_code == 404


async def test_the_page_needs_no_login_but_holds_no_data(client: httpx.AsyncClient) -> None:
    """Anyone may load the page (it is the login screen); the numbers come from the API, behind
    the token. The page is not in the public OpenAPI document."""
    page = (await client.get("/reports")).text
    assert not re.search(r"\d{17}[\dX]", page)
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not any(path.startswith("/reports") for path in paths)
    assert (await client.get("/reports/other.js")).status_code == 404


# -- The page at work in a browser --------------------------------------------------------------


def artifacts_dir() -> Path:
    root = Path(os.environ.get("CANBAO_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))
    directory = root / "report-page"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@asynccontextmanager
async def listening(app: FastAPI) -> AsyncIterator[str]:
    """`app` served over HTTP on a loopback port, in this event loop (the databases' pools and
    reporting's ASGI transport belong to it), for the browser to reach."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # it could not start: say why
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def gateway(
    gateway_url: str, test_clock: Clock, reporting: Reporting, harness: Harness
) -> AsyncIterator[str]:
    """The gateway on a loopback port, reaching reporting and identity. Reporting holds 1,007
    people: 1,000 registered directly in Guiyang (5201), and beside them one whose household
    record public security has not sent (so (1) = (2) fails for Guiyang and the total), one
    needing a survey (张伟) and one verified (李娜), whom identity knows, one confirmed in
    another city of the province, one insured twice; in Zunyi (5203) one needing a survey and
    one registered. They arrived in 2026Q3; it is now 2026Q4."""
    await harness.apply([hukou(ZHANG, NANMING, "张伟"), hukou(LI, NANMING, "李娜")])
    zhang, li = await harness.person_of(ZHANG), await harness.person_of(LI)
    assert zhang is not None and li is not None
    people = [(uuid.uuid4(), verdict()) for _ in range(1000)]
    people += [
        (uuid.uuid4(), verdict(household_data_obtained=False)),
        (zhang, needing_survey()),
        (li, verified()),
        (uuid.uuid4(), insured_elsewhere(ComparisonScope.PROVINCE)),
        (uuid.uuid4(), flagged((FlagType.DUPLICATE_INSURANCE, Insurance.PENSION))),
        (uuid.uuid4(), needing_survey(region_code=ZUNYI)),
        (uuid.uuid4(), verdict(region_code=ZUNYI)),
    ]
    await reporting.apply(*(changed(person_id, person) for person_id, person in people))
    reporting.clock.now = test_clock.now
    definition = dataclasses.replace(SERVICE, components=lambda _: ())
    reporting_app = create_app(definition, ReportingSettings(database_url=reporting.database.url))
    reporting_app.dependency_overrides[reporting_clock] = lambda: reporting.clock
    app = create(
        settings_for(gateway_url),
        reporting_transport=httpx.ASGITransport(app=reporting_app),
        identity_transport=httpx.ASGITransport(app=identity_app(harness)),
    )
    app.dependency_overrides[clock] = lambda: test_clock
    async with (
        reporting_app.router.lifespan_context(reporting_app),
        app.router.lifespan_context(app),
        listening(app) as url,
    ):
        yield url


@asynccontextmanager
async def browser_page(now: Clock) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page of a fresh headless chromium whose clock reads the test's (the current quarter is
    the page's own reckoning), and what it reports: script errors and refused content."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(
                viewport={"width": 1400, "height": 1000}, locale="zh-CN", accept_downloads=True
            )
            await page.clock.set_fixed_time(now())
            errors: list[str] = []

            def refused(message: ConsoleMessage) -> None:
                if "Content Security Policy" not in message.text:
                    return
                # plotly.js adds the style sheet of its map traces (MapLibre's) as an inline
                # <style> when it loads: refused, as the policy means, and no chart here is a map.
                if message.location["url"].endswith(plotly_path()) and (
                    message.text.startswith("Applying inline style")
                ):
                    return
                errors.append(message.text)

            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", refused)
            yield page, errors
        finally:
            await browser.close()


async def log_in(page: Page, username: str) -> None:
    await expect(page.locator("#username")).to_be_focused()
    await page.keyboard.type(username)
    await page.keyboard.press("Tab")
    await page.keyboard.type("demo")
    await page.keyboard.press("Enter")


async def table_of(
    gateway: str, quarter: str, token: str, people: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON API's answer: the table, or with `people` (city, column) the people behind a
    number."""
    path = TABLE.format(quarter) + ("/people" if people else "")
    async with httpx.AsyncClient(base_url=gateway) as api:
        answer = await api.get(path, params=people, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def shows_the_table(page: Page, body: dict[str, Any]) -> None:
    """Every row of the API's answer, in its order, each number as the page shows it (thousands
    separated), under the form's two-level header; the checks with what failed first."""
    rows = page.locator("#quarterly tbody tr")
    await expect(rows).to_have_count(len(body["rows"]))
    shown = await rows.evaluate_all(
        "rows => rows.map(r => [r.dataset.city, [...r.cells].slice(1).map(c => c.textContent)])"
    )
    assert shown == [
        [row["city"], [f"{row['columns'][str(n)]:,}" for n in COLUMN_NAMES_ZH]]
        for row in body["rows"]
    ]
    head = page.locator("#quarterly thead tr")
    assert await head.nth(0).locator("th").all_text_contents() == [
        "地市",
        *(label for label, _ in COLUMN_GROUPS_ZH),
    ]
    assert await head.nth(1).locator("th").all_text_contents() == [
        f"{name}({n})" for n, name in COLUMN_NAMES_ZH.items()
    ]
    failed = [check for check in body["checks"] if not check["passed"]]
    summary = f"共 {len(body['checks'])} 项校验，" + (
        f"未通过 {len(failed)} 项" if failed else "全部通过"
    )
    await expect(page.locator("#checks-summary")).to_have_text(summary)
    names = {row["city"]: row["name"] for row in body["rows"]}
    for table, passed in (("#checks", False), ("#passed", True)):
        shown = await page.locator(f"{table} tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        assert shown == [
            [check["rule"], names[check["city"]], "通过" if passed else "未通过"]
            for check in body["checks"]
            if check["passed"] is passed
        ], table
    await expect(page.locator("#checks")).to_be_visible(visible=bool(failed))
    await expect(page.locator("#passed-summary")).to_have_text(
        f"已通过的校验（{len(body['checks']) - len(failed)} 项）"
    )


async def test_an_analyst_reads_the_quarterly_table_on_the_page(
    gateway: str,
    test_clock: Clock,
    add_account: Callable[..., Awaitable[Any]],
    token_for: Callable[..., str],
) -> None:
    shots = artifacts_dir()
    await add_account("demo-analyst", "demo", role=Role.ANALYST, scope="52")
    await add_account("zunyi-analyst", "demo", role=Role.ANALYST, scope="5203")
    await add_account("demo-counter", "demo", role=Role.COUNTER, scope="52")
    token = token_for(Role.ANALYST, "52", username="demo-analyst")
    current = await table_of(gateway, "2026Q4", token)
    past = await table_of(gateway, "2026Q3", token)
    assert current["provisional"] and not past["provisional"]
    assert [row["city"] for row in current["rows"]] == ["5201", "5203", "total"]
    assert current["rows"][2]["columns"]["1"] == 1007  # a number with a thousands separator
    failed = {(check["rule"], check["city"]) for check in current["checks"] if not check["passed"]}
    assert failed == {("(1) = (2)", "5201"), ("(1) = (2)", "total")}

    async with browser_page(test_clock) as (page, errors):
        await page.goto(f"{gateway}/reports")
        await expect(page).to_have_title("全民参保登记 · 统计分析")
        await page.screenshot(path=shots / "0-login.png")

        # Another role is told the page is not theirs, and stays out.
        await log_in(page, "demo-counter")
        await expect(page.locator("#login-message")).to_contain_text("无统计分析权限")
        await expect(page.locator("#work-view")).to_be_hidden()

        # The province's analyst: the current quarter first, marked provisional (临时).
        await log_in(page, "demo-analyst")
        await expect(page.locator("#who-name")).to_have_text("demo-analyst（统计分析，辖区 52）")
        quarter = page.locator("#quarter")
        await expect(quarter).to_be_focused()
        await expect(quarter).to_have_value("2026Q4")
        options = await quarter.locator("option").all_text_contents()
        assert options == [
            "2026年第4季度（临时）",
            *(f"2026年第{n}季度" for n in (3, 2, 1)),
            *(f"2025年第{n}季度" for n in (4, 3, 2, 1)),
        ]
        state = page.locator("#table-state")
        await expect(state).to_contain_text("临时数据：季度未结束")
        await expect(state).to_contain_text("辖区 52（全省）")
        await expect(page.locator("#message")).to_have_text(
            "已查询2026年第4季度（临时）报表，逻辑校验未通过 2 项"
        )
        await shows_the_table(page, current)
        guiyang = page.locator('#quarterly tr[data-city="5201"]')
        for column in ("1", "2"):  # the failed check's columns, marked in the table
            cell = guiyang.locator(f'td[data-column="{column}"]')
            await expect(cell).to_have_class(re.compile(r"\bcheck-failed\b"))
            await expect(cell).to_have_attribute("title", "逻辑校验未通过：(1) = (2)")
        await expect(page.locator("#quarterly td.check-failed")).to_have_count(4)
        await expect(page.locator("#checks tbody tr.failed").first).to_contain_text("未通过")
        # A number opens the people behind it: a button, named for a screen reader.
        await expect(guiyang.locator('button[data-column="9"]')).to_have_attribute(
            "aria-label", "5201 养老保险应参保未参保人数 1 人，查看人员明细"
        )
        await page.screenshot(path=shots / "1-current-quarter.png", full_page=True)

        # A past quarter, chosen with the keyboard: final, and the same numbers as the API's.
        await quarter.focus()
        await page.keyboard.press("ArrowDown")
        await expect(quarter).to_have_value("2026Q3")
        await page.keyboard.press("Tab")
        await expect(page.locator("#show")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(state).to_contain_text("季度已结束，数据截至 2026/10/1 00:00:00，不再变化")
        await shows_the_table(page, past)
        await page.screenshot(path=shots / "2-past-quarter.png", full_page=True)

        # The table as a file, fetched with the token and saved under the API's name.
        async with page.expect_download() as info:
            await page.locator("#download-csv").click()
        download = await info.value
        assert download.suggested_filename == "全民参保登记基础数据情况表-2026Q3-52.csv"
        content = await asyncio.to_thread(Path(await download.path()).read_bytes)
        assert content.startswith(b"\xef\xbb\xbf") and "(1) 户籍人口数".encode() in content
        await expect(page.locator("#message")).to_have_text(
            "已下载 全民参保登记基础数据情况表-2026Q3-52.csv"
        )
        # As the form lays it out: a workbook for Excel, a PDF to sign on paper.
        for kind, starts in (("xlsx", b"PK"), ("pdf", b"%PDF")):
            async with page.expect_download() as info:
                await page.locator(f"#download-{kind}").click()
            download = await info.value
            name = f"全民参保登记基础数据情况表-2026Q3-52.{kind}"
            assert download.suggested_filename == name
            content = await asyncio.to_thread(Path(await download.path()).read_bytes)
            assert content.startswith(starts), kind
            await expect(page.locator("#message")).to_have_text(f"已下载 {name}")

        # A city's analyst: their own city only, no total, the scope said.
        await page.locator("#logout").click()
        await expect(page.locator("#login-message")).to_have_text("已退出登录")
        await log_in(page, "zunyi-analyst")
        await expect(page.locator("#who-name")).to_have_text("zunyi-analyst（统计分析，辖区 5203）")
        await expect(state).to_contain_text("辖区 5203（地市）")
        zunyi = token_for(Role.ANALYST, "5203", username="zunyi-analyst")
        await shows_the_table(page, await table_of(gateway, "2026Q4", zunyi))
        await expect(page.locator("#quarterly tbody tr")).to_have_count(1)
        await page.screenshot(path=shots / "3-city-analyst.png", full_page=True)
        assert errors == [], errors


async def test_a_number_opens_the_people_behind_it(
    gateway: str,
    test_clock: Clock,
    add_account: Callable[..., Awaitable[Any]],
    token_for: Callable[..., str],
) -> None:
    """报表及对应人员明细 (domain.md §6: every number backed by the list of the people counted):
    the people of a cell as the API lists them, masked, their count the number; a long list a
    page at a time; Escape returns to the number."""
    shots = artifacts_dir()
    await add_account("demo-analyst", "demo", role=Role.ANALYST, scope="52")
    token = token_for(Role.ANALYST, "52", username="demo-analyst")
    listed = await table_of(gateway, "2026Q4", token, people={"city": "5201", "column": 7})
    assert listed["count"] == 2 and listed["next_cursor"] is None
    assert sorted(p["name"] for p in listed["people"]) == ["张*", "李*"]
    assert sorted(p["id_number"] for p in listed["people"]) == sorted([mask(ZHANG), mask(LI)])

    async with browser_page(test_clock) as (page, errors):
        await page.goto(f"{gateway}/reports")
        await log_in(page, "demo-analyst")
        guiyang = page.locator('#quarterly tr[data-city="5201"]')
        seven = guiyang.locator('button[data-column="7"]')
        await seven.focus()
        await page.keyboard.press("Enter")
        panel = page.locator("#people-view")
        await expect(panel).to_be_visible()
        await expect(page.locator("#people-title")).to_be_focused()
        await expect(page.locator("#people-title")).to_have_text(
            "人员明细：5201　(7) 需调查核实人数　2026年第4季度（临时）"
        )
        await expect(page.locator("#people-summary")).to_have_text(
            "共 2 人，已显示 2 人（临时数据，截至 2026/11/23 10:00:00）"
        )
        rows = page.locator("#people tbody tr")
        await expect(rows).to_have_count(2)
        shown = await rows.evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        reasons = {"uninsured": "养老或医疗保险应参保未参保"}
        statuses = {code.value: f"{code.value} {code.label}" for code in StatusCode}
        assert shown == [
            [
                p["name"],
                p["id_number"],
                "男",
                str(p["birth_year"]),
                p["region_code"],
                RegistrationState(p["registration"]).label,
                "、".join(reasons[r] for r in p["survey_reasons"]) or "—",
                *(statuses[p["statuses"][i.value]] for i in Insurance),
            ]
            for p in listed["people"]
        ]
        assert ZHANG not in await page.content()  # masked, never the number itself
        zhang = rows.filter(has_text="张*")
        await expect(zhang.locator("td.uninsured")).to_have_count(2)  # pension and medical
        await expect(page.locator("#people-more")).to_be_hidden()
        await page.screenshot(path=shots / "4-people.png", full_page=True)
        await page.keyboard.press("Escape")
        await expect(panel).to_be_hidden()
        await expect(seven).to_be_focused()

        # 1,002 registered directly: a hundred at a time, 加载更多 for the next hundred.
        three = guiyang.locator('button[data-column="3"]')
        await expect(three).to_have_text("1,002")
        await three.click()
        await expect(page.locator("#people-summary")).to_contain_text("共 1,002 人，已显示 100 人")
        more = page.locator("#people-more")
        await expect(more).to_be_visible()
        await more.click()
        await expect(page.locator("#people-summary")).to_contain_text("共 1,002 人，已显示 200 人")
        await expect(rows).to_have_count(200)
        await expect(rows.nth(100)).to_be_focused()  # the keyboard goes on from the new page
        ids = await rows.evaluate_all("rows => rows.map(r => r.dataset.personId)")
        assert len(set(ids)) == 200  # each person once
        await page.screenshot(path=shots / "5-people-more.png")
        await page.locator("#people-close").click()
        await expect(three).to_be_focused()
        assert errors == [], errors


def percent(rate: float | None) -> str:
    """A rate as the page writes it: one decimal, halves up (JavaScript's toFixed)."""
    if rate is None:
        return "—"
    return f"{Decimal(rate * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"


async def test_coverage_per_city_against_the_goals(
    gateway: str,
    test_clock: Clock,
    add_account: Callable[..., Awaitable[Any]],
    token_for: Callable[..., str],
) -> None:
    """domain.md §1's goals (pension ≥ 90 %, medical everyone, survey rate ≥ 90 %), per city and
    in total, as of the quarter shown: bars of the three rates, each goal a dashed line across its
    bar, drawn by the gateway's plotly.js under the page's policy; the same numbers as a table,
    what is below its goal marked."""
    shots = artifacts_dir()
    await add_account("demo-analyst", "demo", role=Role.ANALYST, scope="52")
    token = token_for(Role.ANALYST, "52", username="demo-analyst")
    async with httpx.AsyncClient(base_url=gateway) as api:
        answer = await api.get(
            COVERAGE, params={"region": "52", "quarter": "2026Q4"}, headers=bearer(token)
        )
    assert answer.status_code == 200, answer.text
    coverage = answer.json()
    assert [d["region"] for d in coverage["divisions"]] == ["5201", "5203"]
    rows = [*coverage["divisions"], coverage["total"] | {"region": "total", "name": "合计"}]
    labels = [row["name"] for row in rows]
    pension = [row["insurances"]["pension"] for row in rows]
    assert [p["goal"] for p in pension] == [0.9] * 3
    assert any(p["rate"] < p["goal"] for p in pension)  # something to mark below its goal

    async with browser_page(test_clock) as (page, errors):
        await page.goto(f"{gateway}/reports")
        await log_in(page, "demo-analyst")
        chart = page.locator("#coverage-chart")
        await expect(chart.locator(".main-svg").first).to_be_visible()
        await expect(page.locator("#coverage-state")).to_have_text(
            "2026年第4季度（临时），数据截至 2026/11/23 10:00:00，辖区 52（全省）"
        )
        # Three bars a city, each with its goal across it; the cities as the API names them.
        await expect(chart.locator(".barlayer .point")).to_have_count(3 * len(rows))
        await expect(chart.locator(".shapelayer path")).to_have_count(3 * len(rows))
        assert await chart.locator(".xtick text").all_text_contents() == labels
        assert await chart.locator(".legendtext").all_text_contents() == [
            "养老保险参保率",
            "医疗保险参保率",
            "调查率",
            "目标（虚线）",
        ]
        pension_bars = chart.locator(".barlayer .trace").first.locator(".point text")
        assert await pension_bars.all_text_contents() == [percent(p["rate"]) for p in pension]

        def cell(part: dict[str, Any], counts: tuple[str, str]) -> str:
            return f"{percent(part['rate'])}（{part[counts[0]]:,} / {part[counts[1]]:,}）"

        shown = await page.locator("#coverage tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        assert shown == [
            # The code beneath a city's name, once a name is not its code.
            [
                label + ("" if row["region"] in ("total", label) else row["region"]),
                cell(row["insurances"]["pension"], ("insured", "should")),
                cell(row["insurances"]["medical"], ("insured", "should")),
                cell(row["registration"], ("registered", "people")),
                cell(row["survey"], ("verified", "needing")),
            ]
            for label, row in zip(labels, rows, strict=True)
        ]
        below = page.locator("#coverage td.below-goal")
        await expect(below).to_have_count(
            sum(
                part["rate"] is not None and part["rate"] < part["goal"]
                for row in rows
                for part in (
                    row["insurances"]["pension"],
                    row["insurances"]["medical"],
                    row["survey"],
                )
            )
        )
        await page.locator("#coverage-view").scroll_into_view_if_needed()
        await page.screenshot(path=shots / "6-coverage.png", full_page=True)

        # A past quarter: coverage follows the table, as of that quarter's end.
        await page.locator("#quarter").select_option("2026Q3")
        await page.locator("#show").click()
        await expect(page.locator("#coverage-state")).to_contain_text(
            "2026年第3季度，数据截至 2026/10/1 00:00:00"
        )
        assert errors == [], errors


async def test_the_province_files_a_past_quarter_on_the_page(
    gateway: str,
    test_clock: Clock,
    add_account: Callable[..., Awaitable[Any]],
    token_for: Callable[..., str],
) -> None:
    """报送 (domain.md §6): a past quarter's filing state, its due date (the 25th of the month
    after) passed, the cities' states; the form refuses a failed check left unexplained, as
    reporting says; filed, the page says who filed when, late, and gives the signed PDF."""
    shots = artifacts_dir()
    await add_account("demo-analyst", "demo", role=Role.ANALYST, scope="52")
    token = token_for(Role.ANALYST, "52", username="demo-analyst")
    past = await table_of(gateway, "2026Q3", token)
    assert any(not check["passed"] for check in past["checks"])  # the note is required
    async with httpx.AsyncClient(base_url=gateway) as api:
        answer = await api.get(TABLE.format("2026Q3") + "/filing", headers=bearer(token))
    assert answer.status_code == 200, answer.text
    before = answer.json()
    assert before["state"] == "overdue" and before["due"] == "2026-10-25"
    assert [(c["region"], c["state"]) for c in before["cities"]] == [
        ("5201", "overdue"),
        ("5203", "overdue"),
    ]
    names = {row["city"]: row["name"] for row in past["rows"]}

    async with browser_page(test_clock) as (page, errors):
        await page.goto(f"{gateway}/reports")
        await log_in(page, "demo-analyst")
        # The current quarter is provisional: nothing to file yet.
        await expect(page.locator("#table-state")).to_contain_text("临时数据")
        await expect(page.locator("#filing-view")).to_be_hidden()
        await page.locator("#quarter").select_option("2026Q3")
        await page.locator("#show").click()
        state = page.locator("#filing-state")
        await expect(state).to_have_text("2026年第3季度　辖区 52（全省）：逾期未报送")
        await expect(page.locator("#filing-due")).to_have_text(
            "报送截止日期：2026年10月25日（季度结束后次月25日）"
        )
        cities = await page.locator("#filing-cities tbody tr").evaluate_all(
            "rows => rows.map(r => [r.dataset.region, [...r.cells].map(c => c.textContent)])"
        )
        assert cities == [
            [
                c["region"],
                [
                    names[c["region"]] + ("" if names[c["region"]] == c["region"] else c["region"]),
                    "逾期未报送",
                    "—",
                ],
            ]
            for c in before["cities"]
        ]
        await expect(page.locator("#report-date")).to_have_value("2026-11-23")  # today, China
        await expect(page.locator("#filing-note-hint")).to_contain_text("必须填写相关情况说明")

        # Signed, but the failed check left unexplained: reporting refuses, the page says why.
        await page.locator("#filled-by").fill("李明")
        await page.locator("#section-head").fill("王芳")
        await page.locator("#unit-head").fill("赵强")
        await page.locator("#filing-submit").click()
        message = page.locator("#filing-message")
        await expect(message).to_contain_text("报送失败：逻辑校验未通过，须填写相关情况说明")
        await expect(message).to_contain_text("(1) = (2)")
        await expect(page.locator("#filing-note")).to_be_focused()
        await expect(state).to_contain_text("逾期未报送")
        await page.screenshot(path=shots / "7-filing-refused.png", full_page=True)

        await page.locator("#filing-note").fill("公安户籍数据尚未全部推送，已函请补送。")
        await page.locator("#filing-submit").click()
        await expect(message).to_have_text("已报送2026年第3季度报表")
        await expect(state).to_have_text("2026年第3季度　辖区 52（全省）：已报送")
        await expect(page.locator("#filing-who")).to_have_text(
            "2026/11/23 10:00:00 由 demo-analyst 报送（逾期报送）"
        )
        await expect(page.locator("#filing-signatures")).to_contain_text("填表人李明")
        await expect(page.locator("#filing-form")).to_be_hidden()
        await expect(page.locator("#filing-pdf")).to_be_focused()
        await page.screenshot(path=shots / "8-filed.png", full_page=True)

        # The PDF as it was signed, fetched with the token.
        async with page.expect_download() as info:
            await page.locator("#filing-pdf").click()
        download = await info.value
        assert download.suggested_filename == "全民参保登记基础数据情况表-2026Q3-52-报送.pdf"
        content = await asyncio.to_thread(Path(await download.path()).read_bytes)
        assert content.startswith(b"%PDF")
        assert errors == [], errors

    async with httpx.AsyncClient(base_url=gateway) as api:
        after = (await api.get(TABLE.format("2026Q3") + "/filing", headers=bearer(token))).json()
    assert after["state"] == "filed" and after["filing"]["filed_by"] == "demo-analyst"
    assert after["filing"]["late"] is True


async def test_the_plans_lists_open_their_people(
    gateway: str,
    test_clock: Clock,
    add_account: Callable[..., Awaitable[Any]],
    token_for: Callable[..., str],
) -> None:
    """参保名单 (44号 Art.29-30): how many people each list holds per city and in total, as the
    API counts them; a count opens its people in the people panel, masked, and the list of that
    city downloads as CSV."""
    shots = artifacts_dir()
    await add_account("demo-analyst", "demo", role=Role.ANALYST, scope="52")
    token = token_for(Role.ANALYST, "52", username="demo-analyst")
    async with httpx.AsyncClient(base_url=gateway) as api:
        answer = await api.get(
            "/api/v1/reports/lists", params={"quarter": "2026Q4"}, headers=bearer(token)
        )
        assert answer.status_code == 200, answer.text
        lists = answer.json()
        listed = await api.get(
            "/api/v1/reports/lists/uninsured",
            headers=bearer(token),
            params={"region": "5201", "quarter": "2026Q4"},
        )
        assert listed.status_code == 200, listed.text
    uninsured = listed.json()
    assert uninsured["count"] >= 1 and uninsured["next_cursor"] is None
    divisions = sorted({d for entry in lists["lists"] for d in entry["divisions"]})
    assert "5201" in divisions

    async with browser_page(test_clock) as (page, errors):
        await page.goto(f"{gateway}/reports")
        await log_in(page, "demo-analyst")
        await expect(page.locator("#lists-state")).to_have_text(
            "2026年第4季度（临时），数据截至 2026/11/23 10:00:00，辖区 52（全省）"
        )
        rows = page.locator("#lists tbody tr")
        await expect(rows).to_have_count(len(lists["lists"]))
        shown = await rows.evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
        )
        assert shown == [
            [
                entry["label"],
                *(f"{entry['divisions'].get(d, 0):,}" for d in divisions),
                f"{entry['total']:,}",
            ]
            for entry in lists["lists"]
        ]
        count = page.locator('#lists button[data-list="uninsured"][data-region="5201"]')
        await expect(count).to_have_text(f"{uninsured['count']:,}")
        await page.locator("#lists-view").scroll_into_view_if_needed()
        await page.screenshot(path=shots / "9-lists.png")
        await count.click()
        await expect(page.locator("#people-title")).to_be_focused()
        await expect(page.locator("#people-title")).to_have_text(
            f"参保名单：{uninsured['label']}　5201　2026年第4季度（临时）"
        )
        await expect(page.locator("#people-summary")).to_contain_text(
            f"共 {uninsured['count']:,} 人，已显示 {uninsured['count']:,} 人"
        )
        people = page.locator("#people tbody tr")
        await expect(people).to_have_count(uninsured["count"])
        ids = await people.evaluate_all("rows => rows.map(r => r.dataset.personId)")
        assert ids == [p["person_id"] for p in uninsured["people"]]
        assert ZHANG not in await page.content()  # masked
        await page.screenshot(path=shots / "10-list-people.png")

        # The city's whole list as a file Excel opens.
        async with page.expect_download() as info:
            await page.locator("#people-csv").click()
        download = await info.value
        assert download.suggested_filename == f"{uninsured['label']}-5201.csv"
        content = await asyncio.to_thread(Path(await download.path()).read_bytes)
        assert content.startswith("\ufeff姓名,公民身份号码".encode())
        assert len(content.decode("utf-8-sig").splitlines()) == 1 + uninsured["count"]
        await page.keyboard.press("Escape")
        await expect(page.locator("#people-view")).to_be_hidden()
        await expect(count).to_be_focused()
        # A cell of the table still opens its people, without the list's download.
        await page.locator('#quarterly tr[data-city="5201"] button[data-column="7"]').click()
        await expect(page.locator("#people-summary")).to_contain_text("共 2 人")
        await expect(page.locator("#people-csv")).to_be_hidden()
        assert errors == [], errors


async def test_the_employers_leaving_employees_out_are_named_beside_their_number(
    gateway: str,
    test_clock: Clock,
    reporting: Reporting,
    add_account: Callable[..., Awaitable[Any]],
    token_for: Callable[..., str],
) -> None:
    """应参保未参保单位 (labour inspection): the units whose employees are owed an enrolment
    (92), as the API lists them, each named as the core system registers it (registry.units)
    beside its number; a unit only medical knows by its emp_no shows its number alone. A count
    opens the unit's people."""
    shots = artifacts_dir()
    await reporting.apply(
        *(
            changed(uuid.uuid4(), verdict(statuses=NO_INJURY, employers=("U-NAMED",)))
            for _ in range(2)
        ),
        changed(uuid.uuid4(), verdict(statuses=NO_INJURY, employers=("E-MED",))),
        UnitChanged(
            unit_id="U-NAMED",
            revision=1,
            credit_code=CREDIT_CODE,
            unit_name="贵阳黔盛建筑工程有限公司",
        ),
    )
    await add_account("demo-analyst", "demo", role=Role.ANALYST, scope="52")
    token = token_for(Role.ANALYST, "52", username="demo-analyst")
    async with httpx.AsyncClient(base_url=gateway) as api:
        answer = await api.get("/api/v1/reports/employers", headers=bearer(token))
    assert [(e["unit_id"], e["name"]) for e in answer.json()["employers"]] == [
        ("U-NAMED", "贵阳黔盛建筑工程有限公司"),
        ("E-MED", None),
    ]

    async with browser_page(test_clock) as (page, errors):
        await page.goto(f"{gateway}/reports")
        await log_in(page, "demo-analyst")
        rows = page.locator("#employers tbody tr")
        await expect(rows).to_have_count(2)
        shown = await rows.evaluate_all(
            "rows => rows.map(r => [...r.cells].slice(0, 5).map(c => c.textContent))"
        )
        assert shown == [
            ["U-NAMED", "贵阳黔盛建筑工程有限公司", CREDIT_CODE, "2", "0"],
            ["E-MED", "（名称未知）", "—", "1", "0"],
        ]
        await page.locator("#employers-view").scroll_into_view_if_needed()
        await page.screenshot(path=shots / "12-employers.png")
        await page.locator('#employers button[data-unit="U-NAMED"]').click()
        await expect(page.locator("#people-title")).to_have_text(
            "应参保未参保职工：贵阳黔盛建筑工程有限公司（U-NAMED）　2026年第4季度（临时）"
        )
        await expect(page.locator("#people tbody tr")).to_have_count(2)
        assert errors == [], errors


async def test_the_years_targets_are_entered_on_the_page(
    gateway: str,
    test_clock: Clock,
    add_account: Callable[..., Awaitable[Any]],
    token_for: Callable[..., str],
) -> None:
    """年度扩面计划 (40号 三(二)1): the province enters a city's targets for the year, a rate
    per insurance in percent; the page lists what is entered, as the API keeps it, shows the
    city's target beside its rate in the coverage table, holds the entries when the division is
    chosen again, and refuses a rate that is no percentage before asking anything."""
    shots = artifacts_dir()
    await add_account("demo-analyst", "demo", role=Role.ANALYST, scope="52")
    token = token_for(Role.ANALYST, "52", username="demo-analyst")
    async with browser_page(test_clock) as (page, errors):
        await page.goto(f"{gateway}/reports")
        await log_in(page, "demo-analyst")
        await expect(page.locator("#target-year")).to_have_value("2026")
        region = page.locator("#target-region")
        await expect(region.locator("option")).to_have_count(3)  # the province and its 2 cities
        await region.select_option("5201")
        await page.locator("#target-pension").fill("95")
        await page.locator("#target-medical").fill("98.5")
        await page.locator("#targets-submit").click()
        await expect(page.locator("#targets-message")).to_have_text("已保存 5201 2026 年的扩面计划")
        entered = page.locator("#targets tbody tr")
        await expect(entered).to_have_count(2)
        shown = await entered.evaluate_all(
            "rows => rows.map(r => [...r.cells].slice(0, 4).map(c => c.textContent))"
        )
        assert sorted(shown) == sorted(
            [
                ["5201", Insurance.PENSION.label, "95.0%", "demo-analyst"],
                ["5201", Insurance.MEDICAL.label, "98.5%", "demo-analyst"],
            ]
        )
        pension = page.locator('#coverage tr[data-region="5201"] td').nth(0)
        await expect(pension.locator("small")).to_have_text("计划 95.0%")
        await page.locator("#targets-form").scroll_into_view_if_needed()
        await page.screenshot(path=shots / "11-targets.png")

        # Another division's inputs are its own (none), the city's come back when chosen again.
        await region.select_option("52")
        await expect(page.locator("#target-pension")).to_have_value("")
        await region.select_option("5201")
        await expect(page.locator("#target-medical")).to_have_value("98.5")

        # No percentage: said, the field focused, nothing sent.
        await page.locator("#target-injury").fill("120")
        await page.locator("#targets-submit").click()
        await expect(page.locator("#targets-message")).to_contain_text(
            f"{Insurance.INJURY.label}目标参保率应为 0 到 100 之间的百分数"
        )
        await expect(page.locator("#target-injury")).to_be_focused()
        assert errors == [], errors

    async with httpx.AsyncClient(base_url=gateway) as api:
        kept = await api.get("/api/v1/reports/targets/2026", headers=bearer(token))
    assert kept.status_code == 200, kept.text
    assert sorted(
        (t["region"], t["insurance"], t["rate"], t["set_by"]) for t in kept.json()["targets"]
    ) == [
        ("5201", "medical", 0.985, "demo-analyst"),
        ("5201", "pension", 0.95, "demo-analyst"),
    ]
