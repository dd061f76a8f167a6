"""The counter page in a real browser (Debian's chromium, headless, driven by Playwright) against
the running local stack: what a clerk does at the window, with the keyboard only.

Log in (a wrong password first), look up an invalid number, then a person the generator left
without a phone: the popup lists the phone as missing with the five statuses; a malformed phone
is refused field by field; a good one is saved, "已提交，待复核", and the popup shows it pending;
a second account (demo-reviewer, through the API) passes it (复核), and once the collection has
gone survey → identity → matching the page says so and the popup no longer asks for it. Last, a
number nobody holds, a migrant's from Sichuan: the clerk registers them where they live, the
reviewer passes it, and the popup shows them, uninsured. Screenshots of each step are kept in
`artifacts/counter-page/` (CANBAO_ARTIFACTS moves them)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import asyncpg
import httpx
from playwright.sync_api import Page, expect, sync_playwright

from canbao_contracts.codes import Insurance, StatusCode
from canbao_contracts.id_numbers import check_character

CHROMIUM = os.environ.get("CANBAO_CHROMIUM", "/usr/bin/chromium")
# Chromium as root, with no network beyond loopback: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
# The demo flows in minutes on a loaded machine: the person may not be registered at first.
REGISTERED_WITHIN_MS = 180_000
APPLIED_WITHIN_MS = 90_000


def artifacts_dir() -> Path:
    root = Path(os.environ.get("CANBAO_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))
    directory = root / "counter-page"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def person_missing_a_phone(sources: str) -> tuple[str, dict[str, str]]:
    """A living, in-scope person of the demo whose only gap is the phone, by the ground truth:
    their ID number and expected statuses."""
    connection = await asyncpg.connect(sources)
    try:
        row = await connection.fetchrow(
            "SELECT id_number, statuses::text FROM simulator.expected_outcome "
            "WHERE missing = $1::jsonb AND inaccurate = '[]'::jsonb AND NOT deceased "
            "AND in_scope AND id_number IS NOT NULL AND household_registered "
            "ORDER BY person_key LIMIT 1",
            json.dumps([{"code": "AAE005", "item": "phone"}]),
        )
    finally:
        await connection.close()
    assert row is not None, "the demo population has nobody whose only gap is the phone"
    return row["id_number"], json.loads(row["statuses"])


async def a_number_nobody_holds(sources: str, region: str = "511321") -> str:
    """A valid citizen number that no source system and no expected outcome knows; by default
    of a migrant born in Nanbu county, Sichuan, outside the demo province."""
    connection = await asyncpg.connect(sources)
    try:
        for sequence in range(401, 999, 2):
            body = f"{region}19900307{sequence:03d}"
            number = body + check_character(body)
            held = await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM simulator.expected_outcome WHERE id_number = $1) "
                "OR EXISTS (SELECT 1 FROM hukou.person WHERE upper(sfzh) = $1)",
                number,
            )
            if not held:
                return number
    finally:
        await connection.close()
    raise AssertionError("every candidate number is held")


def counter_page_round_trip(
    gateway: str, id_number: str, statuses: dict[str, str], newcomer: str
) -> None:
    """`id_number`: a registered person whose only gap is the phone, `statuses` theirs by the
    ground truth; `newcomer`: a valid number, of another province, that nobody holds."""
    shots = artifacts_dir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000}, locale="zh-CN")
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{gateway}/counter")
            expect(page).to_have_title(re.compile("全民参保登记"))
            log_in(page)
            page.screenshot(path=shots / "1-logged-in.png")
            refuses_an_invalid_number(page)
            page.screenshot(path=shots / "2-invalid-number.png")

            open_popup(page, id_number)
            popup = page.locator("#popup")
            for insurance in Insurance:  # the five statuses with their Chinese labels
                code = StatusCode(statuses[insurance.value])
                row = page.locator("#statuses tr", has_text=insurance.label)
                expect(row).to_contain_text(f"{code.value} {code.label}")
            expect(popup).to_contain_text("登记信息缺失")
            phone = page.locator("#item-phone")
            expect(phone).to_be_focused()  # the first gap, ready to type into
            page.screenshot(path=shots / "3-popup.png", full_page=True)

            page.keyboard.type("12345")
            page.keyboard.press("Enter")
            expect(phone).to_have_attribute("aria-invalid", "true")
            expect(page.locator("#item-phone-error")).to_contain_text("应为11位手机号码")
            expect(page.locator("#collect-message")).to_have_text("未保存：请更正标红的项目")
            expect(phone).to_be_focused()
            page.screenshot(path=shots / "4-invalid-phone.png", full_page=True)

            page.keyboard.press("Control+A")
            page.keyboard.type("13812345678")
            page.keyboard.press("Enter")
            expect(page.locator("#collect-message")).to_have_text("已提交，待复核")
            pending = page.locator("#pending-block")
            expect(pending).to_be_visible()
            expect(pending).to_contain_text("联系电话")
            expect(pending).to_contain_text("待复核")
            expect(pending).not_to_contain_text("13812345678")  # masked
            expect(page.locator("#item-phone")).to_have_count(0)  # not asked again meanwhile
            expect(page.locator("#id-number")).to_be_focused()  # ready for the next person
            page.screenshot(path=shots / "5-submitted.png", full_page=True)

            # A second member of staff (复核人) passes it through the API.
            assert recheck_waiting(gateway) == 1
            expect(page.locator("#collect-message")).to_have_text(
                "已复核，登记信息已更新", timeout=APPLIED_WITHIN_MS
            )
            expect(pending).to_be_hidden()
            page.screenshot(path=shots / "5b-rechecked.png", full_page=True)

            # Reopen, as the clerk would on the person's next visit: the phone is no longer asked.
            page.keyboard.press("Escape")
            expect(popup).to_be_hidden()
            page.keyboard.press("Enter")
            expect(popup).to_be_visible()
            expect(page.locator("#item-phone")).to_have_count(0)
            expect(page.locator("#reasons-block")).not_to_contain_text("登记信息缺失")
            page.screenshot(path=shots / "6-reopened.png", full_page=True)

            registers_a_newcomer(page, newcomer, gateway)
            page.screenshot(path=shots / "7-registered.png", full_page=True)
            assert errors == [], errors
        finally:
            browser.close()


def recheck_waiting(gateway: str, clerk: str = "demo-counter") -> int:
    """As demo-reviewer (a second account: never the clerk who collected), pass every counter
    collection of `clerk` waiting for 复核, one by one (each may hold identity items); how
    many."""
    with httpx.Client(base_url=gateway, timeout=30) as client:
        login = client.post(
            "/api/v1/auth/token", data={"username": "demo-reviewer", "password": "demo"}
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        queue = client.get(
            "/api/v1/counter/collections",
            headers=headers,
            params={"handler": clerk, "state": "submitted"},
        )
        assert queue.status_code == 200, queue.text
        waiting = [item["collection_id"] for item in queue.json()["items"]]
        for collection_id in waiting:
            done = client.post(
                f"/api/v1/counter/collections/{collection_id}/review",
                json={"decision": "pass", "comment": "证件已核"},
                headers=headers,
            )
            assert done.status_code == 200, done.text
            assert done.json()["state"] == "approved"
    return len(waiting)


def log_in(page: Page) -> None:
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type("demo-counter")
    page.keyboard.press("Tab")
    page.keyboard.type("wrong")
    page.keyboard.press("Enter")
    expect(page.locator("#login-message")).to_have_text("用户名或密码错误")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type("demo")  # the wrong password is selected: typing replaces it
    page.keyboard.press("Enter")
    expect(page.locator("#who-name")).to_contain_text("demo-counter（窗口经办")
    expect(page.locator("#id-number")).to_be_focused()


def refuses_an_invalid_number(page: Page) -> None:
    message = page.locator("#lookup-message")
    page.keyboard.type("52010219800101123")  # 17 digits, as a half-read card would give
    page.keyboard.press("Enter")
    expect(message).to_contain_text("公民身份号码无效")
    expect(page.locator("#popup")).to_be_hidden()
    expect(page.locator("#id-number")).to_be_focused()


def open_popup(page: Page, id_number: str) -> None:
    """Look the person up, again while the demo is still flowing and they are not registered
    (the registration form opens) or their verdict is pending, until the popup shows their
    statuses."""
    waited_ms, step_ms = 0, 2_000
    while True:
        page.locator("#id-number").fill(id_number)
        page.keyboard.press("Enter")  # hides what was shown, then shows the answer
        page.wait_for_selector("#popup:not([hidden]), #register:not([hidden])")
        pending = page.locator("#badges", has_text="参保状态计算中")
        if page.locator("#popup").is_visible() and not pending.count():
            return
        assert waited_ms < REGISTERED_WITHIN_MS, f"{id_number[:4]}… not shown in time"
        page.wait_for_timeout(step_ms)
        waited_ms += step_ms


def registers_a_newcomer(page: Page, id_number: str, gateway: str) -> None:
    """A number the registry does not know opens the new registration, gender and birth date
    read off the number; a missing required item is named; the migrant registers where they
    live (Nanming, Guiyang), and once saved and passed by the reviewer the popup shows them."""
    page.locator("#id-number").fill(id_number)
    page.keyboard.press("Enter")
    expect(page.locator("#register")).to_be_visible()
    expect(page.locator("#new-name")).to_be_focused()
    expect(page.locator("#new-birth_date")).to_have_value(id_number[6:14])
    expect(page.locator("#new-gender")).to_have_value("1" if int(id_number[16]) % 2 else "2")
    expect(page.locator("#new-region_code")).to_have_value("")  # not the clerk's: to be given
    page.keyboard.type("测试新")
    page.keyboard.press("Enter")  # where they register is asked first (the page knows)
    expect(page.locator("#new-region_code-error")).to_contain_text("6位行政区划代码")
    expect(page.locator("#new-region_code")).to_be_focused()
    page.keyboard.type("520102")
    page.keyboard.press("Enter")  # the rest is missing (the registry says)
    expect(page.locator("#new-phone-error")).to_contain_text("为新参保登记的必填项目")
    expect(page.locator("#register-message")).to_have_text("未保存：请更正标红的项目")
    for item, value in (
        ("household_place", "四川省南充市南部县南隆镇1号"),
        ("residence_address", "贵州省贵阳市南明区花果园街道1号3栋"),
        ("phone", "13987654321"),
    ):
        page.locator(f"#new-{item}").fill(value)
    page.locator("#new-phone").press("Enter")
    expect(page.locator("#register-message")).to_have_text("已提交参保登记，待复核")
    assert recheck_waiting(gateway) == 1
    expect(page.locator("#collect-message")).to_have_text(
        "参保登记已完成", timeout=APPLIED_WITHIN_MS
    )
    expect(page.locator("#popup")).to_be_visible()
    expect(page.locator("#person")).to_contain_text("测**")
    expect(page.locator("#person")).to_contain_text(id_number[:4] + "**********" + id_number[-4:])
    # A long-term resident the registry now knows, uninsured until they enrol (rules.in_scope).
    medical = page.locator("#statuses tr", has_text=Insurance.MEDICAL.label)
    expect(medical).to_contain_text(StatusCode.UNINSURED_INDIVIDUAL.label)
    expect(page.locator("#badges")).to_contain_text("需调查登记")
