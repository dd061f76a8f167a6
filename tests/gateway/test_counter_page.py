"""The counter page as the gateway serves it: the page, its script and style sheet, with the
headers that keep it to its own script, and the Chinese labels it shows, which come from the
contracts' code tables. The page at work, in a browser on the local stack, is
tests/stack/counter_browser.py."""

from __future__ import annotations

import json
import re

import httpx

from canbao_contracts.codes import (
    FlagType,
    Insurance,
    RegistrationItem,
    RegistrationState,
    StatusCode,
    SurveyReason,
)

LABELS = re.compile(r'<script type="application/json" id="labels">(.*?)</script>', re.S)


async def test_the_page_carries_every_label_of_the_code_tables(client: httpx.AsyncClient) -> None:
    response = await client.get("/counter")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<html lang="zh-CN">' in page
    found = LABELS.search(page)
    assert found is not None
    labels = json.loads(found.group(1))
    assert [i["label"] for i in labels["insurances"]] == [i.label for i in Insurance]
    assert labels["statuses"] == {code.value: code.label for code in StatusCode}
    assert labels["flags"]["duplicate_insurance"] == "重复参保"
    assert set(labels["flags"]) == {flag.value for flag in FlagType}
    assert set(labels["survey_reasons"]) == {reason.value for reason in SurveyReason}
    assert labels["registration"]["confirmed"] == RegistrationState.CONFIRMED.label
    assert labels["items"]["phone"] == {"code": "AAE005", "label": "联系电话", "required": True}
    assert set(labels["items"]) == {item.value for item in RegistrationItem}
    assert {option["code"] for option in labels["coded_items"]["gender"]} == {"1", "2"}


async def test_the_page_runs_only_its_own_script(client: httpx.AsyncClient) -> None:
    for path, kind in (
        ("/counter", "text/html"),
        ("/counter/counter.js", "text/javascript"),
        ("/counter/counter.css", "text/css"),
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    script = (await client.get("/counter/counter.js")).text
    # The page builds its content from data with textContent, never from HTML.
    assert "innerHTML" not in script and "eval(" not in script


async def test_the_page_needs_no_login_but_holds_no_personal_data(
    client: httpx.AsyncClient,
) -> None:
    """Anyone may load the page (it is the login screen); what it shows of a person comes from
    the API, behind the token. The page is not in the public OpenAPI document."""
    page = (await client.get("/counter")).text
    assert not re.search(r"\d{17}[\dX]", page)  # no ID number
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not any(path.startswith("/counter") for path in paths)
