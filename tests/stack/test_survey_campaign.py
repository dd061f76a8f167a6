"""A household survey campaign (api.md "Survey", 44号 §15-19) on the real local stack (`make run`
on a fresh state directory, 300 people), through the public API only, as the demo accounts: the
platform lists a county and gives a household to the demo team (demo-surveyor, demo-surveyor2,
whom the stack put on the roster); a surveyor reads the task in clear, prints the prefilled form,
submits, and syncs the same submission again; the platform does 初审 and the county 审定, which
neither the surveyor nor a second 审定 can do; and once the approved collection has gone survey →
identity → matching, the counter popup no longer asks for what the survey settled. The ledger
comes back as a spreadsheet and a PDF.

Maker-checker across roles: no account holds two roles at once, so the demo surveyor is moved to
the county agency (`python -m canbao_gateway.manage move-staff`, as an administrator would) and
may not approve what it submitted. The county to survey is chosen from the generator's ground
truth (where most people need a survey the visit can settle); everything else is the API's."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
from openpyxl import load_workbook
from pypdf import PdfReader

from tests.stack.test_local_stack import fresh_stack

API = "/api/v1/survey"
# What a visit settles (domain.md §5): the data it collects, a verified reason for not being
# insured. Interrupted payments (94) and identity conflicts are not a visit's to settle.
SETTLED = {"uninsured", "partially_insured", "missing_info"}
# Items a surveyor fills in at the door, with values the item rules accept.
FILLED = {"phone": "13912345678", "residence_address": "贵州省贵阳市南明区花果园街道88号"}
WITHIN_S = 150  # the demo's verdicts reach survey; an approval reaches the popup


class Timings:
    def __init__(self, label: str = "survey campaign") -> None:
        self.started, self.marks = time.monotonic(), list[tuple[str, float]]()
        self.label = label

    def mark(self, what: str) -> None:
        self.marks.append((what, time.monotonic() - self.started))
        print(f"[{self.label}] {self.marks[-1][1]:7.1f} s  {what}", flush=True)


async def county_to_survey(sources: str) -> tuple[str, dict[str, list[str]]]:
    """The county where, by the ground truth, most living household-registered people need a
    survey that a visit can settle; those people's ID numbers and survey reasons."""
    fillable = json.dumps(
        [
            {"item": item, "code": code}
            for item, code in (("phone", "AAE005"), ("residence_address", "AAE006"))
        ]
    )
    connection = await asyncpg.connect(sources)
    try:
        rows = await connection.fetch(
            "SELECT region, id_number, survey_reasons::text FROM simulator.expected_outcome "
            "WHERE needs_survey AND in_scope AND household_registered AND NOT deceased "
            "AND id_number IS NOT NULL AND inaccurate = '[]'::jsonb "
            "AND survey_reasons <@ $1::jsonb AND missing <@ $2::jsonb",
            json.dumps(sorted(SETTLED)),
            fillable,
        )
    finally:
        await connection.close()
    assert rows, "the demo population has nobody a visit could settle"
    regions = Counter(row["region"] for row in rows)
    region = min(regions, key=lambda r: (-regions[r], r))
    people = {
        row["id_number"]: json.loads(row["survey_reasons"])
        for row in rows
        if row["region"] == region
    }
    return region, people


async def verdicts_settled(
    counter: httpx.AsyncClient, people: dict[str, list[str]], timings: Timings
) -> dict[str, tuple[str, list[str]]]:
    """Waits until the counter popup of each of `people` gives the survey reasons the ground
    truth expects (the demo's first verdicts change as each source's rows arrive), or as many
    as do by the deadline: their person_ids → ID numbers and survey reasons."""
    deadline, waiting = time.monotonic() + WITHIN_S, dict(people)
    found: dict[str, tuple[str, list[str]]] = {}
    while waiting and time.monotonic() < deadline:
        for number, reasons in list(waiting.items()):
            popup = (await counter.get(f"/api/v1/counter/popup/{number}")).json()
            if popup.get("survey_reasons") and sorted(popup["survey_reasons"]) == sorted(reasons):
                found[popup["person_id"]] = (number, sorted(reasons))
                del waiting[number]
        if waiting:
            await asyncio.sleep(2)
    assert found, f"none of {len(people)} verdicts as the ground truth expects"
    timings.mark(
        f"verdicts of {len(found)} people to survey as the ground truth says "
        f"({len(waiting)} not yet)"
    )
    return found


def settled_by_a_visit(task: dict[str, Any]) -> bool:
    return (
        task["channel"] == "survey"
        and set(task["survey_reasons"]) <= SETTLED
        and not task["inaccurate"]
        and {m["item"] for m in task["missing"]} <= set(FILLED)
    )


def as_the_popup_says(task: dict[str, Any], people: dict[str, tuple[str, list[str]]]) -> bool:
    """A task a visit can settle, of one of `people`, with the reasons their popup gives."""
    person = people.get(task["person"]["person_id"])
    reasons = sorted(task["survey_reasons"])
    return person is not None and person[1] == reasons and settled_by_a_visit(task)


async def log_in(gateway: str, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=gateway, timeout=60)
    login = await client.post("/api/v1/auth/token", data={"username": username, "password": "demo"})
    assert login.status_code == 200, (username, login.text)
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return client


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}", body
    return body


def move_staff(postgres_port: int, username: str, role: str) -> None:
    """The administrator's command, on the stack's gateway database, as the gateway's own login."""
    database = f"postgresql+asyncpg://gateway_app@127.0.0.1:{postgres_port}/gateway"
    env = os.environ | {"CANBAO_ENV": "development", "GATEWAY_DATABASE_URL": database}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "canbao_gateway.manage",
            "move-staff",
            username,
            "--role",
            role,
            "--scope",
            "52",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


async def listed_task(
    platform: httpx.AsyncClient,
    region: str,
    people: dict[str, tuple[str, list[str]]],
    timings: Timings,
) -> dict[str, Any]:
    """Lists the county until survey, which learns who needs a survey from the same verdicts
    (a moment later than the popup), has a task a visit can settle for one of `people`, with
    the survey reasons the popup gives them: a list made again adds only whom the first
    missed, and a waiting task takes its person's newer reasons."""
    deadline, made = time.monotonic() + WITHIN_S, 0
    while time.monotonic() < deadline:
        response = await platform.post(f"{API}/lists", json={"region_code": region})
        assert response.status_code == 201, response.text
        made += response.json()["tasks"]
        page = await platform.get(f"{API}/tasks", params={"region": region, "state": "open"})
        assert page.status_code == 200, page.text
        if suitable := [t for t in page.json()["items"] if as_the_popup_says(t, people)]:
            timings.mark(f"list of {region}: {made} tasks")
            return dict(suitable[0])
        await asyncio.sleep(3)
    raise AssertionError(f"no task a visit could settle in {region} within {WITHIN_S} s")


def visit(detail: dict[str, Any]) -> dict[str, Any]:
    """What the surveyor submits: the missing items filled in, and for an uninsured person the
    verified reason (92 if an employer did not enrol them, else 91: their own choice)."""
    statuses = set(detail["statuses"].values())
    uninsured = {"uninsured", "partially_insured"} & set(detail["survey_reasons"])
    return {
        "client_id": str(uuid4()),
        "visited_at": datetime.now(UTC).isoformat(),
        "contact": "visit",
        "items": {m["item"]: FILLED[m["item"]] for m in detail["missing"]},
        "verified_reason": ("92" if "92" in statuses else "91") if uninsured else None,
        "declaration": {"signed_by": "self", "signed_on": date.today().isoformat()},
        "note": "入户核实",
    }


async def campaign(gateway: str, sources: str, postgres_port: int, timings: Timings) -> None:
    region, expected = await county_to_survey(sources)
    platform, county = await log_in(gateway, "demo-platform"), await log_in(gateway, "demo-county")
    surveyor, counter = (
        await log_in(gateway, "demo-surveyor"),
        await log_in(gateway, "demo-counter"),
    )
    roster = (await county.get(f"{API}/surveyors", params={"region": region})).json()
    assert {s["username"] for s in roster} >= {"demo-surveyor", "demo-surveyor2"}
    people = await verdicts_settled(counter, expected, timings)
    task = await listed_task(platform, region, people, timings)
    path = f"{API}/tasks/{task['task_id']}"
    assert "*" in task["person"]["id_number"] and "*" in task["person"]["name"]  # masked

    team = {"team": ["demo-surveyor", "demo-surveyor2"]}
    assigned = await platform.post(f"{path}/assign", json=team)
    assert assigned.status_code == 200 and task["task_id"] in assigned.json()["assigned"]
    detail = (await surveyor.get(path)).json()
    prefill = {p["item"]: p["value"] for p in detail["prefill"]}
    id_number, name = prefill["id_number"], prefill["name"]
    assert id_number == people[task["person"]["person_id"]][0] and "*" not in name  # in clear
    before = (await counter.get(f"/api/v1/counter/popup/{id_number}")).json()
    assert before["needs_survey"], (before, task)
    assert set(task["survey_reasons"]) <= set(before["survey_reasons"]), (before, task)
    form = await surveyor.get(f"{path}/form.pdf")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(form.content)).pages)
    assert "全民参保登记表" in text and name in text
    timings.mark(f"assigned to the demo team; form printed ({len(form.content):,} bytes)")

    body = visit(detail)
    first = await surveyor.post(f"{path}/submit", json=body)
    again = await surveyor.post(f"{path}/submit", json=body)  # the phone syncs twice
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    problem(
        await surveyor.post(f"{path}/review", json={"decision": "pass"}), 403, "role-not-allowed"
    )
    reviewed = await platform.post(f"{path}/review", json={"decision": "pass"})
    assert reviewed.json()["state"] == "first_reviewed", reviewed.text
    timings.mark("submitted (once, synced twice) and 初审 passed")

    move_staff(postgres_port, "demo-surveyor", "county")
    problem(await surveyor.get(path), 401, "token-revoked")  # the old post's token
    moved = await log_in(gateway, "demo-surveyor")
    refused = problem(
        await moved.post(f"{path}/approve", json={"decision": "approve"}), 409, "maker-checker"
    )
    assert refused["instance"] == f"{path}/approve"
    move_staff(postgres_port, "demo-surveyor", "surveyor")  # back to the demo's own post
    approved = await county.post(f"{path}/approve", json={"decision": "approve"})
    assert approved.json()["state"] == "approved", approved.text
    twice = problem(
        await county.post(f"{path}/approve", json={"decision": "approve"}), 409, "task-changed"
    )
    assert twice["task"]["state"] == "approved"
    timings.mark("maker-checker refused the mover; 审定 by demo-county, not twice")

    deadline, popup = time.monotonic() + WITHIN_S, {}
    while time.monotonic() < deadline:
        popup = (await counter.get(f"/api/v1/counter/popup/{id_number}")).json()
        if not popup["verdict_pending"] and not set(popup["survey_reasons"]) & set(
            task["survey_reasons"]
        ):
            break
        await asyncio.sleep(1)
    assert popup["needs_survey"] is False, popup
    assert popup["registration"] in ("verified", "confirmed") and not popup["missing"], popup
    timings.mark(f"the popup no longer asks for a survey ({popup['registration']})")

    ledger = await platform.get(f"{API}/ledger/{region}", params={"format": "xlsx"})
    sheet = load_workbook(io.BytesIO(ledger.content)).active
    assert sheet is not None
    rows = [[c.value for c in r] for r in sheet.iter_rows() if name in [c.value for c in r]]
    assert any("已审定" in r and "demo-surveyor、demo-surveyor2" in r for r in rows), rows
    pdf = await platform.get(f"{API}/ledger/{region}", params={"format": "pdf"})
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "全民参保登记个人信息汇总表" in text and name in text
    timings.mark(f"ledger of {region}: xlsx {len(ledger.content):,} B, pdf {len(pdf.content):,} B")
    for client in (platform, county, surveyor, counter, moved):
        await client.aclose()


def test_a_survey_campaign_through_the_public_api() -> None:
    timings = Timings()
    with fresh_stack("canbao-survey-") as running:
        timings.mark("stack ready")
        said = [line for line in running.stack.output if "roster" in line]
        assert said == [
            "[survey    ] roster of the demo province (52): demo-surveyor, demo-surveyor2"
        ], "\n".join(running.stack.output)
        asyncio.run(campaign(running.gateway, running.sources, running.postgres_port, timings))
    timings.mark("stack stopped")
