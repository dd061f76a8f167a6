"""The reviewer's page (审核工作台, domain.md §2.3): what the grass-roots platform (基层平台) and
the county agency (县级经办) open in a browser for the household survey. Log in; the platform
makes the survey target list of its division, assigns households to teams of surveyors and does
the first review (初审) of what they submitted, beside the person's current record; the county
approves (审定). Both download the prefilled registration form (全民参保登记表) and the community
ledger (汇总表), and follow the division's survey rate.

Built like the counter page (counter_page.py): one HTML page, one script, one style sheet (in
`survey/`), served with the same headers, talking only to the public API (`/api/v1/auth/token`,
`/api/v1/survey/…`, api.md "Survey"). Labels come from `canbao_contracts.codes` where the
contracts have them; the survey's own words (task states, outcomes, who signed) are the ones
the survey service answers with (`state_label`, `outcome_label`), repeated here for the filter
and the parts of an answer that carry no label; tests/gateway/test_survey_page.py keeps the two
equal. The page holds no personal data: it is static but for those labels.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from canbao_contracts.codes import (
    Insurance,
    RegistrationItem,
    RegistrationState,
    StatusCode,
    SurveyReason,
)
from canbao_gateway.counter_page import CODED_ITEMS, ROLE_LABELS, SECURITY_HEADERS

router = APIRouter(include_in_schema=False)
PAGE_DIR: Final = Path(__file__).parent / "survey"
LABELS_MARK: Final = "<!-- labels -->"

# The survey service's task states (its TaskState), in the order a task moves through them.
TASK_STATES: Final = {
    "open": "待分配",
    "assigned": "调查中",
    "submitted": "待初审",
    "first_reviewed": "待审定",
    "approved": "已审定",
    "closed": "已关闭",
}
# What a visit found (survey's Outcome), how the person was reached (Contact), who signed the
# form's 本人声明 (Signatory), and the two review stages with their decisions.
OUTCOMES: Final = {"collected": "已采集", "verified": "核实未参保原因", "not_found": "查无此人"}
CONTACTS: Final = {"visit": "入户", "phone": "电话", "self": "自助", "walk_in": "来访"}
SIGNATORIES: Final = {"self": "本人", "guardian": "监护人", "agent": "指定代理人"}
STAGES: Final = {"review": "初审", "approve": "审定"}
DECISIONS: Final = {"pass": "通过", "approve": "通过", "reject": "退回"}
# Relation to the head of the household (sources.md, hukou.person.yhzgx).
RELATIONS: Final = {"01": "户主", "02": "配偶", "10": "子女", "20": "父母", "99": "其他"}


def labels() -> dict[str, Any]:
    """Everything the page names, in Simplified Chinese, keyed as the API answers."""
    return {
        "insurances": [{"key": i.value, "label": i.label} for i in Insurance],
        "statuses": {code.value: code.label for code in StatusCode},
        "survey_reasons": {reason.value: reason.label for reason in SurveyReason},
        "registration": {state.value: state.label for state in RegistrationState},
        "items": {i.value: {"code": i.code, "label": i.label} for i in RegistrationItem},
        # Coded items (gender, household type, personal identity) are answered as codes.
        "coded_items": {
            item.value: {c.value: c.label for c in table} for item, table in CODED_ITEMS.items()
        },
        "roles": {role.value: label for role, label in ROLE_LABELS.items()},
        "task_states": TASK_STATES,
        "outcomes": OUTCOMES,
        "contacts": CONTACTS,
        "signatories": SIGNATORIES,
        "stages": STAGES,
        "decisions": DECISIONS,
        "relations": RELATIONS,
    }


@cache
def page() -> str:
    html = (PAGE_DIR / "survey.html").read_text(encoding="utf-8")
    # `</` never occurs in the labels, so the JSON cannot close its <script> element.
    data = json.dumps(labels(), ensure_ascii=False, separators=(",", ":"))
    assert "</" not in data
    return html.replace(LABELS_MARK, data)


@router.get("/survey", response_class=HTMLResponse)
async def survey_page() -> HTMLResponse:
    return HTMLResponse(page(), headers=SECURITY_HEADERS)


@router.get("/survey/survey.js")
async def survey_script() -> FileResponse:
    return FileResponse(
        PAGE_DIR / "survey.js", media_type="text/javascript", headers=SECURITY_HEADERS
    )


@router.get("/survey/survey.css")
async def survey_style() -> FileResponse:
    return FileResponse(PAGE_DIR / "survey.css", media_type="text/css", headers=SECURITY_HEADERS)
