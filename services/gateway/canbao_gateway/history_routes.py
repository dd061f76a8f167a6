"""`GET /api/v1/persons/{id_number}/history`: a person's change history (44号 Art.20,
参保信息变更情况) — every change of a value of their registration, with where it came from (a
business system's record, or a collection: its channel, the clerk who made it AAE011 and who
checked it AAE014), and every review step about them (提交, 初审, 审定, 复核, 退回, with who,
when and the comment), newest first.

Composed from identity (`GET /internal/persons/{person_id}/history`: the changes, values in
clear) and survey (`GET /internal/survey/persons/{person_id}/steps`: tasks, submissions, the
decisions ledger, counter collections; item names only). The person is resolved and their
region checked as for the registration record (persons.py); the read is audited with purpose
`change_history` while identity is asked.

Who: the staff who work on one person's registration — counter, grass-roots platform (初审),
county (审定) — and the reviewer (复核人), who checks what a clerk changed. Values are masked as
on the registration record (popup.py's `masked`): none of these roles needs them in clear (the
clerk asks the person in front of them), so `CLEAR_FIELDS_FOR` grants none.

Paging: the changes come a page at a time (identity's keyset cursor, `next_cursor`); the steps,
a handful per person, all on the first page (none on the next ones).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from canbao_contracts.codes import SOURCE_LABELS, RegistrationItem
from canbao_contracts.events.vocabulary import Channel
from canbao_contracts.id_numbers import mask, mask_name
from canbao_gateway import problems
from canbao_gateway.audit import Outcome, Purpose
from canbao_gateway.auth import AuditDep, require
from canbao_gateway.persons import RegisteredPerson, registered_person
from canbao_gateway.popup import masked
from canbao_gateway.service_clients import IdentityClient, identity_client
from canbao_gateway.staff import Role, Staff
from canbao_gateway.survey import SurveyClient, survey_client
from canbao_platform.problems import Problem

router = APIRouter(prefix="/api/v1")
HISTORY_ROLES: Final = (Role.COUNTER, Role.REVIEWER, Role.PLATFORM, Role.COUNTY)
# Golden-record fields a role sees in clear in the history (every other value masked): none.
CLEAR_FIELDS_FOR: Final[dict[Role, frozenset[str]]] = {}
PAGE: Final = 100

# The golden record's fields as the registration form names them (41号 attachment 1), and
# those it has no item for.
ITEM_LABELS: Final = {item.value: item.label for item in RegistrationItem} | {
    "document_type": "证件类型",
    "household_region_code": "户籍所在地行政区划",
    "household_status": "户籍状态",
    "household_number": "户号",
    "household_relation": "与户主关系",
    "household_address": "户籍地址",
    "region_code": "所在行政区划",
    "death_date": "死亡日期",
}
EVENT_LABELS: Final = {
    "registered": "首次登记",
    "deceased": "死亡",
    "merged": "并入另一人员记录",
    "absorbed": "合并另一人员记录",
}
STEP_LABELS: Final = {
    ("submit", None): "提交",
    ("review", "pass"): "初审通过",
    ("review", "reject"): "初审退回",
    ("approve", "approve"): "审定通过",
    ("approve", "reject"): "审定退回",
    ("recheck", "pass"): "复核通过",
    ("recheck", "reject"): "复核退回",
}
CHANNEL_LABELS: Final = {channel.value: channel.label for channel in Channel}

history_person = registered_person(Purpose.CHANGE_HISTORY)
IdentityDep = Annotated[IdentityClient, Depends(identity_client)]
SurveyDep = Annotated[SurveyClient, Depends(survey_client)]


class Change(BaseModel):
    at: datetime = Field(description="when the registry's value changed")
    kind: str = Field(description="value, or the person's event: registered, deceased, merged…")
    item: str | None = Field(description="the field that changed (kind `value`)")
    label: str = Field(description="联系电话, 居住地址…; or the event: 首次登记, 死亡…")
    old: Any = Field(description="masked")
    new: Any = Field(description="masked")
    source: str | None = Field(description='"si_core.ac01", "collection.counter"…')
    source_label: str | None = Field(description="社保系统, 户籍, 信息采集…")
    observed_at: str | None = Field(description="when the source committed the value")
    channel: str | None = Field(description="a collection's: counter, kiosk, survey, platform…")
    channel_label: str | None
    collection_id: UUID | None
    handler: str | None = Field(description="AAE011: who collected it")
    reviewer: str | None = Field(description="AAE014: who checked it")


class Step(BaseModel):
    at: datetime
    kind: str = Field(description="submit, review (初审), approve (审定), recheck (复核)")
    decision: str | None = Field(description="pass, approve, reject; null for a submission")
    label: str = Field(description="提交, 初审通过, 审定通过, 复核通过, 退回…")
    by: str
    comment: str | None
    channel: str | None = Field(description="where it was submitted (a submission's)")
    items: list[str] | None = Field(description="the items submitted (names, never values)")
    task_id: UUID | None
    collection_id: UUID | None


class PersonHistory(BaseModel):
    person_id: UUID
    id_number: str | None = Field(description="masked")
    name: str | None = Field(description="masked")
    changes: list[Change] = Field(description="newest first")
    steps: list[Step] = Field(description="newest first; on the first page only")
    next_cursor: str | None = Field(description="the next (older) page of changes")


class InvalidCursor(Problem):
    def __init__(self) -> None:
        super().__init__(422, "invalid-cursor", "分页游标无效 (invalid cursor)")


ERRORS: Final = problems.problem_responses(
    {
        401: problems.UNAUTHENTICATED,
        403: "role-not-allowed; out-of-scope (the person lives outside your region)",
        404: "not-registered",
        422: "invalid-id-number (`defects` says what is wrong with the number), "
        "invalid-document-number, invalid-cursor, invalid-request",
        503: "identity-unavailable, survey-unavailable",
    }
)


@router.get(
    "/persons/{id_number}/history",
    tags=["persons"],
    responses=ERRORS,
    summary="A person's change history and review steps (masked)",
)
async def person_history(
    staff: Annotated[
        Staff, require(*HISTORY_ROLES, person=history_person, purpose=Purpose.CHANGE_HISTORY)
    ],
    person: Annotated[RegisteredPerson, Depends(history_person)],
    identity: IdentityDep,
    survey: SurveyDep,
    audit: AuditDep,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> PersonHistory:
    assert person.person_id is not None  # set by registered_person
    cursor = cursor or None  # `?cursor=`: the first page
    # Both settled before answering (persons.py says why): the row is written as identity is
    # asked, so when it fails the log may say more than was shown, never less.
    changes, recorded = await asyncio.gather(
        _changes(identity, person.person_id, cursor, staff),
        audit.record(
            purpose=Purpose.CHANGE_HISTORY,
            outcome=Outcome.OK,
            person_id=person.person_id,
            id_number=person.id_number,
            person_region=person.region,
        ),
        return_exceptions=True,
    )
    if isinstance(recorded, BaseException):
        raise recorded
    if isinstance(changes, BaseException):
        raise changes
    steps: list[Step] = []
    if cursor is None:
        # A person a collection registered is not named by it: its collection_id is. Those
        # merged into this person have steps under their old person_id.
        named = sorted(
            {str(c["collection_id"]) for c in changes["changes"] if c.get("collection_id")}
        )
        merged = sorted(
            {
                str(c["other_person_id"])
                for c in changes["changes"]
                if c["kind"] == "absorbed" and c.get("other_person_id")
            }
        )
        response = await survey.call(
            "GET",
            f"/persons/{person.person_id}/steps",
            caller=staff,
            params={"collection_id": named, "merged": merged},
        )
        steps = steps_of(response.json())
    golden = person.record["golden"]
    number = (golden.get("id_number") or {}).get("value") or person.id_number
    name = (golden.get("name") or {}).get("value")
    clear = CLEAR_FIELDS_FOR.get(staff.role, frozenset())
    return PersonHistory(
        person_id=person.person_id,
        id_number=mask(number) if number else None,
        name=mask_name(name) if name else None,
        changes=[change_of(c, clear) for c in changes["changes"]],
        steps=steps,
        next_cursor=changes["next_cursor"],
    )


async def _changes(
    identity: IdentityClient, person_id: UUID, cursor: str | None, staff: Staff
) -> dict[str, Any]:
    """Identity's page of the person's history (values in clear: never sent on unmasked),
    through the identity client's signed transport (service_clients.py's reads are the record's)."""
    params: dict[str, Any] = {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
    response = await identity._send(
        "GET", f"/internal/persons/{person_id}/history", caller=staff, params=params
    )
    if response.status_code == 404:
        raise problems.NotRegistered()  # merged meanwhile
    if response.status_code == 422:
        raise InvalidCursor()
    if response.status_code != 200:
        raise identity.unavailable()
    page: dict[str, Any] = response.json()
    return page


def change_of(change: dict[str, Any], clear: frozenset[str]) -> Change:
    item, kind = change.get("item"), change["kind"]
    source, channel = change.get("source"), change.get("channel")

    def shown(value: Any) -> Any:
        if item is None or item in clear:
            return value
        return masked(item, value)

    return Change(
        at=change["changed_at"],
        kind=kind,
        item=item,
        label=ITEM_LABELS.get(item, item) if item else EVENT_LABELS.get(kind, kind),
        old=shown(change.get("old")),
        new=shown(change.get("new")),
        source=source,
        source_label=SOURCE_LABELS.get(source.split(".")[0]) if source else None,
        observed_at=change.get("observed_at"),
        channel=channel,
        channel_label=CHANNEL_LABELS.get(channel) if channel else None,
        collection_id=change.get("collection_id"),
        handler=change.get("handler"),
        reviewer=change.get("reviewer"),
    )


def steps_of(found: dict[str, Any]) -> list[Step]:
    """Survey's tasks, submissions, collections and ledger rows as one list, newest first."""
    steps: list[Step] = []
    for task in found["tasks"]:
        for submission in task["submissions"]:
            steps.append(
                _submitted(
                    submission["submitted_at"],
                    submission["submitted_by"],
                    submission["channel"],
                    submission["item_names"],
                    task_id=task["task_id"],
                )
            )
            steps += [_decided(d, task_id=task["task_id"]) for d in submission["decisions"]]
    for collection in found["collections"]:
        collection_id = collection["collection_id"]
        steps.append(
            _submitted(
                collection["handled_at"],
                collection["handler"],
                collection["channel"],
                collection["item_names"],
                collection_id=collection_id,
            )
        )
        steps += [_decided(d, collection_id=collection_id) for d in collection["decisions"]]
        if not collection["decisions"] and collection["reviewer"] and collection["reviewed_at"]:
            # Approved before the ledger held the counter's 复核: the collection names its
            # reviewer (AAE014/AAE015) itself.
            recheck = {
                "stage": "recheck",
                "decision": "pass",
                "comment": "",
                "decided_by": collection["reviewer"],
                "decided_at": collection["reviewed_at"],
            }
            steps.append(_decided(recheck, collection_id=collection_id))
    # Newest first; of two at one instant (a collection approved as it was made), the later.
    order = {id(step): n for n, step in enumerate(steps)}
    return sorted(steps, key=lambda s: (s.at, order[id(s)]), reverse=True)


def _submitted(
    at: str,
    by: str,
    channel: str,
    items: list[str],
    *,
    task_id: str | None = None,
    collection_id: str | None = None,
) -> Step:
    label = STEP_LABELS[("submit", None)]
    if channel in CHANNEL_LABELS:
        label += f"（{CHANNEL_LABELS[channel]}）"
    return Step(
        at=datetime.fromisoformat(at),
        kind="submit",
        decision=None,
        label=label,
        by=by,
        comment=None,
        channel=channel,
        items=items,
        task_id=task_id,
        collection_id=collection_id,
    )


def _decided(
    decision: dict[str, Any], *, task_id: str | None = None, collection_id: str | None = None
) -> Step:
    stage, verdict = decision["stage"], decision["decision"]
    return Step(
        at=datetime.fromisoformat(str(decision["decided_at"])),
        kind=stage,
        decision=verdict,
        label=STEP_LABELS.get((stage, verdict), f"{stage} {verdict}"),
        by=decision["decided_by"],
        comment=decision["comment"] or None,
        channel=None,
        items=None,
        task_id=task_id,
        collection_id=collection_id,
    )
