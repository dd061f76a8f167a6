"""The reviewer's page (审核工作台) as the gateway serves it: the page, its script and style sheet,
with the headers that keep it to its own script, and the Chinese labels it shows: the contracts'
code tables, and the survey service's own words for what its answers carry as codes only. The
page at work, in a browser on the local stack, is tests/stack/survey_browser.py."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from canbao_contracts.codes import Insurance, RegistrationItem, StatusCode, SurveyReason
from canbao_survey.tasks import Contact, Outcome, Signatory, Stage, TaskState

LABELS = re.compile(r'<script type="application/json" id="labels">(.*?)</script>', re.S)
FILES = (
    ("/survey", "text/html"),
    ("/survey/survey.js", "text/javascript"),
    ("/survey/survey.css", "text/css"),
)


async def labels_of_page(client: httpx.AsyncClient) -> dict[str, Any]:
    page = (await client.get("/survey")).text
    found = LABELS.search(page)
    assert found is not None
    labels: dict[str, Any] = json.loads(found.group(1))
    return labels


async def test_the_page_is_the_reviewers_in_chinese(client: httpx.AsyncClient) -> None:
    response = await client.get("/survey")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<html lang="zh-CN">' in page
    assert "<title>全民参保登记 · 审核工作台</title>" in page
    for words in ("生成调查名单", "初审通过", "退回", "下载登记表（PDF）", "下载汇总表（Excel）"):
        assert words in page, words
    # Every input has its label; messages are announced.
    for control in re.findall(r'<(?:input|select|textarea) id="([a-z-]+)"', page):
        assert f'<label for="{control}">' in page, control
    assert page.count('aria-live="polite"') >= 3


async def test_the_labels_are_the_contracts_and_the_survey_services(
    client: httpx.AsyncClient,
) -> None:
    labels = await labels_of_page(client)
    assert labels["survey_reasons"] == {
        "uninsured": "养老或医疗保险应参保未参保",
        "partially_insured": "未参全险种",
        "interrupted": "中断缴费",
        "missing_info": "登记信息缺失",
        "inaccurate_info": "登记信息不准确",
        "identity_conflict": "一号多人身份冲突",
    }
    assert set(labels["survey_reasons"]) == {reason.value for reason in SurveyReason}
    assert labels["statuses"] == {code.value: code.label for code in StatusCode}
    assert labels["insurances"] == [{"key": i.value, "label": i.label} for i in Insurance]
    assert set(labels["items"]) == {item.value for item in RegistrationItem}
    assert labels["coded_items"]["gender"] == {"1": "男", "2": "女"}
    assert set(labels["coded_items"]) == {"gender", "household_type", "personal_identity"}
    assert labels["roles"] == {
        "counter": "窗口经办",
        "surveyor": "调查员",
        "platform": "基层平台",
        "county": "县级经办",
        "reviewer": "复核",
        "city": "市级经办",
        "analyst": "统计分析",
        "auditor": "审计",
    }
    # The survey service's words, in the order a task moves (the state filter's order).
    assert labels["task_states"] == {state.value: state.label for state in TaskState}
    assert list(labels["task_states"]) == [state.value for state in TaskState]
    assert labels["task_states"]["first_reviewed"] == "待审定"
    assert labels["outcomes"] == {outcome.value: outcome.label for outcome in Outcome}
    assert labels["contacts"] == {contact.value: contact.label for contact in Contact}
    assert labels["signatories"] == {who.value: who.label for who in Signatory}
    assert labels["stages"] == {stage.value: stage.label for stage in Stage}


async def test_the_page_runs_only_its_own_script(client: httpx.AsyncClient) -> None:
    for path, kind in FILES:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy, path
        assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        assert response.headers["cache-control"] == "no-cache", path
    page = (await client.get("/survey")).text
    # No inline script: the only <script> with content is the labels' JSON, which never runs.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert [attributes for attributes, body in scripts if body.strip()] == [
        ' type="application/json" id="labels"'
    ]
    assert ' src="/survey/survey.js"' in [
        attributes.split(" defer")[0] for attributes, _ in scripts
    ]
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers either
    script = (await client.get("/survey/survey.js")).text
    # The page builds its content from data with textContent, never from HTML.
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "document.write"):
        assert unsafe not in script, unsafe


async def test_the_page_needs_no_login_but_holds_no_personal_data(
    client: httpx.AsyncClient,
) -> None:
    """Anyone may load the page (it is the login screen); what it shows of a person comes from
    the API, behind the token. The page is not in the public OpenAPI document."""
    page = (await client.get("/survey")).text
    assert not re.search(r"\d{17}[\dX]", page)  # no ID number
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not any(path.startswith("/survey") for path in paths)
    assert (await client.get("/survey/other.js")).status_code == 404
