"""The kiosk page (自助一体机) in a real browser (Debian's chromium, headless, driven by
Playwright) against the running local stack, touched as a citizen touches a kiosk: no keyboard
but the card reader's stand-in.

The device is enabled once (demo-kiosk); a card whose name is not the registry's opens nothing;
the right one shows the citizen's record: the five insurances with their Chinese statuses and a
reminder to complete the phone; the phone typed on the on-screen keypad (a short one refused
first) is submitted, "已提交，待经办机构确认", and listed as waiting for 初审; the proof of
insurance is generated (a PDF from the gateway) with its verification code on screen; 退出
returns to the card. Then a session left alone ends by itself (`?idle=` shortens the wait).
Screenshots of each step are kept in `artifacts/kiosk-page/` (CANBAO_ARTIFACTS moves them)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from canbao_contracts.codes import Insurance, StatusCode
from tests.stack.counter_browser import CHROMIUM, CHROMIUM_ARGS

IDLE_S = 4  # the inactivity the browser test waits out (the page's default is 120 s)
TOUCH_PX = 64  # the smallest button a finger on a kiosk's screen hits reliably
VERIFY_CODE = re.compile(r"验证码：([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})")


def artifacts_dir() -> Path:
    root = Path(os.environ.get("CANBAO_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))
    directory = root / "kiosk-page"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def read_card(page: Page, number: str, name: str) -> None:
    page.fill("#card-number", number)
    page.fill("#card-name", name)
    page.click("#card-form button[type=submit]")


def assert_touch_targets(page: Page) -> None:
    """Every button on screen is at least TOUCH_PX high and wide: there is no keyboard."""
    for button in page.locator("button:visible").all():
        box = button.bounding_box()
        assert box is not None and min(box["width"], box["height"]) >= TOUCH_PX, (
            button.inner_text(),
            box,
        )


def kiosk_round_trip(gateway: str, number: str, name: str, statuses: dict[str, str]) -> str:
    """`number`, `name`: a registered person whose only gap is the phone and who has no
    correction yet; `statuses` their statuses by the ground truth. Returns the verification code
    the page shows for the certificate it generated (the caller verifies it with the gateway)."""
    shots = artifacts_dir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(
                viewport={"width": 1080, "height": 1600}, locale="zh-CN", has_touch=True
            )
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{gateway}/kiosk")
            expect(page).to_have_title("全民参保登记 · 自助服务")

            # The device, once: a wrong secret first.
            page.fill("#client-id", "demo-kiosk")
            page.fill("#client-secret", "wrong")
            page.click("#device-form button[type=submit]")
            expect(page.locator("#device-message")).to_have_text(
                "设备编号或密钥不正确，或设备已停用"
            )
            page.fill("#client-secret", "demo")
            page.click("#device-form button[type=submit]")
            expect(page.locator("#card-title")).to_have_text("请将居民身份证放在读卡区")
            page.screenshot(path=shots / "1-insert-card.png", full_page=True)

            # A card whose name is not the registry's opens nothing.
            read_card(page, number, name + "某")
            expect(page.locator("#card-message")).to_have_text(
                "身份证上的姓名与登记信息不一致，请到窗口核实"
            )
            page.screenshot(path=shots / "2-name-mismatch.png", full_page=True)
            read_card(page, number, name)
            expect(page.locator("#record-title")).to_be_visible()
            person = page.locator("#person").inner_text()
            assert name not in person and number not in person and "*" in person, person
            rows = page.locator("#statuses tbody tr")
            expect(rows).to_have_count(len(Insurance))
            for row, insurance in enumerate(Insurance):
                code = statuses[insurance.value]
                expect(rows.nth(row)).to_contain_text(insurance.label)
                expect(rows.nth(row)).to_contain_text(StatusCode(code).label if code else "—")
            expect(page.locator("#reminders")).to_contain_text("联系电话")
            expect(page.locator("#phone-line")).to_have_text("联系电话：未登记")
            assert_touch_targets(page)
            page.screenshot(path=shots / "3-own-record.png", full_page=True)

            # The phone on the keypad: a short one is refused on the page first.
            page.click("#open-keypad")
            for digit in "1390":
                page.click(f"#keypad button[data-key='{digit}']")
            page.click("#keypad-submit")
            expect(page.locator("#keypad-message")).to_have_text("请输入11位手机号码")
            for digit in "0123456":
                page.click(f"#keypad button[data-key='{digit}']")
            page.click("#keypad button[data-key='删除']")
            page.click("#keypad button[data-key='7']")
            expect(page.locator("#phone-display")).to_have_text("13900123457")
            assert_touch_targets(page)
            page.screenshot(path=shots / "4-keypad.png", full_page=True)
            page.click("#keypad-submit")
            expect(page.locator("#record-message")).to_have_text("已提交，待经办机构确认")
            corrections = page.locator("#corrections tbody tr")
            expect(corrections).to_have_count(1)
            expect(corrections.first).to_contain_text("联系电话")
            expect(corrections.first).to_contain_text("待初审")
            page.screenshot(path=shots / "5-submitted.png", full_page=True)

            # The proof of insurance (GET /api/v1/self/me/certificate.pdf): the gateway's PDF,
            # its code on screen. The print dialog itself is the kiosk's, not the page's.
            with page.expect_response(re.compile(r"/api/v1/self/me/certificate\.pdf$")) as sent:
                page.click("#print")
            response = sent.value
            assert response.status == 200, response.status
            assert response.headers["content-type"] == "application/pdf"
            expect(page.locator("#certificate-code")).to_contain_text("验证码：")
            found = VERIFY_CODE.search(page.locator("#certificate-code").inner_text())
            assert found is not None
            page.screenshot(path=shots / "6-certificate.png", full_page=True)

            page.click("#logout")
            expect(page.locator("#notice")).to_have_text("您已退出，欢迎再次使用")
            expect(page.locator("#card-title")).to_be_visible()
            assert page.locator("#person").inner_text() == ""  # nothing of them stays
            page.screenshot(path=shots / "7-logged-out.png", full_page=True)

            # Left alone, a session ends by itself.
            page.goto(f"{gateway}/kiosk?idle={IDLE_S}")
            read_card(page, number, name)
            expect(page.locator("#record-title")).to_be_visible()
            ended = "已因长时间无操作退出，请重新读取身份证"
            expect(page.locator("#notice")).to_have_text(ended, timeout=(IDLE_S + 10) * 1000)
            expect(page.locator("#card-title")).to_be_visible()
            page.screenshot(path=shots / "8-ended-when-idle.png", full_page=True)
            assert errors == [], errors
            return found.group(1)
        finally:
            browser.close()
