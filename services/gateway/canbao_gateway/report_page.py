"""The analyst's page (统计分析, api.md "Reports"): what a statistics analyst opens in a browser.
Log in; read the quarterly basic-data table (全民参保登记基础数据情况表, domain.md §6) of a
quarter — the current one provisional (临时) — for the region of their account, with its logical
checks; open the people behind a number (报表及对应人员明细); download the table as CSV or
Excel; file (报送) a past quarter's table signed, or see who filed it when and download what was
signed (the province also sees its cities' filing states); count the plans' lists (参保名单) per
city, open a list's people and download it as CSV; and follow coverage against the goals
of domain.md §1 (pension ≥ 90 %, medical everyone, survey rate ≥ 90 %) as a chart per city.

Built like the counter page (counter_page.py): one HTML page, one script, one style sheet (in
`reports/`), served with the same headers, talking only to the public API (`/api/v1/auth/token`,
`/api/v1/reports/…`). The column names and the form's groups come from
`canbao_contracts.report_columns`, the codes' labels from `canbao_contracts.codes`. The page
holds no data: it is static but for those labels.

The chart is drawn with plotly.js, the copy the `plotly` package ships, served here under its
version with a year's caching (the name changes with the version) and gzip when the browser
takes it: nothing is fetched from outside. plotly.js needs no `eval` in the browser; its own
style rules, which it would add as inline <style> (refused by the policy), are in reports.css,
and the page's <link> to that sheet tells plotly.js so (`no-inline-styles`).
"""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from canbao_contracts.codes import (
    Gender,
    Insurance,
    RegistrationState,
    StatusCode,
    SurveyReason,
)
from canbao_contracts.report_columns import COLUMN_GROUPS_ZH, COLUMN_NAMES_ZH
from canbao_gateway.counter_page import LABELS_MARK, ROLE_LABELS, SECURITY_HEADERS

router = APIRouter(include_in_schema=False)
PAGE_DIR: Final = Path(__file__).parent / "reports"
# domain.md §1: the survey rate's goal (Qinghai's plan); the insurances' goals come with the
# coverage answer (`goal`), the survey's does not.
SURVEY_GOAL: Final = 0.9
# The analyst's scope by its length (GB/T 2260): the province, a city, a county.
SCOPE_KINDS: Final = {2: "全省", 4: "地市", 6: "区县"}


def plotly_file() -> Path:
    """plotly.min.js as the installed `plotly` package ships it (found without importing the
    package, which the gateway has no other use for)."""
    spec = find_spec("plotly")
    assert spec is not None and spec.origin is not None, "the gateway depends on plotly"
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


@cache
def plotly_version() -> str:
    """plotly.js's version, from the bundle's banner (`plotly.js v4.1.1`)."""
    with plotly_file().open("rb") as bundle:
        found = re.search(rb"plotly\.js v(\d+\.\d+\.\d+)", bundle.read(200))
    assert found is not None, "plotly.min.js without its version banner"
    return found.group(1).decode()


def plotly_path() -> str:
    return f"/reports/plotly-{plotly_version()}.min.js"


@cache
def plotly_gzipped() -> bytes:
    return gzip.compress(plotly_file().read_bytes(), compresslevel=9, mtime=0)


def labels() -> dict[str, Any]:
    """Everything the page names, in Simplified Chinese, keyed as the API answers."""
    return {
        "columns": {str(number): name for number, name in COLUMN_NAMES_ZH.items()},
        "groups": [{"label": label, "columns": list(cols)} for label, cols in COLUMN_GROUPS_ZH],
        "insurances": [{"key": i.value, "label": i.label} for i in Insurance],
        "statuses": {code.value: code.label for code in StatusCode},
        "registration": {state.value: state.label for state in RegistrationState},
        "survey_reasons": {reason.value: reason.label for reason in SurveyReason},
        "genders": {gender.value: gender.label for gender in Gender},
        "roles": {role.value: label for role, label in ROLE_LABELS.items()},
        "scope_kinds": {str(length): kind for length, kind in SCOPE_KINDS.items()},
        "survey_goal": SURVEY_GOAL,
        "plotly": plotly_path(),
    }


@cache
def page() -> str:
    html = (PAGE_DIR / "reports.html").read_text(encoding="utf-8")
    # `</` never occurs in the labels, so the JSON cannot close its <script> element.
    data = json.dumps(labels(), ensure_ascii=False, separators=(",", ":"))
    assert "</" not in data
    return html.replace(LABELS_MARK, data)


@router.get("/reports", response_class=HTMLResponse)
async def report_page() -> HTMLResponse:
    return HTMLResponse(page(), headers=SECURITY_HEADERS)


@router.get("/reports/reports.js")
async def report_script() -> FileResponse:
    return FileResponse(
        PAGE_DIR / "reports.js", media_type="text/javascript", headers=SECURITY_HEADERS
    )


@router.get("/reports/reports.css")
async def report_style() -> FileResponse:
    return FileResponse(PAGE_DIR / "reports.css", media_type="text/css", headers=SECURITY_HEADERS)


@router.get("/reports/plotly-{version}.min.js")
async def plotly_script(version: str, accept_encoding: Annotated[str, Header()] = "") -> Response:
    """The chart library, under the version it is (another: 404). Its name changes with the
    version, so a browser keeps it a year and never asks again; 4.8 MB, 1.5 MB gzipped."""
    if version != plotly_version():
        raise HTTPException(404)
    headers = SECURITY_HEADERS | {
        "Cache-Control": "public, max-age=31536000, immutable",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in accept_encoding.lower():
        body = await run_in_threadpool(plotly_gzipped)  # compressed once, on first use
        return Response(
            body, media_type="text/javascript", headers=headers | {"Content-Encoding": "gzip"}
        )
    return FileResponse(plotly_file(), media_type="text/javascript", headers=headers)
