"""The kiosk page as the gateway serves it: the page, its script and style sheet, with the
headers that keep it to its own script, and the Chinese labels of the code tables it shows. The
page at work, in a browser on the local stack, is tests/stack/kiosk_browser.py."""

from __future__ import annotations

import json
import re

import httpx

from canbao_contracts.codes import Insurance, RegistrationState, StatusCode

LABELS = re.compile(r'<script type="application/json" id="labels">(.*?)</script>', re.S)


async def test_the_kiosk_page_carries_the_labels_of_the_code_tables(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/kiosk")
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text and "自助服务" in response.text
    found = LABELS.search(response.text)
    assert found is not None
    labels = json.loads(found.group(1))
    assert [i["label"] for i in labels["insurances"]] == [i.label for i in Insurance]
    assert labels["statuses"] == {code.value: code.label for code in StatusCode}
    assert labels["registration"]["confirmed"] == RegistrationState.CONFIRMED.label
    assert labels["items"]["phone"] == "联系电话"


async def test_the_kiosk_page_runs_only_its_own_script(client: httpx.AsyncClient) -> None:
    for path, kind in (
        ("/kiosk", "text/html"),
        ("/kiosk/kiosk.js", "text/javascript"),
        ("/kiosk/kiosk.css", "text/css"),
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind), path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    script = (await client.get("/kiosk/kiosk.js")).text
    assert "innerHTML" not in script and "eval(" not in script
    # Tokens in sessionStorage only: nothing of a citizen outlives the kiosk's browser.
    assert "localStorage" not in script and "document.cookie" not in script
