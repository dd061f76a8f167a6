"""The reviewer's page (审核工作台) in a real browser (Debian's chromium, headless, driven by
Playwright) against the running local stack: the two reviews of a household survey, keyboard
only, as domain.md §2.3 has them: the grass-roots platform (基层平台) finds the submitted task in
its division, reads the submission beside the person's record and passes 初审; the county
(县级经办) finds it waiting for 审定 and approves it. Then what the page refuses: a 退回 without
its reason, a decision on a task someone else moved meanwhile (task-changed, with the state it
is in now), and a decision by the surveyor who made the submission (maker-checker). Screenshots
of each step are kept in `artifacts/survey-page/` (CANBAO_ARTIFACTS moves them)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

from canbao_contracts.codes import Insurance, SurveyReason
from tests.stack.counter_browser import CHROMIUM, CHROMIUM_ARGS

MASKED_NUMBER = re.compile(r"^\d{4}\*{10}[\dX]{4}$")
MAX_TABS = 60  # more presses than any control is away from the one before it


def artifacts_dir() -> Path:
    root = Path(os.environ.get("CANBAO_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))
    directory = root / "survey-page"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def browser_page() -> Iterator[tuple[Page, list[str]]]:
    """A page of a fresh headless chromium, and the script errors it reports."""
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="zh-CN")
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()


def survey_page_round_trip(gateway: str, task_id: str, region: str) -> None:
    """`task_id`: a task of county `region` in state submitted (待初审), submitted by
    demo-surveyor with the phone collected; it leaves approved (已审定)."""
    shots = artifacts_dir()
    with browser_page() as (page, errors):
        page.goto(f"{gateway}/survey")
        expect(page).to_have_title("全民参保登记 · 审核工作台")
        log_in(page, "demo-platform", "基层平台")
        expect(page.locator("#make-list")).to_be_visible()  # the platform makes the lists
        expect(page.locator("#progress")).to_contain_text("调查率")
        page.screenshot(path=shots / "1-platform-logged-in.png", full_page=True)
        makes_the_list(page, region)
        assigns_a_household(page, "52", shots)  # the province: some household still waits

        search(page, region, "submitted")
        row = page.locator(f'#tasks tr[data-task-id="{task_id}"]')
        expect(row).to_contain_text("待初审")
        expect(row).to_contain_text("demo-surveyor")
        cells = row.locator("td")
        expect(cells.nth(0)).to_contain_text("*")  # the name, masked
        expect(cells.nth(1)).to_have_text(MASKED_NUMBER)
        labels = "|".join(re.escape(reason.label) for reason in SurveyReason)
        expect(cells.nth(3)).to_have_text(re.compile(f"^({labels})(、({labels}))*$"))
        expect(row.locator("xpath=..").locator("tr.household")).to_contain_text("第")
        page.screenshot(path=shots / "2-platform-list.png", full_page=True)

        open_task(page, task_id)
        view = page.locator("#task-view")
        expect(page.locator("#task-state")).to_contain_text("待初审")
        submission = page.locator("#submission")
        expect(submission).to_contain_text("demo-surveyor")
        expect(submission).to_contain_text("已采集")
        expect(submission).to_contain_text("本人签字")
        phone = page.locator("#submission-items tr", has_text="联系电话")
        expect(phone).to_contain_text("138")  # collected, shown masked
        expect(phone).not_to_contain_text("13812345678")
        gender = page.locator("#prefill tr", has_text="性别")  # codes shown with their label
        expect(gender).to_contain_text(re.compile("[12] [男女]"))
        for insurance in Insurance:  # the person's current record beside it
            expect(page.locator("#statuses tr", has_text=insurance.label)).to_be_visible()
        expect(page.locator("#members tr.this")).to_contain_text("本任务")
        expect(page.locator("#no-decisions")).to_be_visible()
        downloads_the_form(page)
        page.screenshot(path=shots / "3-platform-task.png", full_page=True)

        tab_to(page, "#comment")
        page.keyboard.type("入户核实，联系电话已采集")
        tab_to(page, "#pass")
        expect(page.locator("#pass")).to_have_text("初审通过")
        page.keyboard.press("Enter")
        expect(page.locator("#decision-message")).to_have_text("初审通过，已转县级经办审定")
        expect(page.locator("#task-state")).to_contain_text("待审定")
        expect(page.locator("#decisions")).to_contain_text("初审通过　demo-platform")
        expect(page.locator("#decisions")).to_contain_text("意见：入户核实，联系电话已采集")
        expect(page.locator("#decision-form")).to_be_hidden()  # the county's turn now
        expect(view).to_be_visible()
        page.screenshot(path=shots / "4-first-reviewed.png", full_page=True)

        page.keyboard.press("Escape")  # back to the list, the row now waiting for 审定
        expect(view).to_be_hidden()
        downloads_the_ledger(page, region)

        page.locator("#logout").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#login-message")).to_have_text("已退出登录")
        log_in(page, "demo-county", "县级经办")
        # The county sees what waits for its approval first, in its whole scope.
        expect(page.locator("#state-filter")).to_have_value("first_reviewed")
        expect(page.locator("#make-list")).to_be_hidden()
        expect(page.locator(f'#tasks tr[data-task-id="{task_id}"]')).to_contain_text("待审定")
        search(page, region, None)  # the same filter, narrowed to the county
        page.screenshot(path=shots / "5-county-list.png", full_page=True)

        open_task(page, task_id)
        expect(page.locator("#decisions")).to_contain_text("初审通过　demo-platform")
        expect(page.locator("#decision-title")).to_have_text("审定")
        page.screenshot(path=shots / "6-county-task.png", full_page=True)
        tab_to(page, "#pass")
        expect(page.locator("#pass")).to_have_text("审定通过")
        page.keyboard.press("Enter")
        expect(page.locator("#decision-message")).to_contain_text("审定通过")
        expect(page.locator("#task-state")).to_contain_text("已审定")
        expect(page.locator("#decisions")).to_contain_text("审定通过　demo-county")
        expect(page.locator("#decision-form")).to_be_hidden()
        page.screenshot(path=shots / "7-approved.png", full_page=True)
        assert errors == [], errors


def survey_page_refusals(
    gateway: str,
    task_id: str,
    region: str,
    *,
    pass_behind_the_page: Callable[[], None],
    make_surveyor_a_county_approver: Callable[[], None],
) -> None:
    """`task_id`: a task of county `region` in state submitted, by demo-surveyor.
    `pass_behind_the_page` passes its 初审 through the API while the page shows it;
    `make_surveyor_a_county_approver` moves demo-surveyor to the county agency's post."""
    shots = artifacts_dir()
    with browser_page() as (page, errors):
        page.goto(f"{gateway}/survey")
        # A surveyor has nothing to review here: told so, and not let in.
        log_in_as(page, "demo-surveyor")
        expect(page.locator("#login-message")).to_contain_text("无审核权限")
        expect(page.locator("#work-view")).to_be_hidden()

        log_in(page, "demo-platform", "基层平台")
        search(page, region, "submitted")
        open_task(page, task_id)

        # 退回 needs its reason: refused on the page, nothing sent, the reason asked for.
        tab_to(page, "#reject")
        page.keyboard.press("Enter")
        comment = page.locator("#comment")
        expect(page.locator("#decision-message")).to_have_text(
            "未退回：请填写审核意见，说明退回原因"
        )
        expect(page.locator("#comment-error")).to_have_text("退回须填写审核意见（退回原因）")
        expect(comment).to_have_attribute("aria-invalid", "true")
        expect(comment).to_be_focused()
        expect(page.locator("#task-state")).to_contain_text("待初审")
        page.screenshot(path=shots / "8-reject-needs-comment.png", full_page=True)

        # Another reviewer passes it meanwhile: the page says so, with the state it is in now.
        pass_behind_the_page()
        tab_to(page, "#pass")
        page.keyboard.press("Enter")
        message = page.locator("#decision-message")
        expect(message).to_contain_text("未办理：调查任务状态已变化：任务当前状态为“待审定”")
        expect(message).to_contain_text("页面已刷新为最新状态")
        expect(page.locator("#task-state")).to_contain_text("待审定")
        expect(page.locator("#decision-form")).to_be_hidden()
        page.screenshot(path=shots / "9-task-changed.png", full_page=True)

        # The surveyor who made the submission, now a county approver, may not approve it.
        make_surveyor_a_county_approver()
        page.locator("#logout").click()
        log_in(page, "demo-surveyor", "县级经办")
        search(page, region, None)
        open_task(page, task_id)
        expect(page.locator("#submission")).to_contain_text("demo-surveyor")
        tab_to(page, "#pass")
        page.keyboard.press("Enter")
        expect(message).to_have_text(
            "未办理：不得审核本人提交或已审核过的调查结果："
            "初审与审定须由不同于调查员和初审人的人员办理（经办规程第十七、十八条）"
        )
        expect(page.locator("#pass")).to_be_focused()
        expect(page.locator("#task-state")).to_contain_text("待审定")
        page.screenshot(path=shots / "10-maker-checker.png", full_page=True)
        assert errors == [], errors


def log_in_as(page: Page, username: str) -> None:
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type("demo")
    page.keyboard.press("Enter")


def log_in(page: Page, username: str, role: str) -> None:
    log_in_as(page, username)
    expect(page.locator("#who-name")).to_contain_text(f"{username}（{role}，辖区 52）")
    expect(page.locator("#division")).to_be_focused()
    expect(page.locator("#division")).to_have_value("52")
    expect(page.locator("#tasks-summary")).not_to_be_empty()  # the scope's list, loaded


def search(page: Page, region: str, state: str | None) -> None:
    """From the division field: the region typed, the state chosen with the arrow keys (None:
    as it is), Enter on 查询."""
    division = page.locator("#division")
    division.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type(region)
    page.keyboard.press("Tab")
    select = page.locator("#state-filter")
    expect(select).to_be_focused()
    if state is not None:
        page.keyboard.press("Home")
        for _ in range(MAX_TABS):
            if select.input_value() == state:
                break
            page.keyboard.press("ArrowDown")
        expect(select).to_have_value(state)
    page.keyboard.press("Tab")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text(f"已查询辖区 {region}")
    # Each task once, though the list loaded at login may have answered after this one.
    shown = page.locator("#tasks tr[data-task-id]").evaluate_all(
        "rows => rows.map(row => row.dataset.taskId)"
    )
    assert len(shown) == len(set(shown)), f"{len(shown) - len(set(shown))} tasks shown twice"


def tab_to(page: Page, selector: str) -> None:
    """Tab forwards until `selector` has the focus: it is reachable by the keyboard."""
    target = page.locator(selector)
    for _ in range(MAX_TABS):
        if target.evaluate("node => node === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} not reached with {MAX_TABS} presses of Tab")


def open_task(page: Page, task_id: str) -> None:
    tab_to(page, f'button[data-open="{task_id}"]')
    page.keyboard.press("Enter")
    expect(page.locator("#task-view")).to_be_visible()
    expect(page.locator("#task-title")).to_be_focused()
    expect(page.locator("#task-title")).to_contain_text("调查任务")


def makes_the_list(page: Page, region: str) -> None:
    """生成调查名单 for the county: the people needing a survey who have no task waiting (the
    test made the list through the API already: few or none are new)."""
    search(page, region, "")
    tab_to(page, "#make-list")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_have_text(
        re.compile(r"^已生成调查名单：新增调查任务 \d+ 个，涉及 \d+ 户（核对辖区人员 \d+ 人）$"),
        timeout=120_000,
    )
    expect(page.locator("#make-list")).to_be_focused()


def assigns_a_household(page: Page, region: str, shots: Path) -> str:
    """The first household of `region` waiting for a team goes to demo-surveyor, from the
    roster of its county."""
    search(page, region, "open")
    assign = page.locator("button[data-assign]").first
    household = assign.get_attribute("data-assign")
    assert household is not None
    tab_to(page, f'button[data-assign="{household}"]')
    page.keyboard.press("Enter")
    expect(page.locator("#assign-title")).to_be_focused()
    surveyor = page.locator("#roster-list label", has_text="（demo-surveyor，")
    expect(surveyor).to_contain_text("调查证")
    box = page.locator(f"#{surveyor.get_attribute('for')}")
    tab_to(page, "#assign-save")  # nobody chosen yet: refused
    page.keyboard.press("Enter")
    expect(page.locator("#assign-message")).to_contain_text("请选择1至3名调查员")
    box.focus()
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    page.screenshot(path=shots / "1b-assign.png", full_page=True)
    tab_to(page, "#assign-save")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_have_text(
        re.compile(r"^已将第 1 户的 \d+ 个调查任务分配给 demo-surveyor$")
    )
    expect(page.locator("#assign-view")).to_be_hidden()
    # The household has left the 待分配 filter's list; the focus is back on the list.
    expect(page.locator(f'tbody[data-household="{household}"]')).to_have_count(0)
    page.screenshot(path=shots / "1c-assigned.png", full_page=True)
    return household


def downloads_the_form(page: Page) -> None:
    """The prefilled registration form (全民参保登记表), fetched with the token."""
    page.locator("#form-pdf").focus()
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    download = info.value
    assert download.suggested_filename.endswith(".pdf"), download.suggested_filename
    path = download.path()
    assert path is not None and Path(path).read_bytes().startswith(b"%PDF")
    expect(page.locator("#task-message")).to_have_text(f"已下载 {download.suggested_filename}")


def downloads_the_ledger(page: Page, region: str) -> None:
    """The community ledger (汇总表) of the county as a workbook."""
    page.locator("#ledger-xlsx").focus()
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    download = info.value
    assert download.suggested_filename == f"ledger-{region}.xlsx", download.suggested_filename
    path = download.path()
    assert path is not None and Path(path).read_bytes().startswith(b"PK")  # a zip: xlsx
    expect(page.locator("#message")).to_have_text(f"已下载 ledger-{region}.xlsx")
