"""The counter page (api.md, the counter popup): what a clerk at a counter window opens in a
browser. Log in, type or scan a citizen ID number (a card reader types it like a keyboard, then
Enter), read the popup (statuses of the five insurances, flags, what is missing or inaccurate)
and fill in what the person in front of them provides; saved as submitted ("已提交，待复核": the
popup lists it as pending) until a reviewer passes it (复核), then the popup refreshes until the
registry shows it.

No front-end framework: one HTML page, one script, one style sheet (in `counter/`), talking to
the same public API any counter software uses (`/api/v1/auth/token`, `/api/v1/counter/popup/…`,
`/api/v1/counter/collections`). Every Chinese label the page shows comes from
`canbao_contracts.codes`, rendered into the page as JSON, so the page and the API never disagree
on what a code means. The page itself holds no personal data: it is static but for those labels.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from canbao_contracts.codes import (
    FlagType,
    Gender,
    HouseholdType,
    Insurance,
    PersonalIdentity,
    RegistrationItem,
    RegistrationState,
    StatusCode,
    SurveyReason,
)
from canbao_gateway.staff import Role

router = APIRouter(include_in_schema=False)
PAGE_DIR: Final = Path(__file__).parent / "counter"
LABELS_MARK: Final = "<!-- labels -->"

ROLE_LABELS: Final = {
    Role.COUNTER: "窗口经办",
    Role.SURVEYOR: "调查员",
    Role.PLATFORM: "基层平台",
    Role.COUNTY: "县级经办",
    Role.REVIEWER: "复核",
    Role.CITY: "市级经办",
    Role.ANALYST: "统计分析",
    Role.AUDITOR: "审计",
}
# What the clerk types for an item, when it is not free text: a code table, or a date.
CODED_ITEMS: Final = {
    RegistrationItem.GENDER: Gender,
    RegistrationItem.HOUSEHOLD_TYPE: HouseholdType,
    RegistrationItem.PERSONAL_IDENTITY: PersonalIdentity,
}
# The page is served with these on every file: it runs only its own script, in no frame.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def labels() -> dict[str, Any]:
    """Everything the page names, in Simplified Chinese, keyed as the API answers."""
    return {
        "insurances": [{"key": i.value, "label": i.label} for i in Insurance],
        "statuses": {code.value: code.label for code in StatusCode},
        "flags": {flag.value: flag.label for flag in FlagType},
        "survey_reasons": {reason.value: reason.label for reason in SurveyReason},
        "registration": {state.value: state.label for state in RegistrationState},
        "items": {
            i.value: {"code": i.code, "label": i.label, "required": i.required}
            for i in RegistrationItem
        },
        "coded_items": {
            item.value: [{"code": c.value, "label": c.label} for c in table]
            for item, table in CODED_ITEMS.items()
        },
        "roles": {role.value: label for role, label in ROLE_LABELS.items()},
    }


@cache
def page() -> str:
    html = (PAGE_DIR / "counter.html").read_text(encoding="utf-8")
    # `</` never occurs in the labels, so the JSON cannot close its <script> element.
    data = json.dumps(labels(), ensure_ascii=False, separators=(",", ":"))
    assert "</" not in data
    return html.replace(LABELS_MARK, data)


@router.get("/counter", response_class=HTMLResponse)
async def counter_page() -> HTMLResponse:
    return HTMLResponse(page(), headers=SECURITY_HEADERS)


@router.get("/counter/counter.js")
async def counter_script() -> FileResponse:
    return FileResponse(
        PAGE_DIR / "counter.js", media_type="text/javascript", headers=SECURITY_HEADERS
    )


@router.get("/counter/counter.css")
async def counter_style() -> FileResponse:
    return FileResponse(PAGE_DIR / "counter.css", media_type="text/css", headers=SECURITY_HEADERS)
