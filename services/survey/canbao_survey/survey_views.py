"""The survey's reads (api.md "Survey"): tasks page by page, a household with its members, a task
for the visit (prefilled values in clear for its team only) or for review (masked), progress per
division and team, and the data of the printed documents (documents.py draws them).

Masking (api.md): lists and reviews show `5201**********123X`, `张*` and the address down to its
township or street; only the surveyors of the task's team read the prefilled values in clear, to
find the person and fill the form with them (the gateway audits every such read).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from canbao_contracts.codes import ChangeDocument, Insurance, RegistrationItem, StatusCode
from canbao_platform.db import Database
from canbao_platform.sealing import Sealer
from canbao_platform.service_tokens import Caller
from canbao_survey.collections import masked
from canbao_survey.lists import resident_context
from canbao_survey.problems import OutOfScope, TaskNotFound
from canbao_survey.review import covers, submission_context
from canbao_survey.tables import decisions, residents, subjects, submissions, tasks
from canbao_survey.tasks import ClosedReason, Outcome, TaskState

PAGE: Final = 50
SURVEYOR: Final = "surveyor"
ADDRESS_SHOWN: Final = 12  # province, city, county and the start of the street or township


def mask_address(address: str | None) -> str | None:
    """The address down to about its township or street, the rest hidden (api.md: masked): at
    most ADDRESS_SHOWN characters, at most half of it, and never from its first digit on (the
    house number), so that a short address (`贵阳市南明区某路1号`) is masked too."""
    if not address:
        return None
    digit = next((i for i, c in enumerate(address) if c.isdigit()), len(address))
    return address[: min(ADDRESS_SHOWN, len(address) // 2, digit)] + "****"


def _items_of(codes: list[str]) -> list[dict[str, str]]:
    return [
        {"item": i.value, "code": i.code, "label": i.label}
        for i in RegistrationItem
        if i.value in codes
    ]


def _inaccurate_of(entries: list[dict[str, str]]) -> list[dict[str, str]]:
    known = {i.value: i for i in RegistrationItem}
    return [
        {
            "item": e["item"],
            "code": known[e["item"]].code,
            "label": known[e["item"]].label,
            "reason": e["reason"],
        }
        for e in entries
        if e["item"] in known
    ]


def _cursor(row: Any) -> str:
    text = json.dumps([row["region_code"], row["household_key"] or "", str(row["task_id"])])
    return base64.urlsafe_b64encode(text.encode()).decode()


def _after(cursor: str) -> sa.ColumnElement[bool]:
    try:
        region, household, task_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        after = (str(region), str(household), UUID(str(task_id)))
    except (ValueError, TypeError):
        raise ValueError("cursor") from None
    key = sa.tuple_(
        tasks.c.region_code, sa.func.coalesce(tasks.c.household_key, ""), tasks.c.task_id
    )
    return key > sa.tuple_(*(sa.literal(v) for v in after))


async def list_tasks(
    database: Database,
    sealer: Sealer,
    caller: Caller,
    *,
    region: str | None,
    state: str | None,
    surveyor: str | None,
    channel: str | None,
    cursor: str | None,
    limit: int = PAGE,
) -> dict[str, Any]:
    region = region or caller.scope
    if not covers(caller, region):
        raise OutOfScope(region)
    query = (
        sa.select(
            tasks,
            residents.c.masked_name.label("r_name"),
            residents.c.masked_id_number,
            residents.c.prefill_sealed,
            residents.c.key_id.label("r_key_id"),
            subjects.c.masked_name.label("s_name"),
        )
        .select_from(
            tasks.outerjoin(residents, residents.c.person_id == tasks.c.person_id).outerjoin(
                subjects, subjects.c.person_id == tasks.c.person_id
            )
        )
        .where(tasks.c.region_code.like(region + "%"))
        .order_by(tasks.c.region_code, sa.func.coalesce(tasks.c.household_key, ""), tasks.c.task_id)
        .limit(limit + 1)
    )
    if caller.role == SURVEYOR:  # api.md: a surveyor sees only its own tasks
        query = query.where(tasks.c.team.contains([caller.username]))
    elif surveyor:
        query = query.where(tasks.c.team.contains([surveyor]))
    if state:
        query = query.where(tasks.c.state == state)
    if channel:
        query = query.where(tasks.c.channel == channel)
    if cursor:
        query = query.where(_after(cursor))
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    page = rows[:limit]
    return {
        "items": [task_item(row, address=_address(row, sealer)) for row in page],
        "next": _cursor(page[-1]) if len(rows) > limit else None,
    }


def _address(row: Any, sealer: Sealer) -> str | None:
    if row["prefill_sealed"] is None:
        return None
    prefill = sealer.open(
        row["prefill_sealed"], key_id=row["r_key_id"], context=resident_context(row["person_id"])
    )
    return mask_address(prefill.get("residence_address") or prefill.get("household_address"))


def task_item(row: Any, *, address: str | None) -> dict[str, Any]:
    state = TaskState(row["state"])
    closed = ClosedReason(row["closed_reason"]) if row["closed_reason"] else None
    return {
        "task_id": str(row["task_id"]),
        "channel": row["channel"],
        "person": {
            "person_id": str(row["person_id"]) if row["person_id"] else None,
            "id_number": row["masked_id_number"],
            "name": row["r_name"] or row["s_name"],
            "address": address,
        },
        "region_code": row["region_code"],
        "household": row["household_key"],
        "survey_reasons": list(row["survey_reasons"]),
        "missing": _items_of(list(row["missing"])),
        "inaccurate": _inaccurate_of(list(row["inaccurate"])),
        "state": state.value,
        "state_label": state.label,
        "closed_reason": closed.value if closed else None,
        "closed_reason_label": closed.label if closed else None,
        "team": list(row["team"]),
        "comment": row["last_comment"],
        "version": row["version"],
        "updated_at": row["updated_at"].isoformat(),
    }


# A task with what survey holds of its person: the sealed prefill, the masked name, the verdict.
_TASK_WITH_PERSON: Final = sa.select(
    tasks,
    residents.c.masked_name.label("r_name"),
    residents.c.masked_id_number,
    residents.c.prefill_sealed,
    residents.c.key_id.label("r_key_id"),
    subjects.c.masked_name.label("s_name"),
    subjects.c.statuses,
).select_from(
    tasks.outerjoin(residents, residents.c.person_id == tasks.c.person_id).outerjoin(
        subjects, subjects.c.person_id == tasks.c.person_id
    )
)


async def _visible_task(connection: Any, task_id: UUID, caller: Caller) -> Any:
    """The task as `caller` may see it: in their region; for a surveyor, their team's only
    (another team's task answers as if it did not exist)."""
    row = (
        (await connection.execute(_TASK_WITH_PERSON.where(tasks.c.task_id == task_id)))
        .mappings()
        .first()
    )
    if row is None:
        raise TaskNotFound()
    if not covers(caller, row["region_code"]):
        raise OutOfScope(row["region_code"])
    if caller.role == SURVEYOR and caller.username not in row["team"]:
        raise TaskNotFound()
    return row


async def task_detail(
    database: Database, sealer: Sealer, task_id: UUID, caller: Caller
) -> dict[str, Any]:
    """A task with its household and current submission. Its team's surveyors get the prefilled
    values in clear (they visit with them); reviewers get them masked."""
    async with database.engine.connect() as connection:
        row = await _visible_task(connection, task_id, caller)
        clear = caller.role == SURVEYOR
        household = await _household(connection, sealer, row, clear=clear)
        submission = await _submission(connection, sealer, row["submission_id"])
    prefill = _prefill(sealer, row) if row["prefill_sealed"] is not None else {}
    item = task_item(
        row,
        address=mask_address(prefill.get("residence_address") or prefill.get("household_address")),
    )
    item["statuses"] = row["statuses"] or {}
    item["prefill"] = prefill_view(prefill, clear=clear)
    item["household_members"] = household
    item["submission"] = submission
    return item


def _prefill(sealer: Sealer, row: Any) -> dict[str, Any]:
    return sealer.open(
        row["prefill_sealed"], key_id=row["r_key_id"], context=resident_context(row["person_id"])
    )


# Identity's survey subject fields → the registration form's items (domain.md §4).
PREFILL_ITEMS: Final = {
    "name": RegistrationItem.NAME,
    "gender": RegistrationItem.GENDER,
    "id_number": RegistrationItem.ID_NUMBER,
    "birth_date": RegistrationItem.BIRTH_DATE,
    "personal_identity": RegistrationItem.PERSONAL_IDENTITY,
    "household_type": RegistrationItem.HOUSEHOLD_TYPE,
    "household_place": RegistrationItem.HOUSEHOLD_PLACE,
    "residence_address": RegistrationItem.RESIDENCE_ADDRESS,
    "phone": RegistrationItem.PHONE,
}


def prefill_items(prefill: dict[str, Any]) -> dict[str, str | None]:
    """The form's items from identity's subject, values as the item table writes them."""
    items: dict[str, str | None] = {}
    for field, item in PREFILL_ITEMS.items():
        value = prefill.get(field)
        if item is RegistrationItem.BIRTH_DATE and value:
            value = str(value).replace("-", "")
        items[item.value] = str(value) if value not in (None, "") else None
    return items


def prefill_view(prefill: dict[str, Any], *, clear: bool) -> list[dict[str, Any]]:
    return [
        {
            "item": item,
            "code": RegistrationItem(item).code,
            "label": RegistrationItem(item).label,
            "value": value if clear or value is None else masked(RegistrationItem(item), value),
        }
        for item, value in prefill_items(prefill).items()
    ]


async def _household(connection: Any, sealer: Sealer, row: Any, *, clear: bool) -> list[Any]:
    """Every member of the task's household: who needs the survey, who is already complete."""
    if row["household_key"] is None:
        return []
    members = (
        (
            await connection.execute(
                sa.select(
                    residents.c.person_id,
                    residents.c.relation,
                    residents.c.masked_name,
                    residents.c.masked_id_number,
                    residents.c.prefill_sealed,
                    residents.c.key_id,
                    subjects.c.needs_survey,
                    subjects.c.registration,
                    tasks.c.task_id,
                    tasks.c.state,
                )
                .select_from(
                    residents.outerjoin(
                        subjects, subjects.c.person_id == residents.c.person_id
                    ).outerjoin(
                        tasks,
                        sa.and_(
                            tasks.c.person_id == residents.c.person_id,
                            tasks.c.state != TaskState.CLOSED.value,
                        ),
                    )
                )
                .where(residents.c.household_key == row["household_key"])
                .order_by(residents.c.relation, residents.c.person_id)
            )
        )
        .mappings()
        .all()
    )
    seen: dict[UUID, dict[str, Any]] = {}
    for m in members:
        name = m["masked_name"]
        if clear:
            name = sealer.open(
                m["prefill_sealed"], key_id=m["key_id"], context=resident_context(m["person_id"])
            ).get("name")
        entry = {
            "person_id": str(m["person_id"]),
            "relation": m["relation"],
            "name": name,
            "id_number": m["masked_id_number"],
            "complete": m["needs_survey"] is False,
            "registration": m["registration"],
            "task_id": str(m["task_id"]) if m["task_id"] else None,
            "task_state": m["state"],
        }
        if m["person_id"] not in seen or m["state"] in {
            s.value for s in TaskState if s is not TaskState.APPROVED
        }:
            seen[m["person_id"]] = entry
    return list(seen.values())


async def _submission(connection: Any, sealer: Sealer, submission_id: UUID | None) -> Any:
    """The current submission, values masked, with its decisions (the reviewer's view)."""
    if submission_id is None:
        return None
    row = (
        (
            await connection.execute(
                sa.select(submissions).where(submissions.c.submission_id == submission_id)
            )
        )
        .mappings()
        .one()
    )
    body = sealer.open(
        row["body_sealed"], key_id=row["key_id"], context=submission_context(submission_id)
    )
    ledger = (
        await connection.execute(
            sa.select(decisions)
            .where(decisions.c.submission_id == submission_id)
            .order_by(decisions.c.decision_id)
        )
    ).mappings()
    known = {i.value: i for i in RegistrationItem}
    return {
        "submission_id": str(submission_id),
        "submitted_by": row["submitted_by"],
        "submitted_at": row["submitted_at"].isoformat(),
        "visited_at": row["visited_at"].isoformat(),
        "contact": row["contact"],
        "outcome": row["outcome"],
        "outcome_label": Outcome(row["outcome"]).label,
        "verified_reason": row["verified_reason"],
        "verified_reason_label": StatusCode(row["verified_reason"]).label
        if row["verified_reason"]
        else None,
        "insured_elsewhere": body.get("insured_elsewhere", []),
        "declaration": body.get("declaration"),
        "note": body.get("note", ""),
        # A change registration's evidence (变更登记): the documents seen and the reason.
        "documents": [
            {"code": code, "label": ChangeDocument(code).label}
            for code in body.get("documents", [])
        ],
        "reason": body.get("reason"),
        "items": [
            {
                "item": name,
                "code": known[name].code,
                "label": known[name].label,
                "value": masked(known[name], value),
            }
            for name, value in body.get("items", {}).items()
            if name in known
        ],
        "decisions": [
            {
                "stage": d["stage"],
                "decision": d["decision"],
                "decided_by": d["decided_by"],
                "decided_at": d["decided_at"].isoformat(),
                "comment": d["comment"],
            }
            for d in ledger
        ],
        "state": row["state"],
    }


async def form_data(
    database: Database, sealer: Sealer, task_id: UUID, caller: Caller
) -> dict[str, Any]:
    """What the prefilled registration form of a task shows, values in clear (it is printed for
    the visit: the gateway lets only the team and the reviewers of the division ask)."""
    async with database.engine.connect() as connection:
        row = await _visible_task(connection, task_id, caller)
    prefill = _prefill(sealer, row) if row["prefill_sealed"] is not None else {}
    return {
        "task_id": str(task_id),
        "person_id": str(row["person_id"]) if row["person_id"] else None,
        "region_code": row["region_code"],
        "household_number": prefill.get("household_number"),
        "items": prefill_items(prefill),
        "statuses": {i.value: (row["statuses"] or {}).get(i.value) for i in Insurance},
        "survey_reasons": tuple(row["survey_reasons"]),
        "missing": tuple(row["missing"]),
        "inaccurate": tuple((e["item"], e["reason"]) for e in row["inaccurate"]),
    }


async def ledger_rows(database: Database, sealer: Sealer, division: str) -> AsyncIterator[Any]:
    """Every listed resident of the division by household, with their task, if any, and the
    newest decisions: the community ledger (全民参保登记个人信息汇总表, 44号 §19)."""
    latest = (
        sa.select(tasks)
        .where(tasks.c.region_code.like(division + "%"))
        .ext(distinct_on(tasks.c.person_id))
        .order_by(tasks.c.person_id, tasks.c.created_at.desc())
    ).subquery()
    approved_at = (
        sa.select(sa.func.max(decisions.c.decided_at))
        .where(
            decisions.c.submission_id == latest.c.submission_id,
            decisions.c.stage == "approve",
            decisions.c.decision == "approve",
        )
        .scalar_subquery()
    )
    query = (
        sa.select(
            residents.c.person_id,
            residents.c.household_key,
            residents.c.relation,
            residents.c.masked_name,
            residents.c.masked_id_number,
            residents.c.prefill_sealed,
            residents.c.key_id,
            subjects.c.statuses,
            subjects.c.needs_survey,
            latest.c.state,
            latest.c.team,
            submissions.c.outcome,
            submissions.c.verified_reason,
            approved_at.label("approved_at"),
        )
        .select_from(
            residents.outerjoin(subjects, subjects.c.person_id == residents.c.person_id)
            .outerjoin(latest, latest.c.person_id == residents.c.person_id)
            .outerjoin(submissions, submissions.c.submission_id == latest.c.submission_id)
        )
        .where(residents.c.region_code.like(division + "%"))
        .order_by(residents.c.household_key, residents.c.relation, residents.c.person_id)
    )
    async with database.engine.connect() as connection:
        result = await connection.stream(query.execution_options(yield_per=1000))
        async for row in result.mappings():
            prefill = sealer.open(
                row["prefill_sealed"],
                key_id=row["key_id"],
                context=resident_context(row["person_id"]),
            )
            yield row, prefill


def outcome_text(outcome: str | None, verified_reason: str | None) -> str | None:
    if outcome is None:
        return None
    if outcome == Outcome.VERIFIED and verified_reason:
        return f"{Outcome.VERIFIED.label}：{verified_reason} {StatusCode(verified_reason).label}"
    return Outcome(outcome).label


async def progress(database: Database, division: str) -> dict[str, Any]:
    """Survey rate per county of the division (surveyed ÷ needing survey; Qinghai's goal ≥ 90 %)
    and waiting tasks per team. Needing survey: the survey tasks of people still in the division
    (a task closed because the person moved, died or was merged leaves the count; one closed
    because the reason went away without a survey counts as not needing one either); surveyed:
    those submitted, first reviewed or approved."""
    waiting = [TaskState.SUBMITTED.value, TaskState.FIRST_REVIEWED.value, TaskState.APPROVED.value]
    by_county = (
        sa.select(
            tasks.c.region_code,
            sa.func.count().filter(tasks.c.state != TaskState.CLOSED.value),
            sa.func.count().filter(tasks.c.state.in_(waiting)),
            sa.func.count().filter(tasks.c.state == TaskState.APPROVED.value),
        )
        .where(tasks.c.region_code.like(division + "%"), tasks.c.channel == "survey")
        .group_by(tasks.c.region_code)
        .order_by(tasks.c.region_code)
    )
    by_team = (
        sa.select(sa.func.array_to_string(tasks.c.team, ","), sa.func.count())
        .where(
            tasks.c.region_code.like(division + "%"), tasks.c.state.in_([TaskState.ASSIGNED.value])
        )
        .group_by(tasks.c.team)
        .order_by(sa.func.array_to_string(tasks.c.team, ","))
    )
    async with database.engine.connect() as connection:
        counties = (await connection.execute(by_county)).all()
        teams = (await connection.execute(by_team)).all()
    rows = [
        {
            "region_code": region,
            "needing_survey": needing,
            "surveyed": surveyed,
            "approved": approved,
            "survey_rate": round(surveyed / needing, 4) if needing else None,
        }
        for region, needing, surveyed, approved in counties
    ]
    needing = sum(r["needing_survey"] for r in rows)
    surveyed = sum(r["surveyed"] for r in rows)
    return {
        "division": division,
        "as_of": datetime.now().astimezone().isoformat(),
        "needing_survey": needing,
        "surveyed": surveyed,
        "approved": sum(r["approved"] for r in rows),
        "survey_rate": round(surveyed / needing, 4) if needing else None,
        "regions": rows,
        "open_tasks_by_team": [
            {"team": t.split(",") if t else [], "open_tasks": n} for t, n in teams
        ],
    }


async def corrections_of(database: Database, person_id: UUID) -> list[dict[str, Any]]:
    """A person's self-service corrections, newest first: which items (not the values), the
    state of the agency's review and a rejection's comment."""
    query = (
        sa.select(
            tasks.c.task_id,
            tasks.c.state,
            tasks.c.last_comment,
            tasks.c.created_at,
            tasks.c.updated_at,
            submissions.c.item_names,
            submissions.c.client_id,
        )
        .join(submissions, submissions.c.task_id == tasks.c.task_id)
        .where(tasks.c.person_id == person_id, tasks.c.channel == "self")
        .order_by(tasks.c.created_at.desc())
    )
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    return [
        {
            "task_id": str(r["task_id"]),
            "client_id": str(r["client_id"]),
            "items": _items_of(list(r["item_names"])),
            "state": r["state"],
            "state_label": TaskState(r["state"]).label,
            "comment": r["last_comment"],
            "submitted_at": r["created_at"].isoformat(),
            "updated_at": r["updated_at"].isoformat(),
        }
        for r in rows
    ]
