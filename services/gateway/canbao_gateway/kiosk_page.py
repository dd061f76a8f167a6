"""The kiosk page (自助一体机, api.md "Self-service"; 44号 §14, §23): what a self-service kiosk
in a service hall shows. The device logs in once with its client credentials; a citizen puts
their ID card on the reader (in the local stack, a form stands in for the reader), reads their
own record in large type, completes the phone on an on-screen keypad, prints the proof of
insurance (参保证明) and leaves; after a while without a touch the session ends by itself.

As the counter page (counter_page.py): one HTML page, one script, one style sheet (in `kiosk/`),
the public API only, the Chinese labels of `canbao_contracts.codes` rendered into the page, and
the same security headers. The page itself holds no personal data.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from canbao_contracts.codes import Insurance, RegistrationItem, RegistrationState, StatusCode
from canbao_gateway.counter_page import LABELS_MARK, SECURITY_HEADERS

router = APIRouter(include_in_schema=False)
PAGE_DIR: Final = Path(__file__).parent / "kiosk"


def labels() -> dict[str, Any]:
    """What the page names, in Simplified Chinese, keyed as the API answers."""
    return {
        "insurances": [{"key": i.value, "label": i.label} for i in Insurance],
        "statuses": {code.value: code.label for code in StatusCode},
        "registration": {state.value: state.label for state in RegistrationState},
        "items": {i.value: i.label for i in RegistrationItem},
    }


@cache
def page() -> str:
    html = (PAGE_DIR / "kiosk.html").read_text(encoding="utf-8")
    data = json.dumps(labels(), ensure_ascii=False, separators=(",", ":"))
    assert "</" not in data  # the JSON cannot close its <script> element
    return html.replace(LABELS_MARK, data)


@router.get("/kiosk", response_class=HTMLResponse)
async def kiosk_page() -> HTMLResponse:
    return HTMLResponse(page(), headers=SECURITY_HEADERS)


@router.get("/kiosk/kiosk.js")
async def kiosk_script() -> FileResponse:
    return FileResponse(
        PAGE_DIR / "kiosk.js", media_type="text/javascript", headers=SECURITY_HEADERS
    )


@router.get("/kiosk/kiosk.css")
async def kiosk_style() -> FileResponse:
    return FileResponse(PAGE_DIR / "kiosk.css", media_type="text/css", headers=SECURITY_HEADERS)
